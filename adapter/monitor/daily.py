"""The daily health summary (每日上传情况): once a day the daemon writes what a person checking
that uploading runs would look at (the check policy asks staff to make every day): per
transaction the messages and records the centre acknowledged in the past day, the attempts that
failed and the records parked, what is still unsent and the oldest of it, whether signing in
works, and how old each catalogue is.

It is written at the first cycle after ``[monitor] daily_summary_at`` (local time, midnight by
default) and covers the 24 hours up to that time: one INFO line in the log (``action =
daily_summary``, the counts as ``summary`` in the JSON format) and a row of the state store's
``daily_summary`` keyed by the local day, so the status page shows the newest after a restart,
and several daemons sharing one spool write it once (the second insert of a day is refused by
the key and taken as "already written"). The numbers of the moment (unsent, sign-in,
catalogues) come from :mod:`adapter.monitor.facts`; the counts of the day are read here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from adapter.errors import AdapterError
from adapter.monitor.facts import Snapshot, read_snapshot
from adapter.monitor.health import Observed, age_text
from adapter.spool.states import RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow

logger = logging.getLogger(__name__)

#: the attempt outcome of an acknowledged request; every other finished attempt failed
_OK = "ok"


def _local_now() -> datetime:
    return datetime.now().astimezone()


@dataclass(frozen=True)
class TransactionDay:
    """One transaction's day."""

    infno: str
    name: str = ""
    #: messages the centre acknowledged in the window, and the records they carried
    uploads: int = 0
    records: int = 0
    #: attempts that finished in the window without an acknowledgement (refused, busy, no
    #: answer, HTTP errors); a transaction that is not uploaded (9001, a 5201 inquiry) too
    failures: int = 0
    #: records parked in the window (still parked now)
    parked: int = 0
    #: records not yet acknowledged, at the moment of writing, and when the oldest was read
    unsent: int = 0
    oldest_unsent_at: datetime | None = None


@dataclass(frozen=True)
class CatalogAge:
    kind: str
    #: None: no active version
    ver: str | None
    activated_at: datetime | None


@dataclass(frozen=True)
class DailySummary:
    """The summary written for ``day`` (local), covering ``start`` to ``end`` (local, aware);
    the other times are the state store's (UTC, naive)."""

    day: date
    start: datetime
    end: datetime
    written_at: datetime
    transactions: tuple[TransactionDay, ...] = ()
    #: when the cached session was opened (None: not signed in)
    signed_in_at: datetime | None = None
    #: "" (signing in works), "credentials" (HTTP 401) or "refused" (9001 refused)
    sign_in_problem: str = ""
    #: requests in a row that found no centre, at the moment of writing
    centre_unreachable: int = 0
    catalogs: tuple[CatalogAge, ...] = field(default_factory=tuple)

    def total(self, name: str) -> int:
        """``uploads``, ``records``, ``failures``, ``parked`` or ``unsent`` over the transactions."""
        return sum(int(getattr(t, name)) for t in self.transactions)

    @property
    def oldest_unsent(self) -> TransactionDay | None:
        waiting = [t for t in self.transactions if t.oldest_unsent_at is not None]
        return min(waiting, key=lambda t: (t.oldest_unsent_at, t.infno)) if waiting else None

    def age(self, moment: datetime | None) -> str:
        """How old ``moment`` (UTC) was when the summary was written."""
        return "—" if moment is None else age_text((self.written_at - moment).total_seconds())

    @property
    def sign_in_text(self) -> str:
        if self.sign_in_problem == "credentials":
            return "sign-in failing: the gateway refuses our credentials (HTTP 401)"
        if self.sign_in_problem == "refused":
            return "sign-in failing: the centre refuses 9001"
        if self.signed_in_at is None:
            return "not signed in"
        return f"signed in {self.age(self.signed_in_at)} ago"

    def line(self) -> str:
        """The summary as one log line."""
        uploaded = ", ".join(f"{t.infno} {t.uploads}/{t.records}" for t in self.transactions if t.uploads) or "none"
        failed = ", ".join(f"{t.infno} {t.failures}" for t in self.transactions if t.failures)
        parked = ", ".join(f"{t.infno} {t.parked}" for t in self.transactions if t.parked)
        oldest = self.oldest_unsent
        catalogs = ", ".join(f"{c.kind} {c.ver} {self.age(c.activated_at)}" if c.ver is not None
                             else f"{c.kind} none" for c in self.catalogs) or "none kept"
        return (
            f"daily summary {self.start:%Y-%m-%d %H:%M} – {self.end:%Y-%m-%d %H:%M}: "
            f"uploaded {self.total('uploads')} message(s) ({self.total('records')} records): {uploaded}; "
            f"failures {self.total('failures')}" + (f" ({failed})" if failed else "")
            + f"; parked {self.total('parked')}" + (f" ({parked})" if parked else "")
            + f"; unsent {self.total('unsent')}"
            + (f", oldest {oldest.infno} {self.age(oldest.oldest_unsent_at)}" if oldest else "")
            + f"; {self.sign_in_text}"
            + (f"; centre unreachable {self.centre_unreachable} request(s) in a row" if self.centre_unreachable
               else "")
            + f"; catalogues {catalogs}"
        )

    # -- stored as JSON ------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, default=_iso, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> DailySummary:
        data = json.loads(text)
        return cls(
            day=date.fromisoformat(data["day"]), start=datetime.fromisoformat(data["start"]),
            end=datetime.fromisoformat(data["end"]), written_at=datetime.fromisoformat(data["written_at"]),
            transactions=tuple(TransactionDay(**{**t, "oldest_unsent_at": _moment(t.get("oldest_unsent_at"))})
                               for t in data.get("transactions", [])),
            signed_in_at=_moment(data.get("signed_in_at")), sign_in_problem=data.get("sign_in_problem", ""),
            centre_unreachable=int(data.get("centre_unreachable", 0)),
            catalogs=tuple(CatalogAge(c["kind"], c.get("ver"), _moment(c.get("activated_at")))
                           for c in data.get("catalogs", [])),
        )


