"""Benchmark: the adapter's claim -> send -> ack loop over a ledger of N lines, with a null
transport and with the simulated centre on loopback, next to a raw sqlite3 WAL get+delete
queue and persist-queue's SQLiteAckQueue get+ack of the same payloads. Run by hand:

    .venv/bin/python bench/send_cycle.py [--ledger-sizes 100000,1000000[,10000000]]
        [--messages 2000] [--state-url postgresql://...] [--fsync-delay-ms 5]

The ledger is pre-filled with executemany (COPY on PostgreSQL) from real 2301 messages: a
small sample HIS goes through the adapter's own extract, check and build, and its messages
(about 8 KB, one stay's 12-13 lines each) are cloned with fresh visit numbers and serials.
The last messages are pending, in batches of ``--messages``, one batch per run of a loop;
all the others are history (acked, their lines sent, one attempt each). Only the first batch
is due; each later batch is due in 2100 until its run comes, so every run sends its own batch
over the same ledger, without a copy of it. The two anchors hold as many rows as the ledger
has messages, with the same payload texts, and each of their runs takes ``--messages``.
With ``--repeat N`` every loop runs N times (alternating) and the best run is shown with the
spread: the machine may be shared.

The adapter's loops also count their write commits a message: with SQLite in WAL mode and
synchronous=FULL each is one fsync, which this machine's disk does in a fraction of a
millisecond and a spinning disk in several. ``--fsync-delay-ms N`` has every loop run on such a
disk: bench/slow_fsync.c (compiled with ``cc``, loaded with LD_PRELOAD) adds N ms to each
fsync and fdatasync of the loops' processes.

Each loop runs in its own freshly spawned process (peak RSS is its own); the simulated centre
runs in another. "CPU s" is the loop's own CPU time (not the centre's, nor PostgreSQL's), which
other work on a shared machine disturbs less than the wall-clock "s". On PostgreSQL a third
anchor, raw get+delete on that server, stands beside the SQLite ones. 10M lines is about 30 GB
of SQLite files and is opt-in.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import benchkit

_HISTORY_AT = datetime(2026, 1, 1, 0, 0, 0)
#: when a batch of pending messages is due until its run comes
LATER = datetime(2100, 1, 1)


# -- real messages as templates ------------------------------------------------------------------
@dataclass(frozen=True)
class Template:
    """One spooled 2301 message and its records, with the visit number and the line serials
    replaced by %-format fields, so a clone renders with one ``%``."""

    insuplc_admdvs: str | None
    payload: str
    #: per record: (raw, payload), tokenised the same way
    records: list[tuple[str, str]]

    @property
    def lines(self) -> int:
        return len(self.records)


def _tokens(node: Any, mdtrt: str, serials: dict[str, int]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "mdtrt_id" and str(value) == mdtrt:
                value = "@@M@@"
            elif key in ("feedetl_sn", "init_feedetl_sn") and str(value) in serials:
                value = f"@@S{serials[str(value)]:04d}@@"
            else:
                value = _tokens(value, mdtrt, serials)
            out[key] = value
        return out
    if isinstance(node, list):
        return [_tokens(item, mdtrt, serials) for item in node]
    return node


def _tokenised(text: str, load: Any, dump: Any, mdtrt: str, serials: dict[str, int]) -> str:
    """``text`` (JSON) as a %-format with the visit number (``m``) and the serial prefix (``s``)."""
    done: str = dump(_tokens(load(text), mdtrt, serials))
    if done.count("@@") != 2 * (done.count("@@M@@") + done.count("@@S")):
        raise ValueError("a template text holds '@@' of its own; pick other tokens")
    return done.replace("%", "%%").replace("@@M@@", "%(m)s").replace("@@S", "%(s)s").replace("@@", "")


def _dump_raw(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)  # as the extract stage writes ``raw``


def _render(template: str, mdtrt: str, serial: str) -> str:
    """A clone's text: the line serial is the clone's prefix and the line's 4-digit number."""
    return template % {"m": mdtrt, "s": serial}


