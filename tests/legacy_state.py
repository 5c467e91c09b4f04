"""The state database as yibao-adapter 0.1.0 (commit 9e654fc) wrote it, for upgrade tests.

``metadata`` below is a FROZEN copy of the 0.1.0 schema (``adapter/spool/schema.py`` at
9e654fc, table definitions copied verbatim): it must never follow later schema changes and
imports nothing from ``adapter``. ``build_legacy_state`` creates those tables in an empty
database (a SQLite file URL or a ``postgresql+psycopg://`` URL) and fills them with every row
of ``tests/fixtures/state-0.1.0.json``, which ``tests/fixtures/make_state_0_1_0.py`` made by
running the 0.1.0 code against the simulated centre. ``legacy_facts`` summarises that fixture
for assertions after an upgrade.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict

from sqlalchemy import (
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    insert,
    text,
)

#: every row of every table of a 0.1.0 state database
LEGACY_FIXTURE = Path(__file__).parent / "fixtures" / "state-0.1.0.json"
LEGACY_VERSION = "0.1.0"

# ---- frozen copy of adapter/spool/schema.py at 9e654fc (do not edit) ----------------------
metadata = MetaData()

#: Extraction progress per source; advanced in the same transaction that stores the lines.
watermark = Table(
    "watermark",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

#: Every HIS line ever extracted, keyed by its business key so nothing is taken twice.
fee_line = Table(
    "fee_line",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_key", String(64), nullable=False, unique=True),
    Column("mdtrt_id", String(30)),
    Column("feedetl_sn", String(30)),
    Column("his_item_code", String(150)),
    Column("status", String(16), nullable=False),
    Column("park_kind", String(16)),
    Column("park_reason", Text),
    Column("raw", Text, nullable=False),
    Column("mapped", Text),
    Column("message_id", Integer, ForeignKey("message.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("mdtrt_id", "feedetl_sn", name="uq_fee_line_business_key"),
)
Index("ix_fee_line_status", fee_line.c.status, fee_line.c.park_kind)

#: 目录对照: hospital code -> national code, per kind (item, dept, doctor).
mapping = Table(
    "mapping",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("his_code", String(150), primary_key=True),
    Column("national_code", String(50), nullable=False),
    Column("national_name", String(200), nullable=False, default=""),
    Column("updated_at", DateTime, nullable=False),
)

#: The outbox. The business payload is fixed at creation; envelopes are built per attempt.
message = Table(
    "message",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    #: messages with the same key (a visit) are sent strictly in id order
    Column("group_key", String(64), nullable=False),
    Column("insuplc_admdvs", String(6)),
    Column("payload", Text, nullable=False),
    Column("line_count", Integer, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime),
    Column("lease_until", DateTime),
    Column("last_msgid", String(30)),
    Column("last_error", Text),
    Column("inf_refmsgid", String(30)),
    Column("created_at", DateTime, nullable=False),
    Column("acked_at", DateTime),
)
Index("ix_message_due", message.c.status, message.c.next_attempt_at)
Index("ix_message_group", message.c.group_key, message.c.id)

#: One row per send attempt, committed before the request leaves: msgid is never reused.
attempt = Table(
    "attempt",
    metadata,
    Column("msgid", String(30), primary_key=True),
    Column("message_id", Integer, ForeignKey("message.id")),
    Column("infno", String(8), nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("outcome", String(16)),
    Column("http_status", Integer),
    Column("infcode", String(8)),
    Column("err_msg", Text),
)

#: Per-institution msgid sequence: the last second used and the counter within it.
msgid_counter = Table(
    "msgid_counter",
    metadata,
    Column("fixmedins_code", String(30), primary_key=True),
    Column("stamp", String(14), nullable=False),
    Column("seq", Integer, nullable=False),
)

#: The cached 9001 sign-in per institution.
session = Table(
    "session",
    metadata,
    Column("fixmedins_code", String(30), primary_key=True),
    Column("sign_no", String(30), nullable=False),
    Column("signed_at", DateTime, nullable=False),
)

#: Records of the generic transactions (2401, 2402, 3501-3507...), one ledger for all:
#: unique per (infno, business key) so nothing is uploaded twice.
record = Table(
    "record",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(8), nullable=False),
    Column("business_key", String(200), nullable=False),
    Column("group_key", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("park_kind", String(16)),
    Column("park_reason", Text),
    Column("raw", Text, nullable=False),
    Column("payload", Text),
    Column("message_id", Integer, ForeignKey("message.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    UniqueConstraint("infno", "business_key", name="uq_record_business_key"),
)
Index("ix_record_status", record.c.infno, record.c.status)

#: HIS visit number -> the centre's mdtrt_id, learnt from the 2401 reply.
visit = Table(
    "visit",
    metadata,
    Column("his_key", String(64), primary_key=True),
    Column("mdtrt_id", String(30), nullable=False),
    Column("registered_by", String(30), nullable=False),
    Column("registered_at", DateTime, nullable=False),
)


#: Every catalogue download or import, valid or refused; at most one ``active`` per kind.
catalog_version = Table(
    "catalog_version",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    #: the highest 版本号 in the catalogue after this download (the next sync's ``ver``)
    Column("ver", String(40), nullable=False),
    #: staging, active, superseded, rolled_back, refused
    Column("status", String(16), nullable=False),
    Column("rows_in_file", Integer, nullable=False, default=0),
    Column("rows_total", Integer, nullable=False, default=0),
    Column("source", String(300), nullable=False),
    Column("encoding", String(16)),
    Column("report", Text),
    Column("created_at", DateTime, nullable=False),
    Column("activated_at", DateTime),
)
Index("ix_catalog_version_kind", catalog_version.c.kind, catalog_version.c.status)

#: The full catalogue of one version (a snapshot: an incremental download is merged into a
#: copy of the version before it, so rollback is a switch, not a repair).
catalog_entry = Table(
    "catalog_entry",
    metadata,
    Column("version_id", Integer, ForeignKey("catalog_version.id"), primary_key=True),
    Column("code", String(60), primary_key=True),
    Column("name", String(300), nullable=False, default=""),
    Column("row_version", String(40), nullable=False, default=""),
    Column("begin_date", String(10)),
    Column("end_date", String(10)),
    Column("valid", String(3), nullable=False, default="1"),
    Column("restricted", String(500), nullable=False, default=""),
    Column("price_cap", String(24)),
    #: the file line it came from (for reports; 0 when copied from the version before)
    Column("line_no", Integer, nullable=False, default=0),
)


#: What the policy rules found, one row per (rule, stay, line); kept for the self-inspection
#: report whether the line was parked (block) or sent (warn, or found after it was sent).
finding = Table(
    "finding",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(64), nullable=False),
    Column("severity", String(8), nullable=False),
    #: parked, reported (sent and reported), late (found after the line had already gone)
    Column("outcome", String(16), nullable=False),
    Column("stay_key", String(64), nullable=False),
    Column("feedetl_sn", String(30), nullable=False),
    Column("line_id", Integer),
    Column("his_item_code", String(150), nullable=False, default=""),
    Column("dept", String(100), nullable=False, default=""),
    Column("doctor", String(50), nullable=False, default=""),
    Column("fee_time", DateTime, nullable=False),
    Column("amount", String(24), nullable=False),
    Column("message", Text, nullable=False),
    Column("evidence", Text, nullable=False, default="{}"),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("rule_id", "stay_key", "feedetl_sn", name="uq_finding"),
)
Index("ix_finding_time", finding.c.fee_time)

#: Stays as the policy rules remember them (for readmission checks across stays).
policy_stay = Table(
    "policy_stay",
    metadata,
    Column("stay_key", String(64), primary_key=True),
    Column("psn_no", String(30), nullable=False),
    Column("adm_time", DateTime),
    Column("dscg_time", DateTime),
    Column("main_diag_code", String(30), nullable=False, default=""),
    Column("outpatient", Integer, nullable=False, default=0),
)
Index("ix_policy_stay_psn", policy_stay.c.psn_no)


#: Every reconciliation run (3201/3202) with its whole report, for `reconcile history`.
recon_run = Table(
    "recon_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(8), nullable=False),
    Column("start_date", String(10), nullable=False),
    Column("end_date", String(10), nullable=False),
    Column("balanced", Integer, nullable=False),
    Column("pairs", Integer, nullable=False),
    Column("differences", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("report", Text, nullable=False),
)

# ---- end of the frozen copy ---------------------------------------------------------------

#: Tables whose ``id`` is an integer sequence (SERIAL on PostgreSQL).
SEQUENCED_TABLES = tuple(
    table.name
    for table in metadata.sorted_tables
    if "id" in table.c and table.c.id.primary_key and isinstance(table.c.id.type, Integer)
)


def _load() -> dict[str, list[dict[str, Any]]]:
    document = json.loads(LEGACY_FIXTURE.read_text(encoding="utf-8"))
    tables: dict[str, list[dict[str, Any]]] = document["tables"]
    unknown = set(tables) - set(metadata.tables)
    if unknown:
        raise ValueError(
            f"{LEGACY_FIXTURE.name} has tables the 0.1.0 schema does not: {sorted(unknown)}"
        )
    return tables


def legacy_rows() -> dict[str, list[dict[str, Any]]]:
    """Every row of the fixture per table, with DateTime columns as ``datetime`` (naive UTC,
    as 0.1.0 stores them) and every other value as stored (JSON text columns stay text)."""
    tables = _load()
    rows: dict[str, list[dict[str, Any]]] = {}
    for table in metadata.sorted_tables:
        stamps = {column.name for column in table.columns if isinstance(column.type, DateTime)}
        rows[table.name] = [
            {name: _parse_stamp(value) if name in stamps else value for name, value in row.items()}
            for row in tables.get(table.name, [])
        ]
    return rows


def _parse_stamp(value: str | None) -> datetime | None:
    # "YYYY-MM-DD HH:MM:SS[.ffffff]"
    return None if value is None else datetime.fromisoformat(value)


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    # 0.1.0 opens SQLite with foreign_keys=ON; loading under the same rule checks the fixture.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def build_legacy_state(url: str) -> dict[str, int]:
    """Create the 0.1.0 tables in the (empty) database at ``url`` and insert every fixture
    row, parents before children; on PostgreSQL each id sequence is moved past the ids
    inserted. Returns the rows inserted per table (every 0.1.0 table is named, 0 if empty)."""
    rows = legacy_rows()
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_foreign_keys)
    counts: dict[str, int] = {}
    try:
        metadata.create_all(engine)
        with engine.begin() as conn:
            for table in metadata.sorted_tables:  # dependency order: message before fee_line
                table_rows = rows[table.name]
                if table_rows:
                    conn.execute(insert(table), table_rows)
                counts[table.name] = len(table_rows)
            if engine.dialect.name == "postgresql":
                for name in SEQUENCED_TABLES:
                    if counts[name]:
                        sequence = f"pg_get_serial_sequence('{name}', 'id')"
                        conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM {name}"))
    finally:
        engine.dispose()
    return counts


class LegacyFacts(TypedDict):
    """What the fixture holds, for assertions that an upgrade lost nothing."""

    #: table -> rows
    row_counts: dict[str, int]
    #: fee_line status -> lines
    fee_line_status: dict[str, int]
    #: park_kind -> parked lines
    fee_line_park_kind: dict[str, int]
    #: (status, park_kind) -> lines (park_kind is kept on withdrawn lines too)
    fee_line_state: dict[tuple[str, str | None], int]
    #: (mdtrt_id, feedetl_sn) of every fee line
    fee_line_keys: set[tuple[str | None, str | None]]
    #: (mdtrt_id, feedetl_sn) -> message id, for lines tied to a message
    fee_line_message: dict[tuple[str | None, str | None], int]
    #: (infno, status) -> records
    record_status: dict[tuple[str, str], int]
    #: (infno, status, park_kind) -> records
    record_state: dict[tuple[str, str, str | None], int]
    #: (infno, business_key) of every record
    record_keys: set[tuple[str, str]]
    #: message status -> messages
    message_status: dict[str, int]
    #: (infno, status) -> messages
    message_infno_status: dict[tuple[str, str], int]
    #: message id -> line_count
    message_line_count: dict[int, int]
    #: msgid of every attempt, and of those never finished (a crash while in flight)
    attempt_msgids: set[str]
    unfinished_attempts: set[str]
    #: outcome (None: unfinished) -> attempts
    attempt_outcomes: dict[str | None, int]
    #: source -> watermark value
    watermarks: dict[str, str]
    mappings: int
    #: mapping kind (item, dept, doctor) -> rows
    mappings_by_kind: dict[str, int]
    #: his_key -> the centre's mdtrt_id
    visits: dict[str, str]
    #: fixmedins_code -> sign_no
    sessions: dict[str, str]
    #: fixmedins_code -> (stamp, seq)
    msgid_counters: dict[str, tuple[str, int]]
    #: (id, kind, ver, status, rows_total) of every catalogue version
    catalog_versions: list[tuple[int, str, str, str, int]]
    #: catalogue version id -> entries
    catalog_entries: dict[int, int]
    #: kind -> ver of the active version
    active_catalogues: dict[str, str]
    #: (rule_id, stay_key, feedetl_sn, outcome) of every finding
    findings: set[tuple[str, str, str, str]]
    policy_stays: set[str]
    #: (kind, start_date, end_date, balanced, pairs, differences) of every reconciliation
    recon_runs: list[tuple[str, str, str, int, int, int]]


def legacy_facts() -> LegacyFacts:
    """A summary of the fixture (computed from the JSON, not from any database)."""
    t = _load()
    lines = t["fee_line"]
    return LegacyFacts(
        row_counts={table.name: len(t.get(table.name, [])) for table in metadata.sorted_tables},
        fee_line_status=dict(Counter(r["status"] for r in lines)),
        fee_line_park_kind=dict(Counter(r["park_kind"] for r in lines if r["status"] == "parked")),
        fee_line_state=dict(Counter((r["status"], r["park_kind"]) for r in lines)),
        fee_line_keys={(r["mdtrt_id"], r["feedetl_sn"]) for r in lines},
        fee_line_message={
            (r["mdtrt_id"], r["feedetl_sn"]): r["message_id"]
            for r in lines
            if r["message_id"] is not None
        },
        record_status=dict(Counter((r["infno"], r["status"]) for r in t["record"])),
        record_state=dict(Counter((r["infno"], r["status"], r["park_kind"]) for r in t["record"])),
        record_keys={(r["infno"], r["business_key"]) for r in t["record"]},
        message_status=dict(Counter(r["status"] for r in t["message"])),
        message_infno_status=dict(Counter((r["infno"], r["status"]) for r in t["message"])),
        message_line_count={r["id"]: r["line_count"] for r in t["message"]},
        attempt_msgids={r["msgid"] for r in t["attempt"]},
        unfinished_attempts={r["msgid"] for r in t["attempt"] if r["finished_at"] is None},
        attempt_outcomes=dict(Counter(r["outcome"] for r in t["attempt"])),
        watermarks={r["source"]: r["value"] for r in t["watermark"]},
        mappings=len(t["mapping"]),
        mappings_by_kind=dict(Counter(r["kind"] for r in t["mapping"])),
        visits={r["his_key"]: r["mdtrt_id"] for r in t["visit"]},
        sessions={r["fixmedins_code"]: r["sign_no"] for r in t["session"]},
        msgid_counters={r["fixmedins_code"]: (r["stamp"], r["seq"]) for r in t["msgid_counter"]},
        catalog_versions=[
            (r["id"], r["kind"], r["ver"], r["status"], r["rows_total"])
            for r in t["catalog_version"]
        ],
        catalog_entries=dict(Counter(r["version_id"] for r in t["catalog_entry"])),
        active_catalogues={
            r["kind"]: r["ver"] for r in t["catalog_version"] if r["status"] == "active"
        },
        findings={
            (r["rule_id"], r["stay_key"], r["feedetl_sn"], r["outcome"]) for r in t["finding"]
        },
        policy_stays={r["stay_key"] for r in t["policy_stay"]},
        recon_runs=[
            (r["kind"], r["start_date"], r["end_date"], r["balanced"], r["pairs"], r["differences"])
            for r in t["recon_run"]
        ],
    )
