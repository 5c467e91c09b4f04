"""Benchmark: HIS -> simulated centre on loopback with ``yibao-adapter run --once``, lines/s,
next to a plain read of the same rows with the adapter's own fee query and a plain loop of
HTTP POSTs of the same messages to a canned loopback server. Run by hand:

    .venv/bin/python bench/end_to_end.py [--lines 100000 ...] [--in-flight 1,4,8] [--state-url URL]

``run --once`` runs as its own process, as an operator would start it (its peak RSS comes from
wait4, and so does its CPU time, "CPU s"); the simulated centre and the canned server run in
processes of their own. With ``--in-flight`` the configuration's in-flight setting is set to
each value, if the configuration has one ([schedule] or [centre] in_flight / concurrency);
until then only 1 runs.
``--state-url postgresql://...`` keeps the state on that server (a database per run, dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import benchkit

_NAMES = ("in_flight", "max_in_flight", "concurrency")


def in_flight_setting() -> tuple[str, str] | None:
    """The (table, key) of the configuration's in-flight setting, or None if it has none."""
    from adapter.config import Settings

    for table, field in Settings.model_fields.items():
        fields = getattr(field.annotation, "model_fields", {})
        for name in _NAMES:
            if name in fields:
                return table, name
    return None


def _config(his_url: str, state_url: str, centre_url: str, setting: tuple[str, str] | None, in_flight: int) -> str:
    schedule = centre = extra = ""
    if setting is not None:
        table, name = setting
        line = f"{name} = {in_flight}"
        if table == "schedule":
            schedule = line
        elif table == "centre":
            centre = line
        else:
            extra = f"\n[{table}]\n{line}\n"
    return benchkit.config_toml(his_url=his_url, state_url=state_url, centre_url=centre_url, schedule=schedule,
                                centre=centre) + extra


def _command() -> list[str]:
    script = Path(sys.executable).with_name("yibao-adapter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adapter"]


def run_once(config_path: Path) -> tuple[float, float, float, str, str, int]:
    """``yibao-adapter run --once``; returns (seconds, CPU seconds, peak RSS MB, stdout, stderr,
    exit code)."""
    env = {**os.environ, "YIBAO_BENCH_PAASID": benchkit.PAASID, "YIBAO_BENCH_TOKEN": benchkit.TOKEN}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen([*_command(), "run", "--once", "--config", str(config_path)], stdout=out,
                                   stderr=err, env=env)
        _pid, status, usage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"), process.returncode)


_REPORT = re.compile(r"extracted (\d+), parked (\d+).*messages acked (\d+) \((\d+) lines\), transient failures (\d+)")


def _anchor_read(his_path: str) -> tuple[int, float, float]:
    return benchkit.read_fee_query(his_path)


# -- a canned HTTP server and a plain POST loop (the HTTP anchor) ------------------------------------------
def _serve_canned(urls: Any, stop: Any) -> None:
    body = json.dumps({"infcode": 0, "err_msg": "success", "output": {}}).encode()

    class Canned(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:  # stdlib name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # stdlib name
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Canned)
    server.daemon_threads = True
    import threading

    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls.put(f"http://127.0.0.1:{server.server_address[1]}")
    stop.wait()
    server.shutdown()


def _post_loop(url: str, bodies: list[bytes]) -> tuple[int, float, float]:
    import httpx

    with httpx.Client(trust_env=False, timeout=30) as client:
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            client.post(url, content=body, headers={"Content-Type": "application/json"}).raise_for_status()
        return len(bodies), time.perf_counter() - started, time.process_time() - cpu