def _clone_keys(k: int) -> tuple[str, str]:
    """The visit number (mdtrt_id) and the serial prefix of clone ``k``: feedetl_sn is the
    prefix and a 4-digit line number (digits, at most 15, never 0)."""
    return f"{benchkit.ADMDVS}{k + 1:09d}", f"{k + 1:08d}"


def make_templates(scratch: Path) -> list[Template]:
    """Messages of a small sample HIS, spooled by the adapter's own extract, check and build."""
    from sqlalchemy import create_engine, text

    from adapter import jsonio
    from adapter.flow.report import CycleReport

    his = benchkit.make_his(scratch / "templates_his.db", 3000, sample_visits=60)
    with benchkit.state_database(None, scratch, "templates") as state_url:
        benchkit.import_sample_mapping(state_url)
        adapter = benchkit.build(benchkit.config_toml(his_url=his.url, state_url=state_url))
        try:
            report = CycleReport()
            for stage in ("extract", "check", "build"):
                getattr(adapter.cycle, stage).run(report)
        finally:
            adapter.close()
        engine = create_engine(state_url)
        with engine.connect() as conn:
            messages = conn.execute(text("SELECT id, group_key, insuplc_admdvs, payload FROM message "
                                         "WHERE infno = '2301' ORDER BY id")).all()
            records = conn.execute(text("SELECT message_id, business_key, raw, payload FROM record "
                                        "WHERE message_id IS NOT NULL ORDER BY id")).all()
        engine.dispose()
    by_message: dict[int, list[Any]] = {}
    for row in records:
        by_message.setdefault(row.message_id, []).append(row)
    templates = []
    for message in messages:
        mdtrt = message.group_key.split(":", 1)[1]
        rows = by_message[message.id]
        serials = {row.business_key.split("|", 1)[1]: n for n, row in enumerate(rows, start=1)}
        templates.append(Template(
            message.insuplc_admdvs, _tokenised(message.payload, jsonio.loads, jsonio.dumps, mdtrt, serials),
            [(_tokenised(row.raw, json.loads, _dump_raw, mdtrt, serials),
              _tokenised(row.payload, jsonio.loads, jsonio.dumps, mdtrt, serials)) for row in rows],
        ))
    return templates


def messages_for(templates: list[Template], lines: int) -> int:
    """How many cloned messages make a ledger of at least ``lines`` lines."""
    total, count = 0, 0
    while total < lines:
        total += templates[count % len(templates)].lines
        count += 1
    return count


# -- pre-filling the ledger ----------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Messages 1..count; the last ``batches`` x ``batch`` are pending."""

    count: int
    batch: int
    batches: int

    @property
    def history(self) -> int:
        return self.count - self.batch * self.batches

    def ids(self, index: int) -> tuple[int, int]:
        """The first and last message id of pending batch ``index`` (0: due from the start)."""
        first = self.history + index * self.batch + 1
        return first, first + self.batch - 1


