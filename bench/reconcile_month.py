"""Benchmark: reconcile one month of N settlements (default 1,000,000): local totals, 3201,
and a full 3202 drill-down (detail file, 9101, 3202, 9102, result.txt, classification), with
a few hundred differences planted at the centre. Run by hand:

    .venv/bin/python bench/reconcile_month.py [--settlements 1000000]

The simulated centre runs in its own process, so the peak memory printed is the adapter's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import resource
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

MONTH = date(2026, 11, 1)


def _rows(count: int):  # yields (setl_id, day, medfee, fund, acct, cash)
    for n in range(count):
        medfee = Decimal(100 + n % 900) + Decimal(n % 100) / 100
        fund = (medfee * Decimal("0.7")).quantize(Decimal("0.01"))
        acct = (medfee * Decimal("0.1")).quantize(Decimal("0.01"))
        yield f"S{n:010d}", MONTH + timedelta(days=n % 30), medfee, fund, acct, medfee - fund - acct


def _centre(count: int, port_queue: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from adapter.plugin.manager import PluginHost
    from adapter.rehearsal.centre.server import SimulatedCentre

    centre = SimulatedCentre(secrets={"bench": "bench-token"}, region=PluginHost.load().region("nhsa")).start()
    ledger = centre.ledger.settlements
    for setl_id, day, medfee, fund, acct, cash in _rows(count):
        ledger[setl_id] = {"setl_id": setl_id, "mdtrt_id": f"M{setl_id}", "psn_no": f"P{setl_id}", "insutype": "310",
                           "clr_type": "21", "setl_date": str(day), "medfee_sumamt": medfee, "fund_pay_sumamt": fund,
                           "acct_pay": acct, "cash_payamt": cash, "refd_setl_flag": "0", "msgid": ""}
    for n in range(0, count, max(1, count // 300)):  # plant differences: altered amounts
        ledger[f"S{n:010d}"]["fund_pay_sumamt"] += Decimal("1.00")
    port_queue.put(centre.url)
    stop.wait()
    centre.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=1_000_000)
    count = parser.parse_args().settlements
    print(f"machine: {platform.machine()}, {multiprocessing.cpu_count()} cores, Python {platform.python_version()}")
    stop = multiprocessing.Event()
    urls: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_centre, args=(count, urls, stop))
    process.start()
    try:
        run, elapsed = _run(count, urls)
    finally:
        stop.set()
        process.join()
    differences = sum(len(p.differences) for p in run.pairs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{count} settlements: reconciled in {elapsed:.1f} s ({count / elapsed:.0f} settlements/s), "
          f"{differences} differences found, adapter peak RSS {peak:.0f} MB")


def _run(count: int, urls: multiprocessing.Queue):
    import os

    from sqlalchemy import create_engine, text

    from adapter.app import build_adapter
    from adapter.config import parse_settings
    from adapter.reconcile.local import Period

    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch:
        his = f"sqlite:///{Path(scratch) / 'his.db'}"
        engine = create_engine(his)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE settlements (setl_id TEXT PRIMARY KEY, mdtrt_id TEXT, psn_no TEXT, "
                              "insutype TEXT, clr_type TEXT, setl_time TEXT, medfee_sumamt TEXT, "
                              "fund_pay_sumamt TEXT, acct_pay TEXT, psn_cash_pay TEXT, refd_setl_flag TEXT)"))
            conn.execute(text("INSERT INTO settlements VALUES (:a, :b, :c, '310', '21', :d, :e, :f, :g, :h, '0')"), [
                {"a": s, "b": f"M{s}", "c": f"P{s}", "d": f"{day} 10:00:00", "e": str(m), "f": str(f), "g": str(a),
                 "h": str(c)} for s, day, m, f, a, c in _rows(count)])
        engine.dispose()
        url = urls.get()
        os.environ["BENCH_TOKEN"] = "bench-token"
        os.environ["BENCH_PAASID"] = "bench"
        settings = parse_settings(f"""
[his]
url = "{his}"
settlement_query = "SELECT * FROM settlements WHERE setl_time >= :start AND setl_time < :end"
transactions = []  # reconciliation only: nothing is uploaded
[centre]
base_url = "{url}"
fixmedins_code = "H43111100255"
fixmedins_name = "bench"
mdtrtarea_admvs = "431199"
opter = "1"
opter_name = "bench"
timeout_seconds = 300
[centre.credentials]
paasid = {{ env = "BENCH_PAASID" }}
token = {{ env = "BENCH_TOKEN" }}
[state]
url = "sqlite:///{Path(scratch) / 'state.db'}"
""")
        adapter = build_adapter(settings)
        started = time.perf_counter()
        run = adapter.reconciler.run(Period.month(2026, 11))
        elapsed = time.perf_counter() - started
        adapter.close()
    return run, elapsed


if __name__ == "__main__":
    main()
