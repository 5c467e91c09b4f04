"""Talking to systemd (``Type=notify``): the sd_notify datagram protocol, and a watchdog that
pings only while the daemon makes progress.

The protocol is one datagram of ``KEY=value`` lines to the unix socket named by
``$NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract namespace); outside systemd the
variable is unset and every call does nothing. It is small enough to speak directly rather than
through a library.

The watchdog (``WatchdogSec=``, seen here as ``$WATCHDOG_USEC``) restarts a daemon that stops
pinging. Pinging from a timer alone would keep a hung cycle alive forever, so the pinging thread
asks a :class:`~adapter.monitor.heartbeat.Heartbeat` first: it pings every half interval while
the heartbeat is younger than the whole interval, and falls silent once a cycle has made no
progress for that long.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from adapter.monitor.heartbeat import Heartbeat

logger = logging.getLogger(__name__)


def notify(*lines: str) -> bool:
    """Send ``KEY=value`` lines to systemd in one datagram; False when not under systemd (or
    the socket refused it, which is logged: a daemon must not stop because its supervisor went)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not lines:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(lines).encode("utf-8"), address)
    except OSError as exc:
        logger.warning("cannot notify systemd at %s: %s", address.lstrip("\0"), exc,
                       extra={"action": "sd_notify_failed"})
        return False
    return True


def status_line(text: str) -> str:
    """``STATUS=`` with ``text`` on one line (systemctl status shows it as it is)."""
    return "STATUS=" + " ".join(text.split())


def reloading_line() -> str:
    """``RELOADING=1`` with the ``MONOTONIC_USEC`` systemd 253 and later want beside it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_seconds() -> float | None:
    """The watchdog interval systemd set for this process (None: no watchdog). ``$WATCHDOG_PID``,
    when set, must name this process: a child the daemon started must not ping for it."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """A thread that sends ``WATCHDOG=1`` every half ``interval`` while ``heartbeat`` is fresher
    than ``interval``; it logs once when it falls silent and once when it speaks again."""

    def __init__(self, interval: float, heartbeat: Heartbeat) -> None:
        self.interval = interval
        self.heartbeat = heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self.pings = 0

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        silent = False
        while not self._stop.is_set():
            age = self.heartbeat.age()
            if age < self.interval:
                if notify("WATCHDOG=1"):
                    self.pings += 1
                if silent:
                    logger.warning("the cycle makes progress again; watchdog pings resumed",
                                   extra={"action": "watchdog_resumed"})
                    silent = False
            elif not silent:
                silent = True
                logger.error(
                    "no progress for %.0f s (stage: %s); watchdog pings withheld, systemd will restart the daemon",
                    age, self.heartbeat.where, extra={"action": "watchdog_withheld"},
                )
            self._stop.wait(self.interval / 2)
