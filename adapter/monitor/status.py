"""Queue health for ``status``: counts per state, every transaction's records and messages (named
from the region's interface edition), the oldest unsent item, parked reasons, last upload; and
whether something needs a person now (:func:`needs_a_person`), which ``status`` and ``run
--once`` exit on.

Times are kept as the state store holds them (naive UTC) and shown in this machine's local time
with its zone (:func:`local_time`), as the logs are.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from adapter.config import Settings
from adapter.monitor.facts import Snapshot, read_snapshot
from adapter.monitor.health import age_text, stuck_heads
from adapter.progress import describe
from adapter.spec.tables import Edition
from adapter.spool.states import UNSENT_MESSAGE_STATES, MessageStatus, ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.progress import read_progress
from adapter.state.store import StateStore, utcnow
from adapter.state.watermarks import read_watermark, save_watermark

#: watermark rows that remember when ``status`` / ``run --once`` last looked (not HIS sources)
LOOK_PREFIX = "look."
#: a progress row not written for this long (or three ``[progress] every_seconds``, if longer)
#: belongs to work that may have stopped: a process killed mid-way leaves its row unfinished
STALE_PROGRESS_SECONDS = 300.0


# -- local time ------------------------------------------------------------------------------
def local(moment: datetime) -> datetime:
    """A naive UTC time of the state store in this machine's zone."""
    return moment.replace(tzinfo=UTC).astimezone()


def zone_text(moment: datetime) -> str:
    """``CST (+08:00)``; the offset alone where the zone has no name of its own."""
    offset = moment.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}" if len(offset) == 5 else offset
    name = moment.tzname() or ""
    return f"{name} ({offset})" if name and name[0] not in "+-" and name != offset else offset


def local_time(moment: datetime | None) -> str:
    """``2026-12-01 18:05:00 CST (+08:00)`` for a naive UTC time ("-" for none)."""
    if moment is None:
        return "-"
    shown = local(moment)
    return f"{shown:%Y-%m-%d %H:%M:%S} {zone_text(shown)}"


def local_iso(moment: datetime | None) -> str | None:
    """ISO 8601 with the local offset (``2026-12-01T18:05:00+08:00``), for JSON."""
    return None if moment is None else local(moment).isoformat(timespec="seconds")


def local_day_start(day: date) -> datetime:
    """The start of a local calendar day as a naive UTC time (what ``--since D`` means)."""
    return datetime.combine(day, time()).astimezone().astimezone(UTC).replace(tzinfo=None)


def jsonable(value: Any) -> Any:
    """``value`` with every (naive UTC) datetime as local ISO 8601."""
    if isinstance(value, datetime):
        return local_iso(value)
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


# -- the queue -------------------------------------------------------------------------------
@dataclass
class QueueStatus:
    messages: dict[str, int] = field(default_factory=dict)
    #: records of every transaction by state (a 2301 fee line is one record)
    lines: dict[str, int] = field(default_factory=dict)
    #: per transaction (configured ones even when empty): infno, its name in the edition,
    #: records, records by state, messages by state, oldest unsent record, head, last upload
    transactions: list[dict[str, Any]] = field(default_factory=list)
    oldest_unsent_age_seconds: float | None = None
    oldest_unsent_created_at: datetime | None = None
    last_successful_upload: datetime | None = None
    watermarks: dict[str, str] = field(default_factory=dict)
    #: the commonest reasons of parked records: infno, kind, reason, lines
    parked_reasons: list[dict[str, Any]] = field(default_factory=list)
    retry_errors: list[dict[str, Any]] = field(default_factory=list)
    #: messages whose outcome at the centre is unknown (a lost reply not yet settled), oldest first
    unknown: list[dict[str, Any]] = field(default_factory=list)
    #: long work under way in any process (a backfill's stages, an import, a reconciliation):
    #: done, total, rate, time left, the estimated end (:func:`work_in_progress`)
    progress: list[dict[str, Any]] = field(default_factory=list)
    #: the facts the monitor reads too (heads, the centre's answers), for :func:`needs_a_person`
    snapshot: Snapshot | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in fields(self) if f.name != "snapshot"}


