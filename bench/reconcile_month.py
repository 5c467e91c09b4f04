"""Benchmark: reconcile one month of N settlements (default 1,000,000): local totals, 3201,
and a full 3202 drill-down (detail file, 9101, 3202, 9102, result.txt, classification), with
a few hundred differences planted at the centre. Run by hand:

    .venv/bin/python bench/reconcile_month.py [--settlements 1000000] [--state-url URL]

The simulated centre runs in its own process and the reconciliation in a freshly spawned one,
so the peak memory printed is the adapter's own. The anchor reads the same settlements with the
same query and sums them per (insutype, clr_type), which is the local half of the work.
``--state-url postgresql://...`` keeps the state on that server (a database, dropped afterwards).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import benchkit

MONTH = date(2026, 11, 1)


def _rows(count: int):  # yields (setl_id, day, medfee, fund, acct, cash)
    for n in range(count):
        medfee = Decimal(100 + n % 900) + Decimal(n % 100) / 100
        fund = (medfee * Decimal("0.7")).quantize(Decimal("0.01"))
        acct = (medfee * Decimal("0.1")).quantize(Decimal("0.01"))
        yield f"S{n:010d}", MONTH + timedelta(days=n % 30), medfee, fund, acct, medfee - fund - acct


def _centre(count: int, urls: Any, stop: Any) -> None:
    from adapter.plugin.manager import PluginHost
    from adapter.rehearsal.centre.server import SimulatedCentre

    centre = SimulatedCentre(secrets={benchkit.PAASID: benchkit.TOKEN},
                             region=PluginHost.load().region("nhsa")).start()
    # Through the centre's own methods for tests (the ledger is not a plain dict to change in place).
    for setl_id, day, medfee, fund, acct, cash in _rows(count):
        centre.add_settlement({"setl_id": setl_id, "mdtrt_id": f"M{setl_id}", "psn_no": f"P{setl_id}",
                               "insutype": "310", "clr_type": "21", "setl_date": str(day), "medfee_sumamt": medfee,
                               "fund_pay_sumamt": fund, "acct_pay": acct, "cash_payamt": cash, "refd_setl_flag": "0",
                               "msgid": ""})
    for n in range(0, count, max(1, count // 300)):  # plant differences: altered amounts
        setl_id = f"S{n:010d}"
        centre.alter_settlement(setl_id, fund_pay_sumamt=centre.ledger.settlements[setl_id]["fund_pay_sumamt"]
                                + Decimal("1.00"))
    urls.put(centre.url)
    stop.wait()
    centre.stop()


SETTLEMENT_QUERY = "SELECT * FROM settlements WHERE setl_time >= :start AND setl_time < :end"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--settlements", type=int, default=1_000_000)
    parser.add_argument("--state-url", help="a PostgreSQL server URL (postgresql://...); default: SQLite files")
    options = parser.parse_args()
    count = options.settlements
    state_base = benchkit.normalise_url(options.state_url)
    print(benchkit.machine_line(state_base))
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch:
        his = Path(scratch) / "his.db"
        started = time.perf_counter()
        _build_his(his, count)
        print(f"  HIS of {count:,} settlements built in {time.perf_counter() - started:.1f} s", flush=True)
        (read, anchor_s, totals), anchor_peak = benchkit.in_child(_anchor, str(his))
        assert read == count, (read, count)
        with benchkit.serving(_centre, count) as url, \
                benchkit.state_database(state_base, Path(scratch), "reconcile") as state_url:
            (differences, balanced, elapsed), peak = benchkit.in_child(_run, f"sqlite:///{his}", state_url, url)
    print()
    benchkit.print_table(("settlements", "part", "s", "settlements/s", "peak MB", "what it did"), [
        (count, "anchor: settlement query, sqlite3 + Decimal sums", anchor_s, benchkit.rate(count, anchor_s),
         anchor_peak, f"{totals} (insutype, clr_type) totals"),
        (count, "adapter: local totals, 3201, 3202 drill-down", elapsed, benchkit.rate(count, elapsed), peak,
         f"{differences} differences found, balanced {balanced}"),
    ])
    print(f"at the end: {benchkit.load_line()}")


def _build_his(path: Path, count: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("CREATE TABLE settlements (setl_id TEXT PRIMARY KEY, mdtrt_id TEXT, psn_no TEXT, "
                     "insutype TEXT, clr_type TEXT, setl_time TEXT, medfee_sumamt TEXT, "
                     "fund_pay_sumamt TEXT, acct_pay TEXT, psn_cash_pay TEXT, refd_setl_flag TEXT)")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO settlements VALUES (?, ?, ?, '310', '21', ?, ?, ?, ?, ?, '0')", (
            (s, f"M{s}", f"P{s}", f"{day} 10:00:00", str(m), str(f), str(a), str(c))
            for s, day, m, f, a, c in _rows(count)))
        conn.execute("COMMIT")
    finally:
        conn.close()


def _anchor(his: str) -> tuple[int, float, int]:
    """The same settlements read with the same query, summed per (insutype, clr_type) in Decimal."""
    started = time.perf_counter()
    conn = sqlite3.connect(his)
    sums: dict[tuple[str, str], list[Decimal]] = {}
    read = 0
    try:
        cursor = conn.execute(SETTLEMENT_QUERY.replace("*", "insutype, clr_type, medfee_sumamt, fund_pay_sumamt, "
                                                            "acct_pay, psn_cash_pay"),
                              {"start": f"{MONTH} 00:00:00", "end": "2026-12-01 00:00:00"})
        while batch := cursor.fetchmany(1000):
            for insutype, clr_type, *amounts in batch:
                total = sums.setdefault((insutype, clr_type), [Decimal(0)] * 4)
                for index, amount in enumerate(amounts):
                    total[index] += Decimal(amount)
                read += 1
    finally:
        conn.close()
    return read, time.perf_counter() - started, len(sums)


def _run(his: str, state_url: str, url: str) -> tuple[int, bool, float]:
    from adapter.config import parse_settings
    from adapter.reconcile.local import Period

    benchkit.set_credentials()
    settings = parse_settings(f"""
[his]
url = "{his}"
settlement_query = "{SETTLEMENT_QUERY}"
transactions = []  # reconciliation only: nothing is uploaded
[centre]
base_url = "{url}"
fixmedins_code = "{benchkit.FIXMEDINS_CODE}"
fixmedins_name = "bench"
mdtrtarea_admvs = "{benchkit.ADMDVS}"
opter = "1"
opter_name = "bench"
timeout_seconds = 300
[centre.credentials]
paasid = {{ env = "YIBAO_BENCH_PAASID" }}
token = {{ env = "YIBAO_BENCH_TOKEN" }}
[state]
url = "{state_url}"
""")
    from adapter.app import build_adapter

    adapter = build_adapter(settings)
    try:
        started = time.perf_counter()
        run = adapter.reconciler.run(Period.month(2026, 11))
        elapsed = time.perf_counter() - started
    finally:
        adapter.close()
    return sum(len(p.differences) for p in run.pairs), bool(run.balanced), elapsed


if __name__ == "__main__":
    main()
