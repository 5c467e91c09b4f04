"""Benchmark: the rehearsal's sample HIS generator (``generate_sample_his``, what ``demo`` and
the tests fill their HIS with), at N fee lines, next to a raw sqlite3 executemany of the same
number of fee-line rows. Run by hand:

    .venv/bin/python bench/sample_his.py [--lines 100000 --lines 1000000 ...]

Each size runs in its own freshly spawned process (its peak RSS is its own). 12 lines a stay
plus a refund, the generator's defaults otherwise; linear means the same lines/s at every size.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import benchkit

LINES_PER_STAY = 13


def _generate(path: str, lines: int) -> tuple[int, float, float]:
    from adapter.rehearsal.sample_his import generate_sample_his

    started, cpu = time.perf_counter(), time.process_time()
    his = generate_sample_his(f"sqlite:///{path}", visits=max(1, lines // LINES_PER_STAY), lines_per_visit=12,
                              seed=3)
    return his.lines, time.perf_counter() - started, time.process_time() - cpu


def _anchor(path: str, lines: int) -> tuple[int, float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE fee_lines (line_id INTEGER PRIMARY KEY, visit_id INTEGER, feedetl_sn TEXT, "
                 "item_code TEXT, qty TEXT, unit_price TEXT, amount TEXT, charged_at TEXT)")
    with conn:
        conn.executemany("INSERT INTO fee_lines (visit_id, feedetl_sn, item_code, qty, unit_price, amount, charged_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         ((n // LINES_PER_STAY, f"{n:010d}", "YP0001", "2", "0.86", "1.72", "2026-11-01 09:00:00")
                          for n in range(lines)))
    conn.close()
    return lines, time.perf_counter() - started, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, action="append", help="fee lines (repeatable; default 100000 and 1000000)")
    options = parser.parse_args()
    print(benchkit.machine_line())
    print(benchkit.code_line())
    rows = []
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch:
        for lines in options.lines or [100_000, 1_000_000]:
            for name, target in (("anchor: sqlite3 executemany of fee-line rows", _anchor),
                                 ("generate_sample_his", _generate)):
                path = Path(scratch) / f"{target.__name__}_{lines}.db"
                (made, seconds, cpu), peak = benchkit.in_child(target, str(path), lines)
                rows.append((made, name, seconds, cpu, benchkit.rate(made, seconds), peak))
                print(f"  {made:,} lines: {name} {seconds:.1f} s", flush=True)
                path.unlink()
    print()
    benchkit.print_table(("lines", "what", "s", "CPU s", "lines/s", "peak MB"), rows)
    print(f"at the end: {benchkit.load_line()}")


if __name__ == "__main__":
    sys.exit(main())
