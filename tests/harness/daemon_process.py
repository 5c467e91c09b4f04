"""The daemon as a real OS process (``yibao-adapter run --config F``), killed and restarted.

:class:`DaemonProcess` is one daemon: every start is a new process ("life") whose stdout and
stderr go to a log file of its own (never a pipe, which a chatty daemon could fill and block
on). :func:`kill_at_random` is the chaos: SIGKILL at random moments, each victim restarted at
once. A kill lands either a random number of centre requests after the previous one (plus a
jitter of a few milliseconds, so it falls anywhere in a request's life: before it leaves, while
the centre holds it, between the centre's commit and the adapter's record of the answer), or,
for a share of the kills, at a random time after the kill before (with one daemon: right after
its start, during recovery and the first extraction). Everything is drawn from one seeded generator.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class HarnessError(AssertionError):
    """The harness could not do what it was asked (a daemon died by itself, a wait ran out)."""


def adapter_command() -> list[str]:
    """``yibao-adapter`` of the virtualenv running the tests (``python -m adapter`` without one)."""
    script = Path(sys.executable).with_name("yibao-adapter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "adapter"]


class DaemonProcess:
    """One daemon; :meth:`start` again after :meth:`kill` is its next life."""

    def __init__(self, name: str, config: Path, log_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.config = config
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.env.pop("NOTIFY_SOCKET", None)  # never talk to a systemd the test runs under
        self.lives = 0
        self.kills = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.log_files: list[Path] = []
        #: (life, return code) of lives that ended without our kill or stop
        self.died: list[tuple[int, int]] = []

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise HarnessError(f"{self.name} is already running (pid {self.pid})")
        self._reap()
        self.lives += 1
        path = self.log_dir / f"{self.name}-{self.lives:03d}.log"
        self.log_files.append(path)
        self._log = path.open("wb")
        self._proc = subprocess.Popen(
            [*adapter_command(), "run", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=self.env, cwd=self.log_dir, start_new_session=True,
        )

    def check_alive(self) -> None:
        """Raise if the current life ended by itself (a crash, a configuration error)."""
        if self._proc is not None and self._proc.poll() is not None:
            code = self._proc.returncode
            self.died.append((self.lives, code))
            self._reap()
            raise HarnessError(f"{self.name} life {self.lives} exited by itself with {code}:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL this life (the pid we started, nothing else) and reap it."""
        self.check_alive()
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait(timeout=30)
        self.kills += 1
        self._reap()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (the daemon finishes its send and signs out); SIGKILL after
        ``timeout``. Returns the exit code (None if nothing was running)."""
        if self._proc is None:
            return None
        proc = self._proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
        code = proc.returncode
        self._reap()
        return code

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=30)
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_files:
            return "(no log)"
        path = self.log_files[-1]
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"({path}: {exc})"
        return f"--- {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class KillPlan:
    """How the chaos kills. ``kills`` in all, spread over the daemons at random."""

    kills: int = 20
    seed: int = 0
    #: a kill lands 1..this many centre requests after the one before
    max_requests_between: int = 12
    #: ... plus up to this many seconds
    jitter_seconds: float = 0.04
    #: share of the kills that land instead at a random time after the kill before (with one
    #: daemon: right after its start, during recovery and the first extraction)
    timed_share: float = 0.15
    timed_window_seconds: tuple[float, float] = (0.05, 1.5)
    #: when the requests stop coming (nothing left to send), kill after this long anyway
    idle_seconds: float = 4.0


@dataclass
class KillReport:
    kills: int = 0
    #: kills that landed while the centre was being sent requests
    busy: int = 0
    #: kills at a random time after the kill before (``timed_share``)
    timed: int = 0
    #: kills after waiting ``idle_seconds`` for requests that did not come
    idle: int = 0
    seconds: float = 0.0
    by_daemon: dict[str, int] = field(default_factory=dict)


def kill_at_random(daemons: Sequence[DaemonProcess], plan: KillPlan, activity: Callable[[], int]) -> KillReport:
    """Kill and restart ``plan.kills`` times. ``activity`` counts the requests the centre (or the
    proxy in front of it) has received so far. The daemons must be running."""
    rng = random.Random(plan.seed)
    report = KillReport()
    started = time.monotonic()
    for _ in range(plan.kills):
        victim = daemons[rng.randrange(len(daemons))] if len(daemons) > 1 else daemons[0]
        if rng.random() < plan.timed_share:
            low, high = plan.timed_window_seconds
            _sleep_watching(daemons, rng.uniform(low, high))
            report.timed += 1
        else:
            target = activity() + rng.randint(1, plan.max_requests_between)
            deadline = time.monotonic() + plan.idle_seconds
            while activity() < target and time.monotonic() < deadline:
                _sleep_watching(daemons, 0.005)
            if activity() >= target:
                _sleep_watching(daemons, rng.uniform(0, plan.jitter_seconds))
                report.busy += 1
            else:
                report.idle += 1
        victim.kill()
        victim.start()
        report.kills += 1
        report.by_daemon[victim.name] = report.by_daemon.get(victim.name, 0) + 1
    report.seconds = time.monotonic() - started
    return report


def _sleep_watching(daemons: Sequence[DaemonProcess], seconds: float) -> None:
    for daemon in daemons:
        daemon.check_alive()
    time.sleep(seconds)