def _ledger_rows(templates: list[Template], layout: Layout, sqlite: bool) -> Iterator[tuple[str, tuple]]:
    """(table, row) in insertion order: messages 1..count, their records, their attempts."""
    from adapter.spool.states import MessageStatus, RecordStatus

    count, history = layout.count, layout.history
    due_until = layout.ids(0)[1]
    record_id = 0
    now = datetime.now() - timedelta(days=1)  # due now, whatever the time zone (the store keeps UTC)

    def stamp(moment: datetime) -> Any:
        return f"{moment:%Y-%m-%d %H:%M:%S.%f}" if sqlite else moment

    due_now, due_later = stamp(now), stamp(LATER)
    for k in range(count):
        template = templates[k % len(templates)]
        mdtrt, serial = _clone_keys(k)
        done = k < history
        at = _HISTORY_AT + timedelta(seconds=k) if done else now
        at_s = stamp(at) if done else due_now
        next_s = at_s if k < due_until else due_later
        msgid = f"{benchkit.FIXMEDINS_CODE}{_HISTORY_AT + timedelta(seconds=k // 9999):%Y%m%d%H%M%S}" \
                f"{k % 9999 + 1:04d}"
        refmsgid = f"{benchkit.ADMDVS}{at:%Y%m%d%H%M%S}{k:010d}"
        yield "message", (k + 1, "2301", (MessageStatus.ACKED if done else MessageStatus.PENDING).value,
                          f"visit:{mdtrt}", template.insuplc_admdvs, _render(template.payload, mdtrt, serial),
                          template.lines, 1 if done else 0, next_s, None, msgid if done else None, None,
                          refmsgid if done else None, at_s, at_s if done else None)
        for n, (raw, payload) in enumerate(template.records, start=1):
            record_id += 1
            yield "record", (record_id, "2301", f"{mdtrt}|{serial}{n:04d}", f"visit:{mdtrt}",
                             (RecordStatus.SENT if done else RecordStatus.QUEUED).value, None, None,
                             _render(raw, mdtrt, serial), _render(payload, mdtrt, serial), k + 1, at_s, at_s)
        if done:
            yield "attempt", (msgid, k + 1, "2301", at_s, at_s, "ok", 200, "0", "success", refmsgid)


_COLUMNS = {
    "message": ("id", "infno", "status", "group_key", "insuplc_admdvs", "payload", "line_count", "attempts",
                "next_attempt_at", "lease_until", "last_msgid", "last_error", "inf_refmsgid", "created_at",
                "acked_at"),
    "record": ("id", "infno", "business_key", "group_key", "status", "park_kind", "park_reason", "raw", "payload",
               "message_id", "created_at", "updated_at"),
    "attempt": ("msgid", "message_id", "infno", "started_at", "finished_at", "outcome", "http_status", "infcode",
                "err_msg", "inf_refmsgid"),
}


def _present_columns() -> dict[str, tuple[int, ...]]:
    """Per table, the positions in ``_COLUMNS`` of the columns the measured adapter's schema has
    (the schema changes between commits); a required column this bench does not fill fails here."""
    from adapter.state import schema

    kept = {}
    for name, columns in _COLUMNS.items():
        table = schema.metadata.tables[name]
        missing = [c.name for c in table.columns if c.name not in columns and not c.nullable
                   and c.default is None and c.server_default is None]
        if missing:
            raise SystemExit(f"the state schema's {name} table has required columns this bench does not fill: "
                             f"{', '.join(missing)}")
        kept[name] = tuple(i for i, column in enumerate(columns) if column in table.columns)
    return kept


def prefill_ledger(state_url: str, templates: list[Template], layout: Layout) -> float:
    """The adapter creates its tables; the rows go in with executemany (COPY on PostgreSQL)."""
    from adapter.state.store import StateStore

    StateStore(state_url).close()
    started = time.perf_counter()
    if benchkit.is_postgres(state_url):
        _prefill_postgres(state_url, templates, layout)
    else:
        _prefill_sqlite(Path(state_url[len("sqlite:///"):]), templates, layout)
    return time.perf_counter() - started


def _prefill_sqlite(path: Path, templates: list[Template], layout: Layout) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        batches: dict[str, list[tuple]] = {name: [] for name in _COLUMNS}
        kept = _present_columns()
        sql = {name: f"INSERT INTO {name} ({', '.join(_COLUMNS[name][i] for i in kept[name])}) "
                     f"VALUES ({', '.join('?' * len(kept[name]))})" for name in _COLUMNS}
        for table, row in _ledger_rows(templates, layout, sqlite=True):
            batch = batches[table]
            batch.append(tuple(row[i] for i in kept[table]))
            if len(batch) >= 20_000:  # a commit a chunk keeps the WAL small (checkpoints follow)
                _flush_sqlite(conn, sql, batches)
        _flush_sqlite(conn, sql, batches)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _flush_sqlite(conn: sqlite3.Connection, sql: dict[str, str], batches: dict[str, list[tuple]]) -> None:
    conn.execute("BEGIN")
    for name in ("message", "record", "attempt"):  # parents first (foreign keys)
        conn.executemany(sql[name], batches[name])
        batches[name].clear()
    conn.execute("COMMIT")


