"""The daemon as a system service: the sd_notify protocol spoken to a socket the test binds
(READY=1 once started, STATUS= after each cycle, WATCHDOG=1 only while cycles make progress),
SIGHUP reloading the configuration (a bad file refused, the one in use kept), SIGTERM stopping
after the current send and signing out, and the systemd unit's hardening as
``systemd-analyze security`` rates it. The daemon runs as a real process; the centre in the
test, on loopback."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapter.mapping.store import MappingRow, MappingStore
from adapter.monitor import systemd
from adapter.monitor.heartbeat import Heartbeat
from adapter.records import MappingKind
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.sample_his import generate_sample_his
from adapter.state.store import StateStore
from tests.conftest import config_text
from tests.harness.daemon_process import DaemonProcess

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "config" / "yibao-adapter.service"


class NotifySocket:
    """The socket systemd would listen on: every datagram the daemon sends, with its arrival
    time (monotonic)."""

    def __init__(self) -> None:
        # A unix socket path must be short (108 bytes): not under pytest's deep tmp_path.
        self.folder = tempfile.mkdtemp(prefix="sdn-", dir="/tmp")
        self.path = os.path.join(self.folder, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.received.append((time.monotonic(), data.decode("utf-8")))

    def lines(self, key: str) -> list[tuple[float, str]]:
        """(time, value) of every ``KEY=value`` line received."""
        found = []
        for at, datagram in list(self.received):
            for line in datagram.split("\n"):
                if line.startswith(key + "="):
                    found.append((at, line[len(key) + 1:]))
        return found

    def wait_for(self, key: str, count: int = 1, seconds: float = 60.0, where: str = "") -> list[tuple[float, str]]:
        deadline = time.monotonic() + seconds
        while len(self.lines(key)) < count:
            assert time.monotonic() < deadline, f"no {count} {key}= datagram(s) {where}: got {self.received}"
            time.sleep(0.02)
        return self.lines(key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    listener = NotifySocket()
    yield listener
    listener.close()


def _service(tmp_path: Path, centre_url: str, *, visits: int = 6, schedule: str = "interval_minutes = 0.02",
             extra: str = "") -> tuple[Path, str]:
    """A sample HIS with its mappings imported, and a configuration file for the daemon."""
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=visits, lines_per_visit=8, seed=5,
                              unmapped_share=0, invalid_share=0, malformed_share=0)
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    store = StateStore(state_url)
    MappingStore(store).upsert(MappingRow(MappingKind(kind), code, national, name)
                               for kind, code, national, name in his.mapping_rows)
    store.close()
    config = tmp_path / "adapter.toml"
    text = config_text(his_url=his.url, state_url=state_url, centre_url=centre_url, schedule=schedule)
    config.write_text(text + '\n[monitor]\nlisten = ""\n\n[logging]\nlevel = "INFO"\n' + extra, encoding="utf-8")
    return config, text


def _daemon(tmp_path: Path, config: Path, notify: NotifySocket, watchdog_usec: int | None = None) -> DaemonProcess:
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    daemon = DaemonProcess("service", config, logs)
    daemon.env["NOTIFY_SOCKET"] = notify.path
    daemon.env.pop("WATCHDOG_PID", None)
    if watchdog_usec is None:
        daemon.env.pop("WATCHDOG_USEC", None)
    else:
        daemon.env["WATCHDOG_USEC"] = str(watchdog_usec)
    return daemon


def _log(daemon: DaemonProcess) -> str:
    return daemon.log_files[-1].read_text(encoding="utf-8", errors="replace")


def _wait_for_log(daemon: DaemonProcess, text: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while text not in _log(daemon):
        daemon.check_alive()
        assert time.monotonic() < deadline, f"{text!r} not in the log:\n{daemon.log_tail()}"
        time.sleep(0.05)


# -- the notify protocol --------------------------------------------------------------------------
@pytest.mark.slow
def test_ready_status_and_watchdog_pings_reach_the_notify_socket(tmp_path, make_centre, notify_socket):
    # Each request takes 150 ms, so the first cycle lasts several watchdog intervals: a long
    # healthy cycle keeps the pings coming.
    centre = make_centre("nhsa", latency_ms=150)
    config, _ = _service(tmp_path, centre.url)
    daemon = _daemon(tmp_path, config, notify_socket, watchdog_usec=1_000_000)
    daemon.start()
    try:
        ready = notify_socket.wait_for("READY", where="after start")
        statuses = notify_socket.wait_for("STATUS", count=3, where="after three cycles")
        pings = notify_socket.wait_for("WATCHDOG", count=6, where="while running")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_tail()
    assert ready[0][1] == "1"
    cycles = [text for _, text in notify_socket.lines("STATUS") if " cycle: " in text]
    assert len(cycles) >= 2, statuses
    assert all("\n" not in text for _, text in statuses)
    assert re.search(r"\d+ extracted, \d+ acked \(\d+ lines\), \d+ parked, \d+ transient; \d+ unsent", cycles[0])
    assert any(line == "1" for _, line in notify_socket.lines("STOPPING"))
    # Ready comes before the first cycle's status, and the pings kept coming during the long first
    # cycle (every half second; never a gap of a whole watchdog interval).
    assert ready[0][0] <= notify_socket.lines("STATUS")[0][0]
    times = [at for at, value in pings if value == "1"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps and max(gaps) < 1.0, gaps
    assert centre.ledger.accepted["2301"] > 0
    log = _log(daemon)
    assert "signed out of the centre" in log and "stopped" in log


@pytest.mark.slow
def test_a_hung_cycle_stops_the_watchdog_pings_and_they_resume_when_it_moves(tmp_path, make_centre, notify_socket):
    # A hang no request timeout covers: the HIS database locked by someone else, so the
    # extraction's query waits (up to SQLite's 5 s busy wait) and the cycle commits nothing.
    centre = make_centre("nhsa")
    config, _ = _service(tmp_path, centre.url, schedule="interval_minutes = 0.01")
    daemon = _daemon(tmp_path, config, notify_socket, watchdog_usec=600_000)
    daemon.start()
    his = tmp_path / "his.db"
    try:
        notify_socket.wait_for("STATUS", count=2, where="before the hang")
        import sqlite3

        lock = sqlite3.connect(his, timeout=1, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        held_at = time.monotonic()
        time.sleep(4.0)
        lock.execute("COMMIT")
        lock.close()
        released_at = time.monotonic()
        _wait_for_log(daemon, "watchdog pings withheld")
        notify_socket.wait_for("WATCHDOG", count=len(notify_socket.lines("WATCHDOG")) + 2, where="after the hang")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_tail()
    pings = [at for at, value in notify_socket.lines("WATCHDOG") if value == "1"]
    during = [at for at in pings if held_at + 1.2 < at < released_at]
    assert not during, "pings went on while the cycle was stuck"
    assert any(at > released_at for at in pings), "the pings did not resume"
    assert "the cycle makes progress again; watchdog pings resumed" in _log(daemon)


def test_the_watchdog_pings_while_the_heartbeat_is_young_and_not_after(notify_socket, monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket.path)
    now = [0.0]
    heartbeat = Heartbeat(clock=lambda: now[0])
    watchdog = systemd.Watchdog(0.2, heartbeat).start()
    try:
        for _ in range(10):  # a long cycle that keeps beating
            now[0] += 0.1
            heartbeat.beat("sending")
            time.sleep(0.05)
        healthy = len(notify_socket.lines("WATCHDOG"))
        now[0] += 5.0  # then nothing for longer than the interval
        time.sleep(0.4)
        stuck = len(notify_socket.lines("WATCHDOG"))
        time.sleep(0.4)
        assert len(notify_socket.lines("WATCHDOG")) == stuck
        heartbeat.idle()  # waiting for the next cycle is healthy
        time.sleep(0.4)
    finally:
        watchdog.stop()
    assert healthy >= 3
    assert len(notify_socket.lines("WATCHDOG")) > stuck


def test_the_watchdog_interval_comes_from_systemd_and_is_ours_only(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert systemd.watchdog_seconds() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert systemd.watchdog_seconds() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_seconds() is None  # another process's watchdog
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert systemd.watchdog_seconds() == 30.0
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False  # outside systemd: nothing, no error


def test_a_notify_socket_in_the_abstract_namespace(monkeypatch):
    name = f"yibao-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1", systemd.status_line("two\nlines  become one"))
        assert sock.recv(1024) == b"READY=1\nSTATUS=two lines become one"


# -- reload and stop ------------------------------------------------------------------------------
@pytest.mark.slow
def test_sighup_refuses_a_bad_file_keeps_running_and_takes_a_good_one(tmp_path, make_centre, notify_socket):
    centre = make_centre("nhsa")
    config, text = _service(tmp_path, centre.url)
    daemon = _daemon(tmp_path, config, notify_socket)
    daemon.start()
    try:
        notify_socket.wait_for("STATUS", count=2, where="before the reload")
        assert daemon.pid is not None
        # A typo in the file: refused with the reason, the configuration in use kept.
        config.write_text(text.replace("[schedule]", "[schedule]\nintervall_minutes = 5"), encoding="utf-8")
        os.kill(daemon.pid, signal.SIGHUP)
        _wait_for_log(daemon, "refused, the one in use is kept")
        log = _log(daemon)
        assert "[schedule] intervall_minutes: unknown key" in log
        daemon.check_alive()
        cycles_before = len(notify_socket.lines("STATUS"))
        notify_socket.wait_for("STATUS", count=cycles_before + 2, where="after the refused reload")
        assert any("reload refused" in status for _, status in notify_socket.lines("STATUS"))
        # A region no plugin provides is refused too (it validates, but cannot be wired).
        config.write_text(text.replace('region = "nhsa"', 'region = "atlantis"'), encoding="utf-8")
        os.kill(daemon.pid, signal.SIGHUP)
        _wait_for_log(daemon, "no loaded plugin provides region 'atlantis'")
        daemon.check_alive()
        # A good file is taken between two cycles.
        config.write_text(text + '\n[monitor]\nlisten = ""\n\n[logging]\nlevel = "INFO"\n', encoding="utf-8")
        os.kill(daemon.pid, signal.SIGHUP)
        _wait_for_log(daemon, "configuration reloaded from")
        reloaded = len(notify_socket.lines("STATUS"))
        notify_socket.wait_for("STATUS", count=reloaded + 2, where="after the reload")
        assert any(value.startswith("1\nMONOTONIC_USEC=") or value == "1"
                   for _, value in notify_socket.lines("RELOADING"))
        assert len(notify_socket.lines("READY")) >= 4  # start, and after each of the three reloads
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log_tail()
    assert "signed out of the centre" in _log(daemon)


@pytest.mark.slow
def test_sigterm_finishes_the_send_in_progress_signs_out_and_stops(tmp_path, make_centre, notify_socket):
    centre = make_centre("nhsa")
    centre.faults = FaultPlan(latency_ms=300)
    config, _ = _service(tmp_path, centre.url, visits=10)
    daemon = _daemon(tmp_path, config, notify_socket)
    daemon.start()
    try:
        notify_socket.wait_for("READY")
        deadline = time.monotonic() + 30
        while not centre.ledger.accepted.get("2301"):
            assert time.monotonic() < deadline, daemon.log_tail()
            time.sleep(0.02)
    finally:
        code = daemon.stop()
    assert code == 0
    log = _log(daemon)
    assert "received SIGTERM, stopping after the current send" in log
    assert "signed out of the centre" in log
    assert centre.ledger.accepted.get("9002") == 1


# -- the unit ---------------------------------------------------------------------------------------
def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_is_a_notify_service_with_its_own_user_reload_and_watchdog():
    unit = _unit()
    assert unit["Type"] == ["notify"]
    assert unit["User"] == ["yibao"] and (ROOT / "config" / "yibao-adapter.sysusers").read_text().count("u     yibao")
    assert unit["StateDirectory"] == ["yibao-adapter"] and unit["LogsDirectory"] == ["yibao-adapter"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["WatchdogSec"] and unit["KillSignal"] == ["SIGTERM"]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "LockPersonality": "yes",
                       "MemoryDenyWriteExecute": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
                       "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
                       "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes", "UMask": "0077",
                       "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6"}.items():
        assert unit.get(key) == [value], key
    assert "@system-service" in unit["SystemCallFilter"]


def test_systemd_analyze_rates_the_unit_3_or_better():
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed: the unit's exposure is not rated here")
    result = subprocess.run([analyze, "security", "--offline=yes", str(UNIT)], capture_output=True, text=True,
                            timeout=60, check=False)
    found = re.search(r"Overall exposure level for yibao-adapter\.service: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found.group(1)) <= 3.0, result.stdout
