"""What the benchmarks in bench/ share: the machine line, measurements in a fresh child process
(so each peak RSS is its own), fresh state databases (a SQLite file, or a database created on
the PostgreSQL server ``--state-url`` names and dropped afterwards), a configuration for the
adapter, a sample HIS of any size at speed, and the simulated centre in its own process.

Not a benchmark itself; the scripts beside it import it (``python bench/NAME.py`` puts bench/
on sys.path).
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import random
import resource
import sqlite3
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: credentials of the benchmarks' simulated gateway (not secrets: loopback only)
PAASID = "bench_hosp"
TOKEN = "bench-token-not-a-secret"
FIXMEDINS_CODE = "H43111100255"
ADMDVS = "431199"

_SPAWN = multiprocessing.get_context("spawn")


# -- the machine and the table ---------------------------------------------------------------
def machine_line(state_url: str | None = None) -> str:
    state = "SQLite file (WAL, synchronous=FULL)" if not is_postgres(state_url) else (
        f"PostgreSQL {postgres_version(state_url)}")
    return (f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}; state store: {state}; {datetime.now():%Y-%m-%d %H:%M}; "
            f"{load_line()}\n{code_line()}")


def code_line() -> str:
    """Which adapter is measured: its folder, and its commit when that is a git checkout (an
    export of another commit on PYTHONPATH measures that commit, see bench/README.md)."""
    import subprocess

    import adapter

    root = Path(adapter.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--", "adapter", "plugins"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"adapter code: {root} (not a git checkout)"
    dirty = " with uncommitted changes in adapter/ or plugins/" if changed else ""
    return f"adapter code: {root} at {commit}{dirty}"


def load_line() -> str:
    """The load average now: other work on the machine shows in every figure."""
    one, five, _fifteen = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain text table: numbers right-aligned and grouped by thousands, text left-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max([len(str(h))] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    text = [bool(rows) and all(isinstance(row[i], str) or row[i] is None for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(f"{v:<{w}}" if left else f"{v:>{w}}" for v, w, left in zip(values, widths, text, strict=True))

    print(line([str(h) for h in headers]).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(line(row).rstrip())


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}" if value >= 10 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


# -- measuring in a child process --------------------------------------------------------------
def peak_mb() -> float:
    """This process's peak RSS in MB: VmHWM, the high-water mark of its own address space
    (ru_maxrss survives exec, so a spawned child would report its parent's peak if larger)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def in_child(target: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """Run ``target(*args)`` in a freshly spawned interpreter; returns (its result, its peak RSS
    in MB). A spawned child starts from nothing (a forked one would inherit the parent's pages)."""
    parent, child = _SPAWN.Pipe(duplex=False)
    process = _SPAWN.Process(target=_child_main, args=(target, args, child))
    process.start()
    child.close()
    try:
        ok, value, peak = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"{target.__name__} died in its child process (exit code {process.exitcode})") from None
    process.join()
    if not ok:
        raise RuntimeError(f"{target.__name__} failed in its child process:\n{value}")
    return value, peak


def _child_main(target: Callable[..., Any], args: tuple[Any, ...], pipe: Any) -> None:
    try:
        result = target(*args)
    except BaseException:  # report anything to the parent, then fail
        pipe.send((False, traceback.format_exc(), peak_mb()))
        raise
    pipe.send((True, result, peak_mb()))


# -- state databases ---------------------------------------------------------------------------
def is_postgres(url: str | None) -> bool:
    return bool(url) and str(url).split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")


def normalise_url(url: str | None) -> str | None:
    """``postgresql://`` and ``postgres://`` mean the psycopg (3) driver the project installs."""
    if url and url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def postgres_version(url: str | None) -> str:
    from sqlalchemy import create_engine, text

    engine = create_engine(normalise_url(url) or "")
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar()).split()[0]
    finally:
        engine.dispose()


