"""Alerts that start and clear: conditions read from the daemon's health, and the book of open
alerts that turns them into one alert when a condition starts and one when it clears.

A condition is evaluated after every cycle, but a person hears of it twice: when it starts and
when it clears, never once per cycle. The open alerts (and the parked counts the "rising" rule
compares with) are kept in a small JSON file, so a restart neither repeats an alert nor forgets
to clear one. Alerts go out through the ``adapter_alert`` hook: the built-in log line, the
webhook and the mail of :mod:`adapter.monitor.senders`, and any plugin's; ``details["state"]``
is ``start`` or ``clear`` and ``details["alert"]`` names the condition (``oldest_unsent:2301``).

The conditions, each with its own key (so a transaction's clears without another's):

- ``oldest_unsent:<infno>`` the oldest record not acknowledged has waited
  ``[alerts] oldest_unsent_share`` of the region's upload deadline for the transaction
- ``parked_rising`` more records parked now than at some point in the last
  ``parked_window_minutes`` (clears once the count has not risen for that long)
- ``queue_stuck:<infno>`` the head of the queue was tried and is still unsent after
  ``[monitor] stuck_minutes``
- ``sign_in_failing`` the gateway refuses our credentials (HTTP 401, cause ``credentials``) or
  the centre refuses 9001 (cause ``refused``); neither is "centre down"
- ``centre_unreachable`` ``centre_failures`` requests in a row found no centre (no connection,
  no reply, HTTP 5xx)
- ``catalog_stale:<kind>`` a catalogue of ``[catalog] kinds`` not confirmed current (switched in,
  or found up to date) for its refresh period plus two cycles, or with no active version
- ``reconcile_mismatch:<kind>`` the newest reconciliation of a kind (day, month) does not balance
- ``disk_low`` the SQLite state database's file system has less than ``disk_free_percent`` free
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from adapter.config import Settings
from adapter.errors import StateStoreError
from adapter.monitor.facts import Snapshot
from adapter.monitor.health import Runtime, age_text, stuck_heads
from adapter.plugin.api import RegionProfile
from adapter.state.private import PRIVATE_FILE
from adapter.state.store import utcnow

logger = logging.getLogger(__name__)

KINDS = ("oldest_unsent", "parked_rising", "queue_stuck", "sign_in_failing", "centre_unreachable", "catalog_stale",
         "reconcile_mismatch", "disk_low")
#: parked-count samples kept (at one a cycle, far more than a window needs)
MAX_SAMPLES = 2000

Send = Callable[[str, str, dict[str, Any]], None]


@dataclass(frozen=True)
class Condition:
    """A condition that holds now: ``key`` names it (kind, and the transaction or catalogue)."""

    key: str
    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class OpenAlert:
    key: str
    kind: str
    message: str
    details: dict[str, Any]
    since: str


# -- conditions --------------------------------------------------------------------------------
def conditions(snapshot: Snapshot, settings: Settings, region: RegionProfile, runtime: Runtime,
               parked_rise: int = 0) -> list[Condition]:
    """Every condition that holds in ``snapshot``; ``parked_rise``: how many more records are
    parked now than at the lowest point of the window (from :class:`AlertBook`)."""
    found: list[Condition] = []
    found += _oldest_unsent(snapshot, settings, region)
    if parked_rise > 0:
        window = settings.alerts.parked_window_minutes
        found.append(Condition("parked_rising", "parked_rising", (
            f"挂起记录在 {window:g} 分钟内增加 {parked_rise} 条（现共 {snapshot.parked_records} 条）; parked records "
            f"rose by {parked_rise} within {window:g} min (now {snapshot.parked_records}): see the status page or "
            "`yibao-adapter status`"), {"rise": parked_rise, "parked": snapshot.parked_records,
                                        "by_transaction": {i: t.parked for i, t in snapshot.transactions.items()
                                                           if t.parked}}))
    for infno, head in stuck_heads(snapshot, settings):
        age = age_text(head.age_seconds(snapshot.taken_at))
        found.append(Condition(f"queue_stuck:{infno}", "queue_stuck", (
            f"{infno} 队首消息 {head.message_id} 已尝试 {head.attempts} 次、{age} 仍未上传; the head of the {infno} "
            f"queue (message {head.message_id}) is still unsent after {head.attempts} attempt(s) and {age}"
            + (f": {head.last_error}" if head.last_error else "")),
            {"infno": infno, "message_id": head.message_id, "attempts": head.attempts, "status": head.status,
             "age_seconds": round(head.age_seconds(snapshot.taken_at)), "last_error": head.last_error}))
    centre = snapshot.centre
    problem = centre.sign_in_problem
    if problem is not None:
        cause = centre.sign_in_cause
        text = ("网关拒绝本院凭据（HTTP 401）; the gateway refuses our credentials (HTTP 401): check "
                "[centre.credentials] and the gateway's registration" if cause == "credentials"
                else "中心拒绝签到（9001）; the centre refuses sign-in (9001)")
        found.append(Condition("sign_in_failing", "sign_in_failing", f"{text}: {problem.err_msg}",
                               {"cause": cause, "infno": problem.infno, "msgid": problem.msgid,
                                "error": problem.err_msg}))
    in_a_row = centre.unreachable_in_a_row
    if in_a_row >= settings.alerts.centre_failures:
        last = centre.attempts[0]
        answered = centre.last_answer_at
        since = f"; it last answered at {answered:%Y-%m-%d %H:%M:%S} UTC" if answered else ""
        found.append(Condition("centre_unreachable", "centre_unreachable", (
            f"连续 {in_a_row} 次请求连不上中心; {in_a_row} requests in a row found no centre (last: "
            f"{last.err_msg or last.outcome}){since}"),
            {"requests": in_a_row, "last_error": last.err_msg,
             "last_answer_at": answered.isoformat() if answered else None}))
    found += _stale_catalogues(snapshot, settings, runtime)
    for run in snapshot.reconciliations:
        if not run.balanced:
            found.append(Condition(f"reconcile_mismatch:{run.kind}", "reconcile_mismatch", (
                f"对账不平; reconciliation of {run.period} does not balance: {run.differences} difference(s); see "
                f"`yibao-adapter reconcile history` (run {run.run_id})"),
                {"run": run.run_id, "period": run.period, "kind": run.kind, "differences": run.differences,
                 "pairs": list(run.unbalanced)}))
    disk = snapshot.disk
    if disk is not None and disk.free_share * 100 < settings.alerts.disk_free_percent:
        found.append(Condition("disk_low", "disk_low", (
            f"状态库磁盘仅剩 {disk.free_share:.0%}; the state database's disk has {disk.free_share:.0%} free "
            f"({disk.free_bytes / 2**30:.1f} GiB of {disk.total_bytes / 2**30:.1f} GiB) at {disk.path}"),
            {"path": disk.path, "free_bytes": disk.free_bytes, "total_bytes": disk.total_bytes}))
    return found


def _oldest_unsent(snapshot: Snapshot, settings: Settings, region: RegionProfile) -> list[Condition]:
    found = []
    share = settings.alerts.oldest_unsent_share
    for infno, facts in sorted(snapshot.transactions.items()):
        if facts.oldest_unsent_at is None:
            continue
        deadline = region.deadline_for(infno)
        waited = snapshot.taken_at - facts.oldest_unsent_at
        if waited >= deadline * share:
            found.append(Condition(f"oldest_unsent:{infno}", "oldest_unsent", (
                f"{infno} 最早一条未上传记录已等待 {age_text(waited.total_seconds())}（上传时限 "
                f"{age_text(deadline.total_seconds())}）; the oldest {infno} record not yet acknowledged has waited "
                f"{age_text(waited.total_seconds())} of its {age_text(deadline.total_seconds())} upload deadline "
                f"({facts.unsent_records} unsent)"),
                {"infno": infno, "waited_seconds": round(waited.total_seconds()),
                 "deadline_seconds": deadline.total_seconds(), "unsent": facts.unsent_records}))
    return found


def _stale_catalogues(snapshot: Snapshot, settings: Settings, runtime: Runtime) -> list[Condition]:
    found = []
    active = {catalog.kind: catalog for catalog in snapshot.catalogs}
    period = timedelta(hours=settings.catalog.interval_hours)
    limit = period + timedelta(minutes=2 * settings.schedule.interval_minutes)
    for kind in settings.catalog.kinds:
        catalog = active.get(kind)
        known = [t for t in (catalog.activated_at if catalog else None, runtime.catalogs_current_at.get(kind))
                 if t is not None]
        if not known:
            found.append(Condition(f"catalog_stale:{kind}", "catalog_stale", (
                f"目录 {kind} 尚无生效版本; catalogue {kind} has no active version: its lines are not checked "
                f"(see `yibao-adapter catalog list --all`)"), {"kind": kind, "ver": None}))
            continue
        age = snapshot.taken_at - max(known)
        if age > limit:
            hours, aged = settings.catalog.interval_hours, age_text(age.total_seconds())
            found.append(Condition(f"catalog_stale:{kind}", "catalog_stale", (
                f"目录 {kind} 已 {aged} 未确认为最新（每 {hours:g} h 同步）; catalogue {kind} has not been confirmed "
                f"current for {aged} (synced every {hours:g} h; version {catalog.ver if catalog else '-'})"),
                {"kind": kind, "ver": catalog.ver if catalog else None, "age_seconds": round(age.total_seconds())}))
    return found


# -- the book of open alerts ---------------------------------------------------------------------
def state_path(settings: Settings) -> Path | None:
    """Where open alerts are kept: ``[alerts] state_file``, else ``$STATE_DIRECTORY`` (systemd's
    StateDirectory=), else beside a SQLite state database; None: in memory only."""
    if settings.alerts.state_file:
        return Path(settings.alerts.state_file)
    state_directory = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory:
        return Path(state_directory) / "alerts.json"
    url = make_url(settings.state.url)
    database = url.database
    if url.get_backend_name() == "sqlite" and database and database != ":memory:" and not database.startswith("file:"):
        return Path(database).with_name("alerts.json")
    return None


class AlertBook:
    """The open alerts; :meth:`update` sends a start for each new condition and a clear for
    each one gone, and saves the book when it changed."""

    def __init__(self, path: Path | None, send: Send) -> None:
        self.path = path
        self.send = send
        self.open: dict[str, OpenAlert] = {}
        #: (Unix time, parked records) one per evaluation, within the longest window in use
        self.parked: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._load()

    def parked_rise(self, parked: int, window_minutes: float, now: datetime | None = None) -> int:
        """Record the parked count now; how much it rose above the lowest count of the window."""
        moment = ((now or utcnow()) - datetime(1970, 1, 1)).total_seconds()
        start = moment - window_minutes * 60
        with self._lock:
            self.parked = [(t, n) for t, n in self.parked if t >= start][-MAX_SAMPLES:]
            lowest = min((n for _, n in self.parked), default=parked)
            self.parked.append((moment, parked))
        return max(0, parked - lowest)

    def update(self, found: Iterable[Condition], kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
        """Open what is new, clear what is gone (only alerts of ``kinds`` when given: a partial
        evaluation leaves the others as they are). Returns (state, key) of every alert sent."""
        evaluated = set(KINDS if kinds is None else kinds)
        now = utcnow()
        current = {condition.key: condition for condition in found if condition.kind in evaluated}
        sent: list[tuple[str, str]] = []
        with self._lock:
            for key, condition in current.items():
                if key in self.open:
                    # still open: keep the newest words, tell nobody again
                    self.open[key].message, self.open[key].details = condition.message, condition.details
                    continue
                alert = OpenAlert(key, condition.kind, condition.message, condition.details, now.isoformat() + "Z")
                self.open[key] = alert
                sent.append(("start", key))
            for key in [k for k, alert in self.open.items() if alert.kind in evaluated and k not in current]:
                sent.append(("clear", key))
            cleared = {key: self.open.pop(key) for state, key in sent if state == "clear"}
            started = {key: self.open[key] for state, key in sent if state == "start"}
            self._save()
        for key, alert in started.items():
            self._send(alert, "start", now)
            logger.info("alert %s started", key, extra={"action": "alert_started", "alert": key})
        for key, alert in cleared.items():
            self._send(alert, "clear", now)
            logger.info("alert %s cleared", key, extra={"action": "alert_cleared", "alert": key})
        return sent

    def counts(self) -> dict[str, int]:
        with self._lock:
            counted: dict[str, int] = {}
            for alert in self.open.values():
                counted[alert.kind] = counted.get(alert.kind, 0) + 1
            return counted

    def _send(self, alert: OpenAlert, state: str, now: datetime) -> None:
        details = {**alert.details, "state": state, "alert": alert.key, "since": alert.since}
        message = alert.message
        if state == "clear":
            started = datetime.fromisoformat(alert.since.rstrip("Z"))
            lasted = (now - started).total_seconds()
            details.update(cleared_at=now.isoformat() + "Z", lasted_seconds=round(lasted))
            message = f"已恢复 cleared after {age_text(lasted)}: {alert.message}"
        self.send(alert.kind, message, details)

    # -- persistence -----------------------------------------------------------------------------
    def _load(self) -> None:
        if self.path is None or not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.open = {key: OpenAlert(**value) for key, value in data.get("open", {}).items()}
            self.parked = [(float(t), int(n)) for t, n in data.get("parked", [])]
        except (OSError, ValueError, TypeError) as exc:
            # A damaged book must not stop the daemon: start empty (open alerts may repeat once).
            logger.warning("cannot read the open alerts from %s (%s); starting with none", self.path, exc,
                           extra={"action": "alert_state_unreadable"})
            self.open, self.parked = {}, []

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"open": {key: asdict(alert) for key, alert in self.open.items()}, "parked": self.parked}
        temporary = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False)
            os.replace(temporary, self.path)
        except OSError as exc:
            logger.warning("cannot keep the open alerts in %s: %s", self.path, exc,
                           extra={"action": "alert_state_unwritable"})


def evaluate(book: AlertBook, snapshot_of: Callable[[], Snapshot], settings: Settings, region: RegionProfile,
             runtime: Runtime, kinds: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """One evaluation: read the facts, note the parked count, update the book. A state store
    that cannot be read changes nothing (the cycle's own error says why)."""
    try:
        snapshot = snapshot_of()
    except StateStoreError as exc:
        logger.warning("alerts not evaluated: %s", exc, extra={"action": "alerts_skipped"})
        return []
    evaluated = set(KINDS if kinds is None else kinds)
    rise = book.parked_rise(snapshot.parked_records, settings.alerts.parked_window_minutes,
                            snapshot.taken_at) if "parked_rising" in evaluated else 0
    return book.update(conditions(snapshot, settings, region, runtime, rise), evaluated)
