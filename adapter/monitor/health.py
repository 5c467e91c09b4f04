"""The daemon's health as the monitor endpoint, the status page and the alerts see it: the facts
of the state database (:mod:`adapter.monitor.facts`, cached a few seconds so a page, a scrape
and a readiness probe arriving together read the database once) and what only the running
daemon knows (:class:`Runtime`: its cycles and its heartbeat).

Readiness is four checks, each with its reason: the state store answers, a cycle succeeded
recently, no queue's head is stuck, signing in works. Liveness is the heartbeat: the same rule
the systemd watchdog follows.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from adapter.config import Settings
from adapter.errors import StateStoreError
from adapter.monitor.facts import Snapshot, read_snapshot, state_store_reachable
from adapter.monitor.heartbeat import Heartbeat
from adapter.plugin.api import RegionProfile
from adapter.spec.tables import Edition
from adapter.state.store import StateStore, utcnow

#: how long a snapshot of the database is reused
SNAPSHOT_SECONDS = 5.0
#: a heartbeat this old means a hung daemon when systemd gives no watchdog interval
DEFAULT_LIVENESS_SECONDS = 15 * 60.0


@dataclass(frozen=True)
class Observed:
    """What the monitor reads: the wired adapter's state store, settings and region (replaced
    as a whole when the configuration is reloaded)."""

    store: StateStore
    settings: Settings
    region: RegionProfile
    edition: Edition | None = None


@dataclass
class Runtime:
    """What only the running daemon knows."""

    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    started_at: datetime = field(default_factory=utcnow)
    #: systemd's watchdog interval (None: none; liveness then uses DEFAULT_LIVENESS_SECONDS)
    watchdog_seconds: float | None = None
    cycles: int = 0
    last_cycle_at: datetime | None = None
    last_cycle_ok_at: datetime | None = None
    last_cycle_errors: list[str] = field(default_factory=list)
    #: the STATUS= line of the last cycle
    last_status: str = ""
    #: catalogue kind -> when a sync last found it current (switched in, or nothing newer)
    catalogs_current_at: dict[str, datetime] = field(default_factory=dict)

    def cycle_done(self, errors: list[str], status: str) -> None:
        now = utcnow()
        self.cycles += 1
        self.last_cycle_at = now
        self.last_cycle_errors = list(errors)
        self.last_status = status
        if not errors:
            self.last_cycle_ok_at = now

    @property
    def liveness_seconds(self) -> float:
        return self.watchdog_seconds or DEFAULT_LIVENESS_SECONDS


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


class Health:
    def __init__(self, observed: Observed, runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> None:
        self.observed = observed
        self.runtime = runtime
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, Snapshot] | None = None

    def observe(self, observed: Observed) -> None:
        """Read another adapter from now on (after a reload)."""
        with self._lock:
            self.observed = observed
            self._cached = None

    def snapshot(self, fresh: bool = False) -> Snapshot:
        """The database's facts, at most SNAPSHOT_SECONDS old (``fresh``: read now). Raises
        StateStoreError when the store cannot be read."""
        with self._lock:
            now = self._clock()
            if not fresh and self._cached is not None and now - self._cached[0] < SNAPSHOT_SECONDS:
                return self._cached[1]
            observed = self.observed
            snapshot = read_snapshot(observed.store, observed.settings.his.transactions, observed.edition)
            self._cached = (now, snapshot)
            return snapshot

    # -- probes ------------------------------------------------------------------------------
    def liveness(self) -> tuple[bool, dict[str, Any]]:
        age = self.runtime.heartbeat.age()
        alive = age < self.runtime.liveness_seconds
        return alive, {
            "alive": alive,
            "heartbeat_age_seconds": round(age, 1),
            "limit_seconds": self.runtime.liveness_seconds,
            "doing": self.runtime.heartbeat.where,
        }

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        checks = self.checks()
        ready = all(check.ok for check in checks)
        return ready, {"ready": ready, "reasons": [c.detail for c in checks if not c.ok],
                       "checks": {c.name: c.as_dict() for c in checks}}

    def checks(self) -> list[Check]:
        observed = self.observed
        problem = state_store_reachable(observed.store)
        if problem is not None:
            return [Check("state_store", False, f"the state store does not answer: {problem}")]
        checks = [Check("state_store", True, "the state store answers")]
        checks.append(self._cycle_check(observed.settings))
        try:
            snapshot = self.snapshot()
        except StateStoreError as exc:
            return [*checks, Check("state_store", False, f"the state store cannot be read: {exc}")]
        checks.append(self._stuck_check(snapshot, observed.settings))
        cause = snapshot.centre.sign_in_cause
        if cause is None:
            checks.append(Check("sign_in", True, "signing in works" if snapshot.centre.signed_in_at
                                else "not signed in yet (signs in before the first send)"))
        else:
            problem_attempt = snapshot.centre.sign_in_problem
            said = problem_attempt.err_msg if problem_attempt else ""
            checks.append(Check("sign_in", False, (
                "the gateway refuses our credentials (HTTP 401): " if cause == "credentials"
                else "the centre refuses sign-in (9001): ") + said))
        return checks

    def _cycle_check(self, settings: Settings) -> Check:
        runtime = self.runtime
        limit = recent_cycle_limit(settings)
        if runtime.last_cycle_ok_at is None:
            if runtime.last_cycle_at is None:
                return Check("cycle", False, "no cycle has finished yet")
            return Check("cycle", False, "no cycle has succeeded yet: " + "; ".join(runtime.last_cycle_errors))
        age = utcnow() - runtime.last_cycle_ok_at
        if age > limit:
            errors = "; ".join(runtime.last_cycle_errors) or "none finished since"
            return Check("cycle", False, f"the last successful cycle was {age_text(age.total_seconds())} ago "
                                         f"(limit {age_text(limit.total_seconds())}): {errors}")
        return Check("cycle", True, f"the last cycle succeeded {age_text(age.total_seconds())} ago")

    def _stuck_check(self, snapshot: Snapshot, settings: Settings) -> Check:
        stuck = stuck_heads(snapshot, settings)
        if not stuck:
            return Check("queues", True, "no queue's head is stuck")
        return Check("queues", False, "; ".join(
            f"{infno}: message {head.message_id} unsent for {age_text(head.age_seconds(snapshot.taken_at))} after "
            f"{head.attempts} attempt(s)" + (f" ({head.last_error})" if head.last_error else "")
            for infno, head in stuck))


def recent_cycle_limit(settings: Settings) -> timedelta:
    """A successful cycle longer ago than this is not recent: two intervals and five minutes."""
    return timedelta(minutes=2 * settings.schedule.interval_minutes + 5)


def stuck_heads(snapshot: Snapshot, settings: Settings) -> list[tuple[str, Any]]:
    """(infno, head) of every queue whose oldest unsent message was tried and is still unsent
    ``[monitor] stuck_minutes`` after it was built (one not tried yet is backlog, not stuck)."""
    limit = settings.monitor.stuck_minutes * 60
    return [(infno, facts.head) for infno, facts in sorted(snapshot.transactions.items())
            if facts.head is not None and facts.head.attempts > 0
            and facts.head.age_seconds(snapshot.taken_at) > limit]


def age_text(seconds: float | None) -> str:
    """"3 d 4 h", "24 h 00 m", "2 h 05 m", "7 m 30 s", "12 s" (days from 48 hours on)."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86400) if whole >= 2 * 86400 else (0, whole)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"