@contextmanager
def state_database(base: str | None, scratch: Path, name: str) -> Iterator[str]:
    """A fresh, empty state database for one measurement: a SQLite file in ``scratch`` (or in
    the directory of a ``sqlite:///`` URL given), or a new database on the PostgreSQL server of
    ``base``, dropped afterwards."""
    base = normalise_url(base)
    if not is_postgres(base):
        folder = scratch
        if base and base.startswith("sqlite:///") and base != "sqlite://":
            folder = Path(base[len("sqlite:///"):]).parent
        path = folder / f"{name}-{uuid.uuid4().hex[:6]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    database = f"yibao_bench_{name}_{uuid.uuid4().hex[:8]}".lower()
    _pg_admin(base, f'CREATE DATABASE "{database}"')
    try:
        yield _pg_url(base, database)
    finally:
        _pg_admin(base, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _pg_url(base: str, database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(base).set(database=database).render_as_string(hide_password=False)


def _pg_admin(url: str, statement: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()


# -- the adapter's configuration -----------------------------------------------------------------
def config_toml(*, his_url: str, state_url: str, centre_url: str = "http://127.0.0.1:9", schedule: str = "",
                centre: str = "") -> str:
    """A configuration uploading 2301 only, read with the sample HIS schema's fee query."""
    from adapter.rehearsal.sample_queries import FEE_LINES

    return f"""
[his]
url = "{his_url}"
fee_query = '''{FEE_LINES}'''
transactions = ["2301"]

[centre]
region = "nhsa"
base_url = "{centre_url}"
fixmedins_code = "{FIXMEDINS_CODE}"
fixmedins_name = "bench"
mdtrtarea_admvs = "{ADMDVS}"
opter = "0001"
opter_name = "bench"
timeout_seconds = 30
{centre}

[centre.credentials]
paasid = {{ env = "YIBAO_BENCH_PAASID" }}
token = {{ env = "YIBAO_BENCH_TOKEN" }}

[state]
url = "{state_url}"

[schedule]
{schedule}

[logging]
level = "WARNING"
"""


def set_credentials() -> None:
    os.environ["YIBAO_BENCH_PAASID"] = PAASID
    os.environ["YIBAO_BENCH_TOKEN"] = TOKEN


def build(config: str) -> Any:
    """The wired adapter of a configuration (adapter.app.build_adapter)."""
    from adapter.app import build_adapter
    from adapter.config import parse_settings

    set_credentials()
    quiet_logs()
    return build_adapter(parse_settings(config))


class WriteCommits:
    """Counts the commits of transactions that wrote something on an engine (a read-only
    transaction commits too, without a sync). With SQLite in WAL mode and synchronous=FULL each
    is one fsync of the WAL; on PostgreSQL, one flush of the server's WAL."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.count = 0
        self._engine = engine
        self._event = event
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip()[:6].upper() in ("INSERT", "UPDATE", "DELETE"):
            conn.info["wrote"] = True

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("wrote", False):
            self.count += 1

    def close(self) -> None:
        self._event.remove(self._engine, "before_cursor_execute", self._statement)
        self._event.remove(self._engine, "commit", self._commit)


def quiet_logs() -> None:
    """Log records of WARNING and up are still formatted (as the daemon's would be), but go to
    /dev/null instead of the terminal (a malformed HIS row is one warning each)."""
    import logging

    root = logging.getLogger()
    if not root.handlers:
        handler = logging.FileHandler(os.devnull)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


def import_sample_mapping(state_url: str) -> int:
    """The sample HIS's 目录对照 into a state database (what ``mapping import`` would write)."""
    from adapter.mapping.store import MappingRow, MappingStore
    from adapter.records import MappingKind
    from adapter.rehearsal.sample_his import sample_mapping_rows
    from adapter.state.store import StateStore

    store = StateStore(state_url)
    try:
        return MappingStore(store).upsert(
            MappingRow(MappingKind(kind), code, national, name) for kind, code, national, name in sample_mapping_rows())
    finally:
        store.close()


# -- the sample HIS at any size -----------------------------------------------------------------------
@dataclass(frozen=True)
class His:
    path: Path
    lines: int
    #: lines made by the rehearsal's generator (adapter.rehearsal.sample_his) and its time
    sample_lines: int
    sample_seconds: float
    #: lines added by this module's generator and its time
    fast_lines: int
    fast_seconds: float

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"


def make_his(path: Path, lines: int, *, sample_visits: int = 150, seed: int = 2024) -> His:
    """A SQLite HIS of about ``lines`` inpatient fee lines in the sample HIS schema.

    The rehearsal's generator (``generate_sample_his``, a few thousand lines a second) makes the
    first ``sample_visits`` stays and the reference tables (items, departments, doctors); the
    rest are added here with sqlite3 executemany in the same shape: 12 lines a stay plus one
    refund, 3 % of lines with an unmapped item, 2 % whose amount is not qty x price, 1 % with an
    unreadable quantity, 60 % of stays discharged. Both generators' speeds are returned.
    """
    from adapter.rehearsal.sample_his import generate_sample_his, sample_mapping_rows

    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    summary = generate_sample_his(f"sqlite:///{path}", visits=sample_visits, lines_per_visit=12, seed=seed)
    sample_seconds = time.perf_counter() - started
    started = time.perf_counter()
    added = _add_stays(path, max(0, lines - summary.lines), {code for kind, code, _n, _m in sample_mapping_rows()
                                                             if kind == "item"}, seed)
    return His(path, summary.lines + added, summary.lines, sample_seconds, added, time.perf_counter() - started)


def _add_stays(path: Path, lines: int, mapped: set[str], seed: int) -> int:
    rng = random.Random(seed + 1)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        items = conn.execute("SELECT item_code, unit_price FROM charge_items ORDER BY item_code").fetchall()
        good = [(code, str(price)) for code, price in items if code in mapped]
        unmapped = [(code, str(price)) for code, price in items if code not in mapped]
        doctors = conn.execute("SELECT doctor_code, dept_code FROM doctors ORDER BY doctor_code").fetchall()
        first = int(conn.execute("SELECT coalesce(max(visit_id), 0) FROM inpatient_visits").fetchone()[0]) + 1
        seq = int(conn.execute("SELECT coalesce(max(discharge_seq), 0) FROM inpatient_visits").fetchone()[0])
        start = datetime(2026, 11, 1, 8, 0, 0)
        made = 0
        visit = first
        patients: list[tuple[Any, ...]] = []
        stays: list[tuple[Any, ...]] = []
        fees: list[tuple[Any, ...]] = []
        conn.execute("BEGIN")
        while made < lines:
            doctor, dept = rng.choice(doctors)
            insutype = rng.choice(("310", "390"))
            certno = f"{ADMDVS}19{rng.randrange(50, 99)}0101{rng.randrange(1000, 9999)}"
            patients.append((visit, f"患者{visit}", f"43{rng.randrange(10**17, 10**18)}", ADMDVS, "01", certno,
                             "11" if insutype == "310" else "15"))
            admitted = start + timedelta(hours=rng.randrange(0, 24 * 20))
            last = admitted
            original = None
            for n in range(1, 13):
                roll = rng.random()
                code, price = rng.choice(unmapped if roll < 0.03 else good)
                qty = rng.choice((1, 1, 1, 2, 3, 5, 10))
                cents = round(qty * float(price) * 100)
                clean = roll >= 0.06
                if 0.03 <= roll < 0.05:
                    cents += 100  # not qty x price
                last = admitted + timedelta(minutes=n * 37)
                row = [visit, f"{visit:06d}{n:04d}", None, f"YZ{visit:06d}{n:03d}", code,
                       "abc" if 0.05 <= roll < 0.06 else str(qty), price, f"{cents / 100:.2f}",
                       f"{last:%Y-%m-%d %H:%M:%S}", dept, doctor]
                fees.append(tuple(row))
                if clean:
                    original = row
            if original is not None:  # one refund a stay: the last clean line given back
                qty = int(original[5])
                refund_at = datetime.strptime(original[8], "%Y-%m-%d %H:%M:%S") + timedelta(hours=2)
                fees.append((visit, f"{visit:06d}0013", original[1], original[3], original[4], str(-qty),
                             original[6], f"{-round(qty * float(original[6]) * 100) / 100:.2f}",
                             f"{refund_at:%Y-%m-%d %H:%M:%S}", dept, doctor))
            discharged = discharge = None
            if rng.random() < 0.6:
                seq += 1
                discharged, discharge = f"{last + timedelta(hours=3):%Y-%m-%d %H:%M:%S}", seq
            stays.append((visit, visit, f"{ADMDVS}{visit:09d}", "21", insutype, f"{admitted:%Y-%m-%d %H:%M:%S}", dept,
                          doctor, certno, "J18.900", "肺炎", "肺炎，收入院治疗", f"{dept}-{visit % 40 + 1:02d}", ADMDVS,
                          discharged, discharge, "1" if discharged else None))
            made += 13 if original is not None else 12
            visit += 1
            if len(fees) >= 50_000:
                _flush(conn, patients, stays, fees)
        _flush(conn, patients, stays, fees)
        conn.execute("COMMIT")
        return made
    finally:
        conn.close()


def _flush(conn: sqlite3.Connection, patients: list[Any], stays: list[Any], fees: list[Any]) -> None:
    conn.executemany("INSERT INTO patients (patient_id, patient_name, psn_no, insuplc_admdvs, cert_type, certno, "
                     "psn_type) VALUES (?, ?, ?, ?, ?, ?, ?)", patients)
    conn.executemany("INSERT INTO inpatient_visits (visit_id, patient_id, mdtrt_id, med_type, insutype, admitted_at, "
                     "dept_code, doctor_code, certno, main_diag_code, main_diag_name, adm_diag_dscr, bed_no, "
                     "mdtrtarea_admvs, discharged_at, discharge_seq, dscg_way) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", stays)
    conn.executemany("INSERT INTO fee_lines (visit_id, feedetl_sn, init_feedetl_sn, order_no, item_code, qty, "
                     "unit_price, amount, charged_at, dept_code, doctor_code) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", fees)
    patients.clear()
    stays.clear()
    fees.clear()


def read_fee_query(his_path: str, fetch: int = 1000) -> tuple[int, float, float]:
    """The anchor: every row of the adapter's own fee query (the sample schema's), read with
    sqlite3 fetchmany and nothing else. Returns (rows, seconds, CPU seconds)."""
    from adapter.rehearsal.sample_queries import FEE_LINES

    started, cpu = time.perf_counter(), time.process_time()
    conn = sqlite3.connect(his_path)
    try:
        cursor = conn.execute(FEE_LINES, {"watermark": 0, "limit": -1})
        rows = 0
        while batch := cursor.fetchmany(fetch):
            rows += len(batch)
    finally:
        conn.close()
    return rows, time.perf_counter() - started, time.process_time() - cpu


# -- the simulated centre in its own process ---------------------------------------------------------
@contextmanager
def serving(target: Callable[..., None], *args: Any) -> Iterator[str]:
    """Run a server in a spawned child: ``target(*args, urls, stop)`` puts its URL on ``urls``
    and serves until ``stop`` is set. Yields the URL."""
    urls = _SPAWN.Queue()
    stop = _SPAWN.Event()
    process = _SPAWN.Process(target=target, args=(*args, urls, stop), daemon=True)
    process.start()
    try:
        yield urls.get(timeout=60)
    finally:
        stop.set()
        process.join(timeout=30)
        if process.is_alive():
            process.terminate()
            process.join()


def simulated_centre(nodelay: bool = True) -> Any:
    """The rehearsal's simulated centre (nhsa, tif gateway) in a child process on loopback, so
    its work does not share the adapter's interpreter; a context manager yielding its URL.

    ``nodelay=False`` turns Nagle's algorithm back on in the child's handler, as the centre
    ran before it set ``disable_nagle_algorithm``: every answer then waits for the client's
    delayed ACK (about 40 ms on Linux loopback; :func:`round_trip_ms` shows it)."""
    return serving(_serve_centre, nodelay)


def _serve_centre(nodelay: bool, urls: Any, stop: Any) -> None:
    from adapter.plugin.manager import PluginHost
    from adapter.rehearsal.centre.server import SimulatedCentre

    centre = SimulatedCentre(secrets={PAASID: TOKEN}, region=PluginHost.load().region("nhsa"))
    if not nodelay:
        server = centre._server  # the stdlib server inside; only its handler class changes
        server.RequestHandlerClass = type("NagleHandler", (server.RequestHandlerClass,),
                                          {"disable_nagle_algorithm": False})
    centre.start()
    urls.put(centre.url)
    stop.wait()
    centre.stop()


def round_trip_ms(url: str, requests: int = 20) -> float:
    """Mean time of an unsigned POST the gateway refuses at once (HTTP 401): the centre's
    per-request floor on this machine, whatever it is asked."""
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as client:
        client.post(f"{url}/probe", content=b"{}")
        started = time.perf_counter()
        for _ in range(requests):
            client.post(f"{url}/probe", content=b"{}", headers={"Content-Type": "application/json"})
        return (time.perf_counter() - started) / requests * 1000


def centre_totals(url: str) -> dict[str, Any]:
    import httpx

    reply = httpx.get(f"{url}/sim/totals", timeout=30, trust_env=False)
    reply.raise_for_status()
    result: dict[str, Any] = reply.json()
    return result