def _prefill_postgres(url: str, templates: list[Template], layout: Layout) -> None:
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        with conn.cursor() as cur:
            # one COPY per table; the rows are generated three times rather than held in memory
            kept = _present_columns()
            for name in ("message", "record", "attempt"):
                columns = ", ".join(_COLUMNS[name][i] for i in kept[name])
                with cur.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                    for table, row in _ledger_rows(templates, layout, sqlite=False):
                        if table == name:
                            copy.write_row(tuple(row[i] for i in kept[name]))
            for name in ("message", "record"):
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))")
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE")  # what autovacuum would have done on a ledger this old


def make_due(state_url: str, first: int, last: int) -> None:
    """Pending messages ``first``..``last`` due now, and no cached sign-in (each run signs in to
    its own centre), through the adapter's own store and tables."""
    from sqlalchemy import delete, update

    from adapter.state import schema
    from adapter.state.store import StateStore, utcnow

    store = StateStore(state_url)
    try:
        with store.begin() as conn:
            conn.execute(update(schema.message).where(schema.message.c.id.between(first, last))
                         .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
            conn.execute(delete(schema.session))
    finally:
        store.close()


def _libpq(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def _payloads(templates: list[Template], count: int) -> Iterator[str]:
    for k in range(count):
        mdtrt, serial = _clone_keys(k)
        yield _render(templates[k % len(templates)].payload, mdtrt, serial)


def prefill_raw_sqlite(path: Path, templates: list[Template], count: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE queue (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO queue (payload) VALUES (?)", ((p,) for p in _payloads(templates, count)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def prefill_persist_queue(folder: Path, templates: list[Template], count: int) -> None:
    """The queue creates its table; the items go in with executemany, serialised as its put()
    would (its default pickle serializer), status ready."""
    from persistqueue import SQLiteAckQueue
    from persistqueue.serializers import pickle as serializer

    queue = SQLiteAckQueue(str(folder), auto_resume=False)
    table = queue._table_name  # the library's own name for its table
    queue.close()
    conn = sqlite3.connect(folder / "data.db", isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN")
        now = time.time()
        conn.executemany(f"INSERT INTO {table} (data, timestamp, status) VALUES (?, ?, 1)",
                         ((serializer.dumps(p), now) for p in _payloads(templates, count)))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def prefill_raw_postgres(url: str, templates: list[Template], count: int) -> None:
    import psycopg

    with psycopg.connect(_libpq(url)) as conn:
        conn.execute("CREATE TABLE queue (id bigserial PRIMARY KEY, payload text NOT NULL)")
        with conn.cursor() as cur, cur.copy("COPY queue (payload) FROM STDIN") as copy:
            for payload in _payloads(templates, count):
                copy.write_row((payload,))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE queue")


# -- the loops, each in its own process ----------------------------------------------------------------
class NullCentre:
    """A transport that never leaves the process: every request gets a success reply at once.
    The reply is canned apart from what the adapter checks an answer against: 9001 gets a
    sign_no, 2301 one result line per line sent (naming its feedetl_sn), and every answer its
    own inf_refmsgid (an answer repeating one is taken as another request's)."""

    def __init__(self) -> None:
        self.serial = 0

    def post(self, url: str, body: bytes, headers: Any) -> Any:
        from adapter.outbound.transport import HttpReply

        document = json.loads(body)
        self.serial += 1
        now = datetime.now()
        inputs = document.get("input") or {}
        output: dict[str, Any] = {}
        if document.get("infno") == "9001":
            output = {"signinoutb": {"sign_no": f"{self.serial:09d}", "sign_time": f"{now:%Y-%m-%d %H:%M:%S}"}}
        elif isinstance(inputs.get("feedetail"), list):
            output = {"result": [
                {"feedetl_sn": line.get("feedetl_sn"), "det_item_fee_sumamt": line.get("det_item_fee_sumamt"),
                 "cnt": line.get("cnt"), "pric": line.get("pric"), "pric_uplmt_amt": line.get("pric"),
                 "selfpay_prop": 0, "fulamt_ownpay_amt": 0, "overlmt_amt": 0, "preselfpay_amt": 0,
                 "inscp_scp_amt": line.get("det_item_fee_sumamt"), "chrgitm_lv": "01", "med_chrgitm_type": "",
                 "bas_medn_flag": "0", "hi_nego_drug_flag": "0", "chld_medc_flag": "0", "list_sp_item_flag": "0",
                 "lmt_used_flag": "0", "drt_reim_flag": "0", "memo": ""}
                for line in inputs["feedetail"]]}
        reply = {"infcode": 0, "inf_refmsgid": f"{benchkit.ADMDVS}{now:%Y%m%d%H%M%S}{self.serial:010d}",
                 "refmsg_time": f"{now:%Y%m%d%H%M%S%f}"[:17], "respond_time": f"{now:%Y%m%d%H%M%S%f}"[:17],
                 "err_msg": "success", "warn_msg": None, "cainfo": None, "signtype": None, "output": output}
        return HttpReply(200, "application/json;charset=UTF-8", json.dumps(reply, ensure_ascii=False).encode())

    def post_multipart(self, url: str, fields: Any, files: Any, headers: Any) -> Any:
        return self.post(url, str(fields.get("jsonStr", "{}")).encode(), headers)


def _adapter_loop(config: str, null: bool, expected: int) -> dict[str, Any]:
    """Send passes (adapter.flow.cycle.Cycle.send_due: claim, send, settle) until the pending
    messages are acked."""
    from adapter.flow.report import CycleReport

    adapter = benchkit.build(config)
    if null:
        centre = NullCentre()
        adapter.transport.post = centre.post
        adapter.transport.post_multipart = centre.post_multipart
    commits = benchkit.WriteCommits(adapter.store.engine)
    try:
        report = CycleReport()
        started, cpu = time.perf_counter(), time.process_time()
        for _pass in range(50):
            before = report.messages_acked
            adapter.cycle.send_due(report)
            if report.messages_acked >= expected or report.messages_acked == before:
                break
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        commits.close()
        adapter.close()
    return {"messages": report.messages_acked, "lines": report.lines_acked, "seconds": elapsed, "cpu": cpu,
            "failed": report.transient_failures + report.messages_rejected + report.outcomes_unknown,
            "commits": commits.count}


def _raw_sqlite_loop(path: str, count: int) -> dict[str, Any]:
    """get+delete, one committed transaction each, with the adapter store's durability."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    taken = size = 0
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id, payload FROM queue ORDER BY id LIMIT 1").fetchone()
        conn.execute("DELETE FROM queue WHERE id = ?", (row[0],))
        conn.execute("COMMIT")
        taken += 1
        size += len(row[1])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    conn.close()
    return {"messages": taken, "seconds": elapsed, "cpu": cpu, "bytes": size}


def _persist_queue_loop(folder: str, count: int) -> dict[str, Any]:
    from persistqueue import SQLiteAckQueue

    queue = SQLiteAckQueue(folder, auto_resume=False)
    synchronous = queue._putter.execute("PRAGMA synchronous").fetchone()[0]
    taken = 0
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        item = queue.get(block=False, raw=True)
        queue.ack(id=item["pqid"])
        taken += 1
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    queue.close()
    return {"messages": taken, "seconds": elapsed, "cpu": cpu, "synchronous": synchronous}


def _raw_postgres_loop(url: str, count: int) -> dict[str, Any]:
    import psycopg

    taken = 0
    with psycopg.connect(_libpq(url)) as conn:
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            with conn.transaction():
                row = conn.execute("SELECT id, payload FROM queue ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
                                   ).fetchone()
                assert row is not None
                conn.execute("DELETE FROM queue WHERE id = %s", (row[0],))
            taken += 1
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"messages": taken, "seconds": elapsed, "cpu": cpu}


# -- the run ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--ledger-sizes", default="100000,1000000",
                        help="ledger sizes in fee lines, comma-separated (default 100000,1000000; 10000000 opt-in)")
    parser.add_argument("--messages", type=int, default=2000, help="pending messages each loop sends (default 2000)")
    parser.add_argument("--state-url", help="a PostgreSQL server URL (postgresql://...); default: SQLite files")
    parser.add_argument("--repeat", type=int, default=1, help="runs of every loop; the best is shown (default 1)")
    parser.add_argument("--fsync-delay-ms", type=float, default=0.0,
                        help="add this much to every fsync of the loops, as a slower disk would (needs cc)")
    parser.add_argument("--centre-with-nagle", action="store_true",
                        help="leave the simulated centre's sockets without TCP_NODELAY (about 40 ms a request)")
    options = parser.parse_args()
    sizes = [int(size.replace("_", "")) for size in options.ledger_sizes.split(",") if size.strip()]
    nodelay = not options.centre_with_nagle
    repeat = max(1, options.repeat)
    state_base = benchkit.normalise_url(options.state_url)
    postgres = benchkit.is_postgres(state_base)
    print(benchkit.machine_line(state_base))
    rows = []
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch_name:
        scratch = Path(scratch_name)
        if options.fsync_delay_ms > 0:
            _slow_disk(scratch, options.fsync_delay_ms)
        started = time.perf_counter()
        templates = make_templates(scratch)
        sizes_b = [len(_render(t.payload, *_clone_keys(0))) for t in templates]
        lines_per_message = sum(t.lines for t in templates) / len(templates)
        print(f"payloads: {len(templates)} real 2301 messages as templates ({time.perf_counter() - started:.1f} s), "
              f"{sum(sizes_b) / len(sizes_b) / 1024:.1f} KB and {lines_per_message:.1f} lines a message on average",
              flush=True)
        probes = {}
        for variant in (False, True):
            with benchkit.simulated_centre(variant) as url:
                probes[variant] = benchkit.round_trip_ms(url)
        print(f"simulated centre, one refused request (HTTP 401) on loopback: {probes[False]:.1f} ms with Nagle on, "
              f"{probes[True]:.1f} ms with TCP_NODELAY; the loops below use "
              f"{'TCP_NODELAY' if nodelay else 'Nagle on'}", flush=True)
        for lines in sizes:
            count = messages_for(templates, lines)
            layout = Layout(count, min(options.messages, count // (2 * repeat)), 2 * repeat)
            runs: dict[str, list[tuple[dict[str, Any], float]]] = {}
            with benchkit.state_database(state_base, scratch, f"ledger{lines}") as ledger_url:
                seconds = prefill_ledger(ledger_url, templates, layout)
                print(f"  ledger of {lines:,} lines ({count:,} messages, {layout.batches} x {layout.batch:,} pending) "
                      f"pre-filled in {seconds:.1f} s ({benchkit.rate(lines, seconds):,.0f} lines/s)", flush=True)
                for index in range(layout.batches):
                    null = index % 2 == 0
                    if index:
                        make_due(ledger_url, *layout.ids(index))
                    with _centre(null, nodelay) as centre_url:
                        config = benchkit.config_toml(his_url=f"sqlite:///{scratch / 'unused_his.db'}",
                                                      state_url=ledger_url, centre_url=centre_url)
                        result, peak = benchkit.in_child(_adapter_loop, config, null, layout.batch)
                    loop = "adapter, null transport" if null else "adapter, simulated centre (loopback)"
                    runs.setdefault(loop, []).append((result, peak))
                    print(f"  {lines:,}: {loop}: {benchkit.rate(result['messages'], result['seconds']):,.0f} msgs/s",
                          flush=True)
            raw = scratch / f"raw{lines}.db"
            prefill_raw_sqlite(raw, templates, count)
            for _run in range(repeat):
                runs.setdefault("anchor: raw sqlite3 WAL get+delete", []).append(
                    benchkit.in_child(_raw_sqlite_loop, str(raw), layout.batch))
            for suffix in ("", "-wal", "-shm"):
                Path(f"{raw}{suffix}").unlink(missing_ok=True)
            folder = scratch / f"pq{lines}"
            prefill_persist_queue(folder, templates, count)
            for _run in range(repeat):
                runs.setdefault("anchor: persist-queue SQLiteAckQueue get+ack", []).append(
                    benchkit.in_child(_persist_queue_loop, str(folder), layout.batch))
            for file in folder.iterdir():
                file.unlink()
            folder.rmdir()
            if postgres:
                with benchkit.state_database(state_base, scratch, f"rawq{lines}") as queue_url:
                    prefill_raw_postgres(queue_url, templates, count)
                    for _run in range(repeat):
                        runs.setdefault("anchor: raw PostgreSQL get+delete", []).append(
                            benchkit.in_child(_raw_postgres_loop, queue_url, layout.batch))
            print(f"  {lines:,}: anchors done", flush=True)
            for loop, results in runs.items():
                rows.append(_row(lines, count, loop, results, layout.batch))
    print()
    benchkit.print_table(("ledger lines", "messages", "loop", "sent", "s", "CPU s", "msgs/s", "lines/s", "peak MB",
                          "note"),
                         rows)
    print(f"at the end: {benchkit.load_line()}")


def _row(lines: int, count: int, loop: str, results: list[tuple[dict[str, Any], float]], batch: int) -> tuple:
    """The best run of a loop, with the spread of the others."""
    rates = [benchkit.rate(r["messages"], r["seconds"]) for r, _peak in results]
    best = max(range(len(results)), key=lambda i: rates[i])
    result = results[best][0]
    notes = []
    if len(results) > 1:
        notes.append(f"best of {len(results)}, all {min(rates):,.0f}-{max(rates):,.0f} msgs/s")
    if any(r["messages"] != batch for r, _peak in results):
        notes.append(f"a run sent {min(r['messages'] for r, _peak in results):,} of {batch:,}")
    if any(r.get("failed") for r, _peak in results):
        notes.append(f"{sum(r.get('failed', 0) for r, _peak in results):,} failed")
    if "commits" in result and result["messages"]:
        notes.append(f"{result['commits'] / result['messages']:.2f} write commits a message")
    if "synchronous" in result:
        notes.append(f"synchronous={result['synchronous']} (2 is FULL)")
    elif loop.startswith("anchor: raw sqlite3"):
        notes.append("synchronous=FULL")
    elif loop.startswith("anchor: raw PostgreSQL"):
        notes.append("FOR UPDATE SKIP LOCKED")
    lines_rate = benchkit.rate(result["lines"], result["seconds"]) if "lines" in result else None
    return (lines, count, loop, result["messages"], result["seconds"], result["cpu"], rates[best], lines_rate,
            max(p for _r, p in results), "; ".join(notes))


def _slow_disk(scratch: Path, delay_ms: float) -> None:
    """Every process spawned from here on syncs as a disk ``delay_ms`` slower per fsync would."""
    import os
    import subprocess

    library = scratch / "slow_fsync.so"
    subprocess.run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(library),
                    str(Path(__file__).with_name("slow_fsync.c")), "-ldl"], check=True)
    os.environ["LD_PRELOAD"] = str(library)
    os.environ["YIBAO_BENCH_FSYNC_DELAY_MS"] = str(delay_ms)
    print(f"a slower disk: {delay_ms:g} ms added to every fsync and fdatasync of the loops (LD_PRELOAD)", flush=True)


def _centre(null: bool, nodelay: bool) -> Any:
    if null:
        from contextlib import nullcontext

        return nullcontext("http://127.0.0.1:9")
    return benchkit.simulated_centre(nodelay)


if __name__ == "__main__":
    sys.exit(main())
