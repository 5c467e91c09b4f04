"""Benchmark: validate and switch in a 1301 catalogue (97 TAB columns) of N rows, next to a
plain csv-module read of the same file. Run by hand; prints rows/s and peak memory.

    .venv/bin/python bench/catalog_1301.py --rows 1000000 [--rows 100000 ...] [--state-url URL]

Each measurement runs in its own freshly spawned process so peak RSS (VmHWM) is its own. Memory
that does not grow with the file shows as about the same peak for 100k and 1M rows.
``--state-url postgresql://...`` keeps the catalogue store on that server (a database per
size, dropped afterwards).
"""

from __future__ import annotations

import argparse
import csv
import io
import tempfile
import time
import zipfile
from pathlib import Path

import benchkit


def _build(path: Path, rows: int) -> float:
    from adapter_nhsa.catalogues import WESTERN_AND_PATENT_DRUGS

    from adapter.rehearsal.sample_catalogues import CatalogRow, drug_codes, write_catalog

    started = time.perf_counter()
    write_catalog(path, WESTERN_AND_PATENT_DRUGS,
                  (CatalogRow(code, f"药品{n}", "202611010001") for n, code in enumerate(drug_codes(rows))))
    return time.perf_counter() - started


def _csv_read(path: Path) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    with zipfile.ZipFile(path) as archive:
        member = archive.infolist()[0]
        with archive.open(member) as raw:
            for _row in csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""), delimiter="\t",
                                   quoting=csv.QUOTE_NONE):
                count += 1
    return count, time.perf_counter() - started


def _ingest(path: Path, state_url: str) -> tuple[int, float]:
    from adapter_nhsa.catalogues import WESTERN_AND_PATENT_DRUGS

    from adapter.catalog.reader import CatalogFile
    from adapter.catalog.store import CatalogStore
    from adapter.state.store import StateStore

    store = StateStore(state_url)
    started = time.perf_counter()
    version = CatalogStore(store).ingest(WESTERN_AND_PATENT_DRUGS, CatalogFile(path), source="bench")
    elapsed = time.perf_counter() - started
    store.close()
    return version.rows_total, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per file (repeatable)")
    parser.add_argument("--state-url", help="a PostgreSQL server URL (postgresql://...); default: SQLite files")
    options = parser.parse_args()
    sizes = options.rows or [100_000, 1_000_000]
    state_base = benchkit.normalise_url(options.state_url)
    print(benchkit.machine_line(state_base))
    print(f"{'rows':>9} {'zip MB':>7} {'text MB':>8} | {'csv s':>6} {'rows/s':>9} {'peak MB':>8} | "
          f"{'adapter s':>9} {'rows/s':>9} {'peak MB':>8}")
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch:
        for rows in sizes:
            path = Path(scratch) / f"1301_{rows}.txt.zip"
            _build(path, rows)
            with zipfile.ZipFile(path) as archive:
                text_mb = archive.infolist()[0].file_size / 1e6
            (count, csv_s), csv_peak = benchkit.in_child(_csv_read, path)
            with benchkit.state_database(state_base, Path(scratch), f"catalog{rows}") as state_url:
                (total, ingest_s), ingest_peak = benchkit.in_child(_ingest, path, state_url)
            assert count == total == rows, (count, total, rows)
            print(f"{rows:>9} {path.stat().st_size / 1e6:>7.1f} {text_mb:>8.1f} | {csv_s:>6.1f} "
                  f"{rows / csv_s:>9.0f} {csv_peak:>8.0f} | {ingest_s:>9.1f} {rows / ingest_s:>9.0f} "
                  f"{ingest_peak:>8.0f}")
    print(f"at the end: {benchkit.load_line()}")


if __name__ == "__main__":
    main()
