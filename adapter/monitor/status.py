"""Queue health: counts per state, records per transaction (named from the region's interface
edition), oldest unsent item, parked reasons, last upload."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from adapter.spec.tables import Edition
from adapter.spool.states import UNSENT_MESSAGE_STATES, MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow


@dataclass
class QueueStatus:
    messages: dict[str, int] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    #: the ledger's records per transaction: infno, its name in the edition, records, records by state
    transactions: list[dict[str, Any]] = field(default_factory=list)
    oldest_unsent_age_seconds: float | None = None
    oldest_unsent_created_at: str | None = None
    last_successful_upload: str | None = None
    watermarks: dict[str, str] = field(default_factory=dict)
    parked_reasons: list[dict[str, Any]] = field(default_factory=list)
    retry_errors: list[dict[str, Any]] = field(default_factory=list)
    #: messages whose outcome at the centre is unknown (a lost reply not yet settled), oldest first
    unknown: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def queue_status(store: StateStore, reasons_limit: int = 20, edition: Edition | None = None) -> QueueStatus:
    """``edition``: the region's interface edition, for the transactions' names (none: blank)."""
    message, line = schema.message, schema.record
    status = QueueStatus()
    with store.begin() as conn:
        counts: dict[str, int] = dict(
            conn.execute(select(message.c.status, func.count()).group_by(message.c.status)).all()
        )
        status.messages = {s.value: int(counts.get(s.value, 0)) for s in MessageStatus}
        counts = dict(conn.execute(select(line.c.status, func.count()).group_by(line.c.status)).all())
        status.lines = {s.value: int(counts.get(s.value, 0)) for s in RecordStatus}
        per: dict[str, dict[str, int]] = {}
        for row in conn.execute(select(line.c.infno, line.c.status, func.count().label("n"))
                                .group_by(line.c.infno, line.c.status)).all():
            per.setdefault(row.infno, {})[row.status] = int(row.n)
        status.transactions = [
            {"infno": infno, "name": _transaction_name(edition, infno), "records": sum(by_state.values()),
             "by_status": by_state}
            for infno, by_state in sorted(per.items())
        ]
        oldest: datetime | None = conn.execute(
            select(func.min(message.c.created_at)).where(
                message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES])
            )
        ).scalar()
        oldest_line: datetime | None = conn.execute(
            select(func.min(line.c.created_at)).where(
                line.c.status.in_([RecordStatus.NEW.value, RecordStatus.READY.value])
            )
        ).scalar()
        candidates = [t for t in (oldest, oldest_line) if t is not None]
        if candidates:
            first = min(candidates)
            status.oldest_unsent_created_at = first.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
            status.oldest_unsent_age_seconds = round((utcnow() - first).total_seconds(), 1)
        last: datetime | None = conn.execute(select(func.max(message.c.acked_at))).scalar()
        status.last_successful_upload = last.strftime("%Y-%m-%d %H:%M:%S") + " UTC" if last else None
        status.watermarks = {
            row.source: row.value for row in conn.execute(select(schema.watermark)).all()
        }
        rows = conn.execute(
            select(line.c.park_kind, line.c.park_reason, func.count().label("n"))
            .where(line.c.status == RecordStatus.PARKED.value)
            .group_by(line.c.park_kind, line.c.park_reason)
            .order_by(func.count().desc())
            .limit(reasons_limit)
        ).all()
        status.parked_reasons = [
            {"kind": row.park_kind, "reason": row.park_reason, "lines": int(row.n)} for row in rows
        ]
        rows = conn.execute(
            select(message.c.id, message.c.attempts, message.c.next_attempt_at, message.c.last_error)
            .where(message.c.status == MessageStatus.RETRY_WAIT.value)
            .order_by(message.c.id)
            .limit(reasons_limit)
        ).all()
        status.retry_errors = [
            {
                "message_id": row.id,
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
                if row.next_attempt_at
                else None,
                "last_error": row.last_error,
            }
            for row in rows
        ]
        rows = conn.execute(
            select(message.c.id, message.c.infno, message.c.created_at, message.c.attempts,
                   message.c.next_attempt_at, message.c.last_error)
            .where(message.c.status == MessageStatus.UNKNOWN.value)
            .order_by(message.c.id)
            .limit(reasons_limit)
        ).all()
        status.unknown = [
            {
                "message_id": row.id,
                "infno": row.infno,
                "age_seconds": (utcnow() - row.created_at).total_seconds(),
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
                if row.next_attempt_at else None,
                "last_error": row.last_error,
            }
            for row in rows
        ]
    return status


def _transaction_name(edition: Edition | None, infno: str) -> str:
    table = edition.transactions.get(infno) if edition is not None else None
    return table.name if table is not None else ""


def unsent_count(store: StateStore) -> int:
    """Work still to do: unsent messages, plus records not yet in a message."""
    waiting = [RecordStatus.NEW.value, RecordStatus.READY.value]
    with store.begin() as conn:
        messages = conn.execute(
            select(func.count()).where(
                schema.message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES])
            )
        ).scalar_one()
        records = conn.execute(
            select(func.count()).where(schema.record.c.status.in_(waiting))
        ).scalar_one()
    return int(messages) + int(records)


def format_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"