def queue_status(store: StateStore, reasons_limit: int = 20, edition: Edition | None = None,
                 infnos: Sequence[str] = (), stale_after: float = STALE_PROGRESS_SECONDS) -> QueueStatus:
    """``edition``: the region's interface edition, for the transactions' names (none: blank);
    ``infnos``: the configured transactions, listed even when nothing of theirs is stored;
    ``stale_after``: seconds without news after which work in progress may have stopped."""
    message, line = schema.message, schema.record
    snapshot = read_snapshot(store, infnos, edition, limit=reasons_limit)
    status = QueueStatus(snapshot=snapshot)
    with store.begin() as conn:
        counts: dict[str, int] = dict(
            conn.execute(select(message.c.status, func.count()).group_by(message.c.status)).all()
        )
        status.messages = {s.value: int(counts.get(s.value, 0)) for s in MessageStatus}
        counts = dict(conn.execute(select(line.c.status, func.count()).group_by(line.c.status)).all())
        status.lines = {s.value: int(counts.get(s.value, 0)) for s in RecordStatus}
        records: dict[str, dict[str, int]] = {}
        for row in conn.execute(select(line.c.infno, line.c.status, func.count().label("n"))
                                .group_by(line.c.infno, line.c.status)).all():
            records.setdefault(row.infno, {})[row.status] = int(row.n)
        messages: dict[str, dict[str, int]] = {}
        for row in conn.execute(select(message.c.infno, message.c.status, func.count().label("n"))
                                .group_by(message.c.infno, message.c.status)).all():
            messages.setdefault(row.infno, {})[row.status] = int(row.n)
        status.transactions = _transactions(snapshot, edition, records, messages)
        oldest: datetime | None = conn.execute(
            select(func.min(message.c.created_at)).where(
                message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES])
            )
        ).scalar()
        oldest_line: datetime | None = conn.execute(
            select(func.min(line.c.created_at)).where(
                line.c.status.in_([RecordStatus.NEW.value, RecordStatus.READY.value])
            )
        ).scalar()
        candidates = [t for t in (oldest, oldest_line) if t is not None]
        if candidates:
            first = min(candidates)
            status.oldest_unsent_created_at = first
            status.oldest_unsent_age_seconds = round((utcnow() - first).total_seconds(), 1)
        status.last_successful_upload = conn.execute(select(func.max(message.c.acked_at))).scalar()
        status.watermarks = {
            row.source: row.value for row in conn.execute(select(schema.watermark)).all()
            if not row.source.startswith(LOOK_PREFIX)
        }
        status.parked_reasons = [
            {"infno": p.infno, "kind": p.kind, "reason": p.reason, "lines": p.records} for p in snapshot.parked_reasons
        ]
        rows = conn.execute(
            select(message.c.id, message.c.infno, message.c.attempts, message.c.next_attempt_at, message.c.last_error)
            .where(message.c.status == MessageStatus.RETRY_WAIT.value)
            .order_by(message.c.id)
            .limit(reasons_limit)
        ).all()
        status.retry_errors = [
            {"message_id": row.id, "infno": row.infno, "attempts": row.attempts,
             "next_attempt_at": row.next_attempt_at, "last_error": row.last_error}
            for row in rows
        ]
        unknown = conn.execute(
            select(message.c.id, message.c.infno, message.c.created_at, message.c.attempts,
                   message.c.next_attempt_at, message.c.last_error)
            .where(message.c.status == MessageStatus.UNKNOWN.value)
            .order_by(message.c.id)
            .limit(reasons_limit)
        ).all()
        status.unknown = [
            {
                "message_id": row.id,
                "infno": row.infno,
                "age_seconds": (utcnow() - row.created_at).total_seconds(),
                "attempts": row.attempts,
                "next_attempt_at": row.next_attempt_at,
                "last_error": row.last_error,
            }
            for row in unknown
        ]
    status.progress = work_in_progress(store, stale_after)
    return status


def progress_stale_after(settings: Settings) -> float:
    """How long a progress row may go unwritten before its work looks stopped."""
    return max(STALE_PROGRESS_SECONDS, 3 * settings.progress.every_seconds)


def work_in_progress(store: StateStore, stale_after: float = STALE_PROGRESS_SECONDS) -> list[dict[str, Any]]:
    """The unfinished progress rows, each with its words (``extract 2301: 120,000 of ~1,000,000
    rows, ...``), how long since it was written and whether that is too long (``stale``)."""
    now = utcnow()
    found = []
    for row in read_progress(store):
        silent = max(0.0, (now - row.updated_at).total_seconds())
        found.append({**row.as_dict(), "label": row.label, "text": describe(row), "silent_seconds": round(silent, 1),
                      "stale": silent > stale_after})
    return found


def _transactions(snapshot: Snapshot, edition: Edition | None, records: dict[str, dict[str, int]],
                  messages: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    found = []
    for infno in sorted(set(snapshot.transactions) | set(records) | set(messages)):
        facts = snapshot.transactions.get(infno)
        by_state = records.get(infno, {})
        head = facts.head if facts is not None else None
        found.append({
            "infno": infno,
            "name": facts.name if facts is not None else _transaction_name(edition, infno),
            "records": sum(by_state.values()),
            "by_status": by_state,
            "messages": messages.get(infno, {}),
            "oldest_unsent_at": facts.oldest_unsent_at if facts is not None else None,
            "head": None if head is None else {"message_id": head.message_id, "status": head.status,
                                               "created_at": head.created_at, "attempts": head.attempts},
            "last_upload_at": facts.last_upload_at if facts is not None else None,
        })
    return found


def _transaction_name(edition: Edition | None, infno: str) -> str:
    table = edition.transactions.get(infno) if edition is not None else None
    return table.name if table is not None else ""


def unsent_count(store: StateStore) -> int:
    """Work still to do: unsent messages, plus records not yet in a message."""
    waiting = [RecordStatus.NEW.value, RecordStatus.READY.value]
    with store.begin() as conn:
        messages = conn.execute(
            select(func.count()).where(
                schema.message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES])
            )
        ).scalar_one()
        records = conn.execute(
            select(func.count()).where(schema.record.c.status.in_(waiting))
        ).scalar_one()
    return int(messages) + int(records)