def _iso(value: Any) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _moment(text: str | None) -> datetime | None:
    return None if not text else datetime.fromisoformat(text)


def window(now: datetime, at: str) -> tuple[date, datetime, datetime] | None:
    """(day, start, end) of the summary due at ``now`` (local, aware): the 24 hours up to
    today's ``at`` (HH:MM) once ``now`` has passed it; None before it."""
    hour, minute = (int(part) for part in at.split(":"))
    if (now.hour, now.minute) < (hour, minute):
        return None
    end = datetime.combine(now.date(), time(hour, minute), tzinfo=now.tzinfo)
    start = datetime.combine(now.date() - timedelta(days=1), time(hour, minute), tzinfo=now.tzinfo)
    return now.date(), start, end


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def summarise(conn: Connection, snapshot: Snapshot, day: date, start: datetime, end: datetime,
              catalog_kinds: tuple[str, ...] = ()) -> DailySummary:
    """The summary of ``start``–``end`` (local, aware), with the moment's facts of ``snapshot``."""
    lo, hi = _utc(start), _utc(end)
    message, attempt, record = schema.message, schema.attempt, schema.record
    counts: dict[str, dict[str, int]] = {}

    def count(infno: str) -> dict[str, int]:
        return counts.setdefault(infno, {"uploads": 0, "records": 0, "failures": 0, "parked": 0})

    for row in conn.execute(
        select(message.c.infno, func.count().label("n"),
               func.coalesce(func.sum(message.c.line_count), 0).label("lines"))
        .where(message.c.acked_at >= lo, message.c.acked_at < hi).group_by(message.c.infno)
    ).all():
        count(row.infno).update(uploads=int(row.n), records=int(row.lines))
    for row in conn.execute(
        select(attempt.c.infno, func.count().label("n"))
        .where(attempt.c.finished_at >= lo, attempt.c.finished_at < hi, attempt.c.outcome.is_not(None),
               attempt.c.outcome != _OK).group_by(attempt.c.infno)
    ).all():
        count(row.infno)["failures"] = int(row.n)
    for row in conn.execute(
        select(record.c.infno, func.count().label("n"))
        .where(record.c.status == RecordStatus.PARKED.value, record.c.updated_at >= lo, record.c.updated_at < hi)
        .group_by(record.c.infno)
    ).all():
        count(row.infno)["parked"] = int(row.n)
    facts = snapshot.transactions
    transactions = tuple(
        TransactionDay(infno, facts[infno].name if infno in facts else "", **counts.get(infno, {}),
                       unsent=facts[infno].unsent_records if infno in facts else 0,
                       oldest_unsent_at=facts[infno].oldest_unsent_at if infno in facts else None)
        for infno in sorted({*counts, *facts})
    )
    active = {c.kind: c for c in snapshot.catalogs}
    catalogs = tuple(CatalogAge(c.kind, c.ver, c.activated_at) for c in snapshot.catalogs) + tuple(
        CatalogAge(kind, None, None) for kind in catalog_kinds if kind not in active)
    centre = snapshot.centre
    return DailySummary(day, start, end, snapshot.taken_at, transactions, centre.signed_in_at,
                        centre.sign_in_cause or "", centre.unreachable_in_a_row, catalogs)


def latest(store: StateStore) -> DailySummary | None:
    """The newest summary written (None: none yet)."""
    table = schema.daily_summary
    with store.begin() as conn:
        text = conn.execute(select(table.c.summary).order_by(table.c.day.desc()).limit(1)).scalar()
    return None if text is None else DailySummary.from_json(text)


def written(conn: Connection, day: date) -> bool:
    table = schema.daily_summary
    return conn.execute(select(table.c.day).where(table.c.day == day.isoformat())).first() is not None


@dataclass
class DailyWriter:
    """Writes the summary once a day; ``clock`` gives the local time (aware)."""

    clock: Callable[[], datetime] = _local_now
    #: the last day this writer found written, so later cycles that day ask the store nothing
    _done: date | None = None

    def write_if_due(self, observed: Observed) -> DailySummary | None:
        """The summary, when this call wrote it; None when it is not due, already written (by
        this daemon or another on the spool) or the state store cannot be read (logged: the
        next cycle tries again)."""
        due = window(self.clock(), observed.settings.monitor.daily_summary_at)
        if due is None:
            return None
        day, start, end = due
        if day == self._done:
            return None
        store = observed.store
        try:
            with store.begin() as conn:
                if written(conn, day):
                    self._done = day
                    return None
            infnos = tuple(observed.settings.his.transactions)
            snapshot = read_snapshot(store, infnos, observed.edition)
            with store.begin() as conn:
                summary = summarise(conn, snapshot, day, start, end, tuple(observed.settings.catalog.kinds))
                added = store.insert_ignoring_duplicates(conn, schema.daily_summary, [
                    {"day": day.isoformat(), "written_at": utcnow(), "summary": summary.to_json()}])
        except AdapterError as exc:
            logger.warning("daily summary not written, trying again next cycle: %s", exc,
                           extra={"action": "daily_summary_deferred"})
            return None
        self._done = day
        if not added:
            return None  # another daemon on the spool wrote it first
        logger.info("%s", summary.line(), extra={"action": "daily_summary", "summary": json.loads(summary.to_json())})
        return summary
