"""Every lookup the send cycle makes finds its rows through an index, never by reading the
whole of ``message``, ``record``, ``attempt`` or ``visit`` (which grow with every upload and
are never emptied); and a database upgraded from 0.1.0 has the very tables and indexes of a new one.

The statements are not written out here: they are captured (``before_cursor_execute``) while
the real code runs — whole cycles against the simulated centre (with a rejected code and lost
replies, so parking and inquiries run too), then the outbox functions a cycle may not reach —
over a state database holding a few thousand settled messages, records and attempts. Each
is then explained: SQLite's EXPLAIN QUERY PLAN must not SCAN those tables (a SCAN reads
every row, through an index or not); PostgreSQL's EXPLAIN, after ANALYZE and with
``enable_seqscan = off`` (so a table this small is not read whole merely because it is
small), must not hold a Seq Scan on them. On both, an index searched by the transaction code
alone counts as a scan too: it hands over every record of that transaction.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, insert, inspect, select

from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool import outbox, visits
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow
from tests.conftest import _postgres_database, import_sample_mapping
from tests.legacy_state import build_legacy_state

#: the tables that grow with every upload (and every registered visit)
GROWING = ("message", "record", "attempt", "visit")
ADAPTER = Path(__file__).resolve().parents[1] / "adapter"
#: the transactions of the cycles: registration, fee lines, their cancels, discharge
TRANSACTIONS = 'transactions = ["2401", "2301", "2302", "2402"]'
REJECTED_CODE = "XA01ABD075A002010100483"
#: what is already settled when the cycles run (a few months of a small hospital)
SETTLED_MESSAGES = 3000
RECORDS_PER_MESSAGE = 3

#: the lookups the send cycle makes, by the public function that makes them; each must be seen
EXPECTED = {
    f"spool/outbox.py:{name}" for name in (
        "claim_due", "claim_unknown", "_ack", "_records_sent", "records_of", "park_rejected", "recover_in_flight",
        "next_due_at", "_retry", "mark_unknown", "hand_back", "requeue_parked", "spool_message",
        "bring_forward", "keep_unknown", "had_lost_reply", "shared_in_group", "renew_lease",
        "_take_back_later",
    )
} | {"spool/visits.py:registered_mdtrt_ids", "spool/visits.py:store_visit", "spool/visits.py:registered_elsewhere"}
#: the stages whose own queries must be seen too (whatever their functions are called)
STAGES = {"flow/check.py", "flow/build.py", "outbound/client.py"}


@dataclass(frozen=True)
class Statement:
    """One statement the code ran, with the first set of its parameters."""

    origin: str
    sql: str
    parameters: Any


class Capture:
    """Every SELECT, UPDATE and DELETE an engine runs while it is attached."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.statements: dict[tuple[str, str], Statement] = {}

    def __enter__(self) -> Capture:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, sql: str, parameters: Any, _context: Any, executemany: bool) -> None:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")):
            return
        if not any(re.search(rf"\b{table}\b", sql) for table in GROWING):
            return
        origin = _origin()
        if origin == "tests":
            return
        self.statements.setdefault((origin, sql), Statement(origin, sql, parameters[0] if executemany else parameters))

    @property
    def origins(self) -> set[str]:
        return {statement.origin for statement in self.statements.values()}


