"""One ledger: 2301 fee lines move from ``fee_line`` into ``record`` beside every other
transaction's records, keyed (2301, "mdtrt_id|feedetl_sn").

Nothing is dropped before it is copied: a line keeps its status, park kind and reason, HIS row
and message; a line that was ready (checked, not yet in a message) becomes new so the next
cycle checks it again with the new field table; a queued or sent line takes its entry of the
message that carries it as its payload; findings keep pointing at their line. The watermark
``his.fee_lines`` becomes ``his.2301``.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapter import jsonio

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 2000


def upgrade() -> None:
    bind = op.get_bind()
    meta = sa.MetaData()
    fee_line = sa.Table("fee_line", meta, autoload_with=bind)
    record = sa.Table("record", meta, autoload_with=bind)
    message = sa.Table("message", meta, autoload_with=bind)
    finding = sa.Table("finding", meta, autoload_with=bind)
    entries = _message_entries(bind, message, fee_line)
    new_ids: dict[int, int] = {}
    last = 0
    while True:
        rows = bind.execute(sa.select(fee_line).where(fee_line.c.id > last).order_by(fee_line.c.id).limit(_BATCH)).all()
        if not rows:
            break
        last = rows[-1].id
        for row in rows:
            values = _ledger_row(row, entries)
            new_ids[row.id] = bind.execute(sa.insert(record).values(**values).returning(record.c.id)).scalar_one()
    if new_ids:
        bind.execute(sa.update(finding).where(finding.c.line_id == sa.bindparam("old_id"))
                     .values(line_id=sa.bindparam("new_id")),
                     [{"old_id": old, "new_id": -new} for old, new in new_ids.items()])
    # Negative first, so an old fee_line id equal to a new record id is never mapped twice.
    bind.execute(sa.update(finding).where(finding.c.line_id < 0).values(line_id=-finding.c.line_id))
    watermark = sa.Table("watermark", meta, autoload_with=bind)
    bind.execute(sa.update(watermark).where(watermark.c.source == "his.fee_lines").values(source="his.2301"))
    op.drop_index("ix_fee_line_status", table_name="fee_line")
    op.drop_table("fee_line")
    op.create_index("ix_record_park", "record", ["status", "park_kind"])
    op.create_index("ix_record_message", "record", ["message_id"])
    op.create_index("ix_record_group", "record", ["group_key"])


def downgrade() -> None:
    raise NotImplementedError("the one-ledger migration is not reversible; restore the backup taken before it")


def _message_entries(bind: Any, message: sa.Table, fee_line: sa.Table) -> dict[tuple[int, str], dict[str, Any]]:
    """(message id, feedetl_sn) -> the feedetail entry of the 2301 message that carries it."""
    found: dict[tuple[int, str], dict[str, Any]] = {}
    ids = sa.select(fee_line.c.message_id).where(fee_line.c.message_id.is_not(None)).distinct()
    for row in bind.execute(sa.select(message.c.id, message.c.payload).where(message.c.id.in_(ids))):
        for entry in jsonio.loads(row.payload).get("feedetail") or []:
            found[(row.id, str(entry.get("feedetl_sn")))] = entry
    return found


def _ledger_row(row: Any, entries: dict[tuple[int, str], dict[str, Any]]) -> dict[str, Any]:
    mdtrt_id, feedetl_sn = row.mdtrt_id or "", row.feedetl_sn or ""
    status, payload = row.status, None
    if status == "ready":
        status = "new"  # checked again by the next cycle, with the 2301 field table
    entry = entries.get((row.message_id, feedetl_sn)) if row.message_id is not None else None
    if entry is not None:
        payload = jsonio.dumps({"feedetail": [entry]})
    return {
        "infno": "2301",
        "business_key": f"{mdtrt_id}|{feedetl_sn}" if mdtrt_id and feedetl_sn else f"#{row.source_key}",
        "group_key": f"visit:{mdtrt_id}",
        "status": status,
        "park_kind": row.park_kind,
        "park_reason": row.park_reason,
        "raw": row.raw,
        "payload": payload,
        "message_id": row.message_id,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }
