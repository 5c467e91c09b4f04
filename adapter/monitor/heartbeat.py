"""The daemon's progress heartbeat: a monotonic time the cycle moves forward as it works.

Progress is what the cycle commits to the state store: every stage reads and writes it in
batches (an extraction batch, a chunk of checked records, a built message, each send's attempt
row and its outcome), so a commit from the thread that runs the cycle is a step forward. A cycle
blocked anywhere (a HIS query that never returns, a request that hangs past its timeouts, a lock
that is never granted) commits nothing and its heartbeat ages; a long but healthy cycle keeps it
young. Commits from other threads (the monitor endpoint reading the store) do not count. The
daemon also beats between its own steps, and marks the wait between cycles as idle, which is
healthy however long it lasts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


class Heartbeat:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._last = clock()
        self._idle = False
        #: what the daemon was doing at the last beat (for the log when the watchdog falls silent)
        self.where = "starting"
        self._thread: int | None = None

    def beat(self, where: str | None = None) -> None:
        """Progress now; ``where`` names the step (kept until the next named one)."""
        with self._lock:
            self._last = self._clock()
            self._idle = False
            if where is not None:
                self.where = where

    def idle(self, where: str = "waiting for the next cycle") -> None:
        """Waiting is healthy: the heartbeat stays young until the next :meth:`beat`."""
        with self._lock:
            self._idle = True
            self.where = where

    def age(self) -> float:
        """Seconds since the last progress (0 while idle)."""
        with self._lock:
            return 0.0 if self._idle else max(0.0, self._clock() - self._last)

    def watch(self, engine: Engine, thread: threading.Thread | None = None) -> None:
        """Count every commit ``thread`` (default: the calling one) makes through ``engine``."""
        self._thread = (thread or threading.current_thread()).ident
        if not event.contains(engine, "commit", self._on_commit):
            event.listen(engine, "commit", self._on_commit)

    def unwatch(self, engine: Engine) -> None:
        if event.contains(engine, "commit", self._on_commit):
            event.remove(engine, "commit", self._on_commit)

    def _on_commit(self, _conn: Any) -> None:
        if threading.get_ident() == self._thread:
            with self._lock:
                self._last = self._clock()