def _origin() -> str:
    """The innermost function of the adapter (outside the state store's plumbing) on the stack."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if ADAPTER in path.parents and path.name != "store.py":
            return f"{path.relative_to(ADAPTER).as_posix()}:{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return "tests"


def _settled_history(store: StateStore) -> None:
    """Thousands of messages acked long ago, with their records and attempts: what every
    lookup must not read through to find the few rows it wants."""
    now = utcnow()
    messages, records, attempts = [], [], []
    for number in range(1, SETTLED_MESSAGES + 1):
        group = f"visit:H{number // 4}"
        messages.append({
            "infno": "2301", "status": MessageStatus.ACKED.value, "group_key": group, "payload": '{"feedetail": []}',
            "line_count": RECORDS_PER_MESSAGE, "attempts": 1, "next_attempt_at": now, "last_msgid": f"H{number:029d}",
            "created_at": now, "acked_at": now,
        })
        attempts.append({"msgid": f"H{number:029d}", "message_id": number, "infno": "2301", "started_at": now,
                         "finished_at": now, "outcome": "ok", "http_status": 200, "infcode": "0"})
        records += [{
            "infno": "2301", "business_key": f"H{number}|{line}", "group_key": group,
            "status": RecordStatus.SENT.value, "raw": "{}", "payload": '{"feedetail": []}', "message_id": number,
            "created_at": now, "updated_at": now,
        } for line in range(RECORDS_PER_MESSAGE)]
    with store.begin() as conn:
        conn.execute(insert(schema.message), messages)
        conn.execute(insert(schema.attempt), attempts)
        conn.execute(insert(schema.record), records)


def _outbox_lookups(store: StateStore) -> None:
    """The outbox functions a cycle may not reach, on a message of the cycles."""
    lease = timedelta(seconds=30)
    with store.begin() as conn:
        newest = conn.execute(select(schema.message.c.id).order_by(schema.message.c.id.desc()).limit(1)).scalar_one()
        group = conn.execute(select(schema.message.c.group_key).where(schema.message.c.id == newest)).scalar_one()
    outbox.claim_due(store, 10, lease)
    outbox.claim_unknown(store, 10, lease)
    outbox.records_of(store, newest)
    outbox.renew_lease(store, newest, lease, MessageStatus.IN_FLIGHT)  # a batch's later messages
    outbox.mark_retry(store, newest, "test", 0)
    outbox.bring_forward(store)
    outbox.mark_unknown(store, newest, "test", msgid=f"H{1:029d}")
    outbox.keep_unknown(store, newest, "test", 0)
    outbox.had_lost_reply(store, newest)
    outbox.shared_in_group(store, outbox.SpooledMessage(newest, "2301", group, None, {}, 1), frozenset({"2301"}))
    outbox.hand_back(store, newest)
    outbox.park_rejected(store, newest, "test", [])
    with store.begin() as conn:
        outbox._take_back_later(conn, newest, utcnow())  # reached only when a rejection requeues
    outbox.requeue_parked(store, newest)
    outbox.requeue_parked(store)
    outbox.mark_acked(store, newest, "test")
    outbox.recover_in_flight(store)
    outbox.next_due_at(store)
    visits.bind_visit(store, "visit:H1", {})
    outbox.mark_acked_together(store, [outbox.Ack(newest, "test")])
    _spool_a_full_message(store)


def _spool_a_full_message(store: StateStore) -> None:
    """A message of 50 ready lines (lines_per_message): an IN list that long once made SQLite
    guard it through an index on status alone, reading every ready record of the backlog."""
    now = utcnow()
    with store.begin() as conn:
        conn.execute(insert(schema.record), [{
            "infno": "2301", "business_key": f"READY|{line}", "group_key": "visit:READY", "status": "ready",
            "raw": "{}", "payload": '{"feedetail": []}', "created_at": now, "updated_at": now,
        } for line in range(50)])
        ids = list(conn.execute(select(schema.record.c.id).where(schema.record.c.group_key == "visit:READY"))
                   .scalars())
        outbox.spool_message(conn, infno="2301", group_key="visit:READY", payload={"feedetail": []}, record_ids=ids)


def _aliases(sql: str, table: str) -> set[str]:
    return {table} | set(re.findall(rf"\b{table}\s+AS\s+(\w+)", sql))


def _by_transaction_only(condition: str) -> bool:
    """Whether an index condition names no column but ``infno``: a handful of transaction
    codes, each selecting every record of its transaction (a scan in all but name)."""
    return _columns(condition) == {"infno"}


#: rows PostgreSQL may expect from a transaction-wide index condition (it has statistics: a
#: transaction of a few dozen records, 2401 here, is read through its infno quite rightly)
_FEW_ROWS = 200
#: columns of a handful of values each (a transaction, a state)
_FEW_VALUES = {"infno", "status", "park_kind"}
#: a list of keys that picks the rows itself
_KEY_LIST = re.compile(r"\.(id|business_key) IN \(")


def _by_state_beside_keys(condition: str, sql: str) -> bool:
    """Whether a statement that picks its rows by a list of keys (``id IN (...)``) is planned
    through its state guard instead (``status = 'ready'``): it then reads every record in that
    state, as many as the backlog holds, for the few it names."""
    named = _columns(condition)
    return bool(named) and named <= _FEW_VALUES and _KEY_LIST.search(sql) is not None


def _columns(condition: str) -> set[str]:
    columns = {column.name for table in GROWING for column in schema.metadata.tables[table].columns} | {"rowid"}
    return set(re.findall(r"\b(\w+)\b", condition)) & columns


def _sqlite_scans(engine: Engine, statement: Statement) -> list[str]:
    with engine.connect() as conn:
        details = [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement.sql,
                                                          statement.parameters)]
    names = {alias: table for table in GROWING for alias in _aliases(statement.sql, table)}
    found = []
    for detail in details:
        step = re.match(r"(SCAN|SEARCH) (\w+)(?: USING (?:COVERING )?INDEX \w+ \((.*)\))?", detail)
        if step is None or step.group(2) not in names:
            continue
        condition = step.group(3) or ""
        if (step.group(1) == "SCAN" or _by_transaction_only(condition)
                or _by_state_beside_keys(condition, statement.sql)):
            found.append(detail)
    return found


def _postgres_scans(engine: Engine, statement: Statement) -> list[str]:
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        (plan,) = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement.sql, statement.parameters).scalar_one()
        conn.rollback()
    found = []
    for node in _nodes(plan["Plan"]):
        if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in GROWING:
            found.append(f"Seq Scan on {node['Relation Name']}")
        elif "Index Cond" in node and node["Plan Rows"] > _FEW_ROWS and (
                _by_transaction_only(node["Index Cond"]) or _by_state_beside_keys(node["Index Cond"], statement.sql)):
            found.append(f"{node['Node Type']} using {node['Index Name']} by {node['Index Cond']}")
    return found


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


@pytest.mark.slow
def test_every_lookup_of_the_send_cycle_uses_an_index(make_adapter, make_centre, sample_his, state_url):
    centre = make_centre("nhsa", reject_codes=frozenset({REJECTED_CODE}), drop_reply_rate=0.2, seed=3)
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           his_extra=TRANSACTIONS)
    store = adapter.store
    _settled_history(store)
    import_sample_mapping(adapter, sample_his)
    with Capture(store.engine) as capture:
        outbox.recover_in_flight(store)
        for _ in range(4):
            adapter.cycle.run()
        centre.faults = FaultPlan()
        adapter.cycle.run()
        _outbox_lookups(store)
    unseen = (EXPECTED - capture.origins) | (STAGES - {origin.split(":")[0] for origin in capture.origins})
    assert not unseen, f"not seen: {sorted(unseen)}"

    if store.dialect == "postgresql":
        with store.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    explain = _postgres_scans if store.dialect == "postgresql" else _sqlite_scans
    full_scans = []
    for statement in capture.statements.values():
        full_scans += [f"{statement.origin}: {scan}\n    {' '.join(statement.sql.split())[:300]}"
                       for scan in explain(store.engine, statement)]
    assert not full_scans, "full table scans:\n" + "\n".join(full_scans)


def _shape(url: str) -> dict[str, Any]:
    """Tables, columns, keys and indexes as the database reports them."""
    engine = create_engine(url)
    try:
        found = inspect(engine)
        shape = {
            table: {
                "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in found.get_columns(table)],
                "primary key": found.get_pk_constraint(table)["constrained_columns"],
                "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                  for i in found.get_indexes(table)),
                "unique": sorted((u["name"], tuple(u["column_names"])) for u in found.get_unique_constraints(table)),
                "foreign keys": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                        tuple(f["referred_columns"])) for f in found.get_foreign_keys(table)),
            }
            for table in sorted(found.get_table_names())
        }
        with engine.connect() as conn:
            shape["(differences from adapter.state.schema)"] = compare_metadata(
                MigrationContext.configure(conn), schema.metadata)
        return shape
    finally:
        engine.dispose()


def _second_database(state_url: str, tmp_path: Path) -> Iterator[str]:
    if state_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'upgraded.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def upgraded_url(state_url: str, tmp_path: Path) -> Iterator[str]:
    yield from _second_database(state_url, tmp_path)


def test_an_upgraded_database_is_the_same_as_a_new_one(state_url, upgraded_url):
    StateStore(state_url).close()
    build_legacy_state(upgraded_url)
    StateStore(upgraded_url).close()
    new, upgraded = _shape(state_url), _shape(upgraded_url)
    assert new["(differences from adapter.state.schema)"] == []
    assert upgraded == new
    assert ("ix_attempt_message", ("message_id",), False) in new["attempt"]["indexes"]
