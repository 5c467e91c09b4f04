"""Benchmark: N fee lines from a SQLite HIS through the adapter's cycle without sending:
extract, map and check, build (spool), next to a plain read of the same rows with the
adapter's own fee query (sqlite3 fetchmany). Run by hand; prints lines/s and peak memory:

    .venv/bin/python bench/pipeline.py [--lines 1000000 --lines 100000 ...] [--state-url URL]

Each stage runs in its own freshly spawned process against the state database the stage
before it left (as a cycle that stopped after a stage would resume), so every peak RSS is that
stage's own; memory that does not grow with the backlog shows as about the same peak at 100k
and 1M lines. "CPU s" is the stage's own CPU time (user + system), which other work on a
shared machine disturbs less than the wall-clock "s". The send stage is not run: nothing
leaves the machine. ``--state-url postgresql://...`` keeps the state on that server (a
database is created per size and dropped); the HIS is always a SQLite file.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import benchkit

STAGES = ("extract", "check", "build")


def _stage(config: str, stage: str) -> tuple[float, float, dict[str, int]]:
    """One stage of the cycle (adapter.flow.cycle.Cycle's extract, check or build), timed:
    (seconds, CPU seconds of this process, what the report counted)."""
    from adapter.flow.report import CycleReport

    adapter = benchkit.build(config)
    try:
        report = CycleReport()
        started, cpu = time.perf_counter(), time.process_time()
        getattr(adapter.cycle, stage).run(report)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        adapter.close()
    counts = {k: v for k, v in dataclasses.asdict(report).items() if isinstance(v, int) and v}
    return elapsed, cpu, counts


def _anchor(his_path: str) -> tuple[int, float, float]:
    return benchkit.read_fee_query(his_path)


def _ledger(state_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            by_status = dict(conn.execute(text("SELECT status, count(*) FROM record GROUP BY status")).all())
            messages = conn.execute(text("SELECT count(*) FROM message")).scalar_one()
    finally:
        engine.dispose()
    return {**{str(k): int(v) for k, v in by_status.items()}, "messages": int(messages)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, action="append", help="fee lines in the HIS (repeatable; "
                        "default 100000 and 1000000)")
    parser.add_argument("--state-url", help="a PostgreSQL server URL (postgresql://...); default: SQLite files")
    parser.add_argument("--batch-size", type=int, default=1000, help="[schedule] batch_size (default 1000)")
    options = parser.parse_args()
    sizes = options.lines or [100_000, 1_000_000]
    state_base = benchkit.normalise_url(options.state_url)
    print(benchkit.machine_line(state_base))
    print(f"HIS: SQLite, sample schema; [schedule] batch_size {options.batch_size}; 2301 only; each part in "
          "its own process")
    rows = []
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch:
        for lines in sizes:
            his = benchkit.make_his(Path(scratch) / f"his_{lines}.db", lines)
            print(f"  HIS of {his.lines:,} lines: rehearsal generator {his.sample_lines:,} lines at "
                  f"{benchkit.rate(his.sample_lines, his.sample_seconds):,.0f} lines/s, bench generator "
                  f"{his.fast_lines:,} lines at {benchkit.rate(his.fast_lines, his.fast_seconds):,.0f} lines/s",
                  flush=True)
            (count, seconds, cpu), peak = benchkit.in_child(_anchor, str(his.path))
            assert count == his.lines, (count, his.lines)
            rows.append((his.lines, "anchor: fee query, sqlite3 fetchmany", seconds, cpu,
                         benchkit.rate(count, seconds), peak, ""))
            with benchkit.state_database(state_base, Path(scratch), f"pipeline{lines}") as state_url:
                benchkit.import_sample_mapping(state_url)
                config = benchkit.config_toml(his_url=his.url, state_url=state_url,
                                              schedule=f"batch_size = {options.batch_size}")
                total = total_cpu = 0.0
                peaks = []
                for stage in STAGES:
                    (seconds, cpu, counts), peak = benchkit.in_child(_stage, config, stage)
                    total += seconds
                    total_cpu += cpu
                    peaks.append(peak)
                    note = ", ".join(f"{k} {v:,}" for k, v in counts.items())
                    rows.append((his.lines, stage, seconds, cpu, benchkit.rate(his.lines, seconds), peak, note))
                    print(f"  {his.lines:,} lines: {stage} {seconds:.1f} s, {cpu:.1f} CPU s ({note})", flush=True)
                ledger = _ledger(state_url)
            rows.append((his.lines, "extract+check+build", total, total_cpu, benchkit.rate(his.lines, total),
                         max(peaks), ", ".join(f"{k} {v:,}" for k, v in ledger.items())))
    print()
    benchkit.print_table(("lines", "part", "s", "CPU s", "lines/s", "peak MB", "what it did"), rows)
    print(f"at the end: {benchkit.load_line()}")


if __name__ == "__main__":
    sys.exit(main())