# -- what needs a person ---------------------------------------------------------------------
@dataclass(frozen=True)
class Look:
    """When ``status`` (or ``run --once``) last looked, kept in the state store."""

    at: datetime
    #: when the oldest record still unchecked at that look was read (``at`` when none waited)
    unchecked_since: datetime

    def text(self) -> str:
        return f"{self.at.isoformat()}|{self.unchecked_since.isoformat()}"

    @classmethod
    def parse(cls, text: str) -> Look | None:
        try:
            at, unchecked = text.split("|")
            return cls(datetime.fromisoformat(at), datetime.fromisoformat(unchecked))
        except ValueError:
            return None  # never written by this version: as if never looked


@dataclass
class Attention:
    """What needs a person now, each in words; nothing: all is well."""

    reasons: list[str] = field(default_factory=list)
    #: records parked since the last look: infno, kind, records
    new_parked: list[dict[str, Any]] = field(default_factory=list)
    #: the look before this one (None: never looked)
    last_look: datetime | None = None

    @property
    def needed(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {"needed": self.needed, "reasons": self.reasons, "new_parked": self.new_parked,
                "last_look": local_iso(self.last_look)}


def needs_a_person(store: StateStore, settings: Settings, snapshot: Snapshot, looker: str,
                   errors: Iterable[str] = ()) -> Attention:
    """Whether something needs a person now: records parked since ``looker``'s last look (a
    person parked by hand are not news), a queue's head stuck ``[monitor] stuck_minutes``,
    signing in failing, and ``errors`` (of the cycle just run). This is a look: the next one
    reports only what is parked after it."""
    with store.begin() as conn:
        previous = Look.parse(read_watermark(conn, LOOK_PREFIX + looker, ""))
        now = utcnow()
        attention = Attention(new_parked=_parked_since(conn, previous), last_look=previous.at if previous else None)
        unchecked = conn.execute(select(func.min(schema.record.c.created_at)).where(
            schema.record.c.status == RecordStatus.NEW.value,
            schema.record.c.infno.in_(list(settings.his.transactions)))).scalar()
        save_watermark(conn, LOOK_PREFIX + looker, Look(now, min(unchecked or now, now)).text())
    parked = sum(item["records"] for item in attention.new_parked)
    if parked:
        since = f"since the last look ({local_time(previous.at)})" if previous else "(never looked before)"
        attention.reasons.append(
            f"{parked} record(s) parked {since}: "
            + ", ".join(f"{item['infno']} {item['kind']} {item['records']}" for item in attention.new_parked)
            + " (`spool list --records --state parked`)")
    for infno, head in stuck_heads(snapshot, settings):
        attention.reasons.append(
            f"queue {infno} is stuck: message {head.message_id} unsent for "
            f"{age_text(head.age_seconds(snapshot.taken_at))} after {head.attempts} attempt(s)"
            + (f": {head.last_error}" if head.last_error else "")
            + f" (`spool show {head.message_id}`)")
    problem = snapshot.centre.sign_in_problem
    if problem is not None:
        attention.reasons.append(
            ("signing in fails: the gateway refuses our credentials (HTTP 401), check [centre.credentials]"
             if problem.credentials_refused else "signing in fails: the centre refuses 9001")
            + (f": {problem.err_msg}" if problem.err_msg else ""))
    attention.reasons += [f"the cycle failed: {error}" for error in errors]
    return attention


def _parked_since(conn: Connection, previous: Look | None) -> list[dict[str, Any]]:
    """Records parked since the look, by transaction and kind. The check stage writes a record
    parked for a missing mapping again at every cycle (it tries it again), so such a record is
    news only when it was still unchecked at that look or read from the HIS after it."""
    record = schema.record
    query = select(record.c.infno, record.c.park_kind, func.count().label("n")).where(
        record.c.status == RecordStatus.PARKED.value,
        or_(record.c.park_kind.is_(None), record.c.park_kind != ParkKind.HELD.value))
    if previous is not None:
        query = query.where(record.c.updated_at > previous.at, or_(
            record.c.park_kind.is_(None), record.c.park_kind != ParkKind.UNMAPPED.value,
            and_(record.c.park_kind == ParkKind.UNMAPPED.value, record.c.created_at >= previous.unchecked_since)))
    rows = conn.execute(query.group_by(record.c.infno, record.c.park_kind)
                        .order_by(record.c.infno, record.c.park_kind)).all()
    return [{"infno": row.infno, "kind": row.park_kind or "?", "records": int(row.n)} for row in rows]