def _messages(state_url: str) -> tuple[list[bytes], int]:
    """The payloads the run spooled (what went to the centre) and their lines."""
    from sqlalchemy import create_engine, text

    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT payload, line_count FROM message ORDER BY id")).all()
    finally:
        engine.dispose()
    return [str(row.payload).encode() for row in rows], sum(int(row.line_count) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--lines", type=int, action="append", help="fee lines in the HIS (repeatable; default 100000)")
    parser.add_argument("--in-flight", default="1", help="comma-separated in-flight values to run (e.g. 1,4,8)")
    parser.add_argument("--state-url", help="a PostgreSQL server URL (postgresql://...); default: SQLite files")
    parser.add_argument("--centre-with-nagle", action="store_true",
                        help="leave the simulated centre's sockets without TCP_NODELAY (about 40 ms a request)")
    options = parser.parse_args()
    sizes = options.lines or [100_000]
    wanted = [int(value) for value in options.in_flight.split(",") if value.strip()]
    state_base = benchkit.normalise_url(options.state_url)
    print(benchkit.machine_line(state_base))
    setting = in_flight_setting()
    if setting is None:
        values = [1]
        print(f"in-flight: the configuration has no in-flight setting ({', '.join(_NAMES)} in any table): "
              f"only 1 is supported yet" + (f"; not run: {', '.join(map(str, sorted(set(wanted) - {1})))}"
                                             if set(wanted) - {1} else ""))
    else:
        values = wanted
        print(f"in-flight: [{setting[0]}] {setting[1]} = {', '.join(map(str, values))}")
    print(f"simulated centre {'with Nagle on' if options.centre_with_nagle else 'with TCP_NODELAY'} "
          "(see bench/README.md); 2301 only; default [schedule] and lines_per_message")
    rows = []
    with tempfile.TemporaryDirectory(prefix="yibao-bench-") as scratch_name:
        scratch = Path(scratch_name)
        for lines in sizes:
            his = benchkit.make_his(scratch / f"his_{lines}.db", lines)
            print(f"  HIS of {his.lines:,} lines (bench generator "
                  f"{benchkit.rate(his.fast_lines, his.fast_seconds):,.0f} lines/s)", flush=True)
            (count, seconds, cpu), peak = benchkit.in_child(_anchor_read, str(his.path))
            rows.append((his.lines, None, "anchor: fee query, sqlite3 fetchmany", seconds, cpu,
                         benchkit.rate(count, seconds), None, peak, ""))
            bodies: list[bytes] = []
            spooled_lines = 0
            for in_flight in values:
                with benchkit.state_database(state_base, scratch, f"e2e{lines}") as state_url, \
                        benchkit.simulated_centre(not options.centre_with_nagle) as centre_url:
                    benchkit.import_sample_mapping(state_url)
                    config_path = scratch / "adapter.toml"
                    config_path.write_text(_config(his.url, state_url, centre_url, setting, in_flight),
                                           encoding="utf-8")
                    config_path.chmod(0o600)  # the adapter refuses a configuration others can read
                    seconds, cpu, peak, out, err, code = run_once(config_path)
                    found = _REPORT.search(out)
                    if code not in (0, 3) or found is None:
                        raise SystemExit(f"run --once failed (exit {code}):\n{out}\n{err[-3000:]}")
                    extracted, parked, messages, acked, transient = (int(v) for v in found.groups())
                    held = benchkit.centre_totals(centre_url)["fee_lines"]
                    if not bodies:
                        bodies, spooled_lines = _messages(state_url)
                rows.append((his.lines, in_flight, "yibao-adapter run --once -> simulated centre", seconds, cpu,
                             benchkit.rate(acked, seconds), benchkit.rate(messages, seconds), peak,
                             f"extracted {extracted:,}, parked {parked:,}, acked {acked:,} lines in {messages:,} "
                             f"messages, centre holds {held:,}" + (f", {transient} transient" if transient else "")))
                print(f"  {his.lines:,} lines, in-flight {in_flight}: {seconds:.1f} s", flush=True)
            with benchkit.serving(_serve_canned) as canned_url:
                (posted, seconds, cpu), peak = benchkit.in_child(_post_loop, canned_url, bodies)
            per_message = spooled_lines / max(1, len(bodies))
            rows.append((his.lines, None, "anchor: httpx POST of the same messages, canned server", seconds, cpu,
                         benchkit.rate(posted * per_message, seconds), benchkit.rate(posted, seconds), peak,
                         f"{posted:,} bodies, {sum(map(len, bodies)) / max(1, len(bodies)) / 1024:.1f} KB each"))
    print()
    benchkit.print_table(("lines", "in-flight", "run", "s", "CPU s", "lines/s", "msgs/s", "peak MB", "what it did"),
                         rows)
    print(f"at the end: {benchkit.load_line()}")


if __name__ == "__main__":
    sys.exit(main())
