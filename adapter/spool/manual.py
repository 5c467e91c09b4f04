"""What a person does to the spool by hand: park a message or record so it is not sent, let
parked ones go again (retry), and delete what the centre acknowledged long ago (purge). Each
change is written with its audit row in one transaction (:mod:`adapter.spool.audit`), and each
update names the state it expects, so a daemon working on the same spool meanwhile is never
overruled: an item it took in between is refused with the reason.

Parking is never a guess about the centre. A message not yet answered (pending, waiting to
retry) is held with its records, which then count as never uploaded (a cancel of one closes
both here). A message whose outcome is unknown may be at the centre: it stops being asked
about, but its records stay queued in it (a cancel waits for them, nothing is withdrawn), and
``retry`` makes it unknown again, to be asked about as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, delete, exists, func, select, true, update

from adapter.spool import audit
from adapter.spool.audit import Action
from adapter.spool.states import UNSENT_MESSAGE_STATES, MessageStatus, ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow

_message, _record, _attempt = schema.message, schema.record, schema.attempt
#: acknowledged messages deleted per transaction by a purge (a daemon sharing the database
#: waits at most one batch)
PURGE_BATCH = 500
#: how a held record comes back: through the checks again, which build its input afresh
_HELD_BACK = RecordStatus.NEW


@dataclass(frozen=True)
class Parked:
    #: records held back
    records: int
    #: what a person should know besides (e.g. the later messages of the visit no longer wait)
    notes: tuple[str, ...] = ()


@dataclass
class Retried:
    #: records requeued: rejected ones ready to be sent again, held ones to be checked again
    requeued: int = 0
    #: messages held while their outcome was unknown, to be asked about again
    asked_again: int = 0
    #: why something named could not be retried
    notes: list[str] = field(default_factory=list)

    @property
    def result(self) -> str:
        text = f"{self.requeued} record(s) requeued"
        if self.asked_again:
            text += f", {self.asked_again} message(s) whose outcome is unknown asked about again"
        return text


@dataclass(frozen=True)
class Purged:
    messages: int
    records: int
    attempts: int

    @property
    def result(self) -> str:
        return f"{self.messages} message(s), {self.records} record(s), {self.attempts} attempt(s) deleted"


class InsideRetention(ValueError):
    """A purge would delete what the region's record-keeping rules keep."""

    def __init__(self, before: datetime, latest: datetime, keep: timedelta) -> None:
        self.before, self.latest, self.keep = before, latest, keep
        super().__init__(f"what was acknowledged after {latest:%Y-%m-%d %H:%M} UTC is kept for "
                         f"{keep.days} days (the region's minimum retention)")


def _held_note(who: str, reason: str, now: datetime) -> str:
    return f"parked by hand by {who} at {now:%Y-%m-%d %H:%M:%S} UTC: {reason}"


# -- park ------------------------------------------------------------------------------------
def park_message(store: StateStore, message_id: int, reason: str, who: str | None = None) -> Parked:
    """Hold a pending, retry-waiting or unknown message back (see the module docstring).
    LookupError when it is not there or not in a state a person may park."""
    who = who or audit.current_user()
    now = utcnow()
    note = _held_note(who, reason, now)
    with store.begin() as conn:
        row = conn.execute(select(_message.c.status, _message.c.group_key, _message.c.lease_until)
                           .where(_message.c.id == message_id)).first()
        if row is None:
            raise LookupError(f"message {message_id} is not in the spool")
        status = row.status
        if status == MessageStatus.UNKNOWN.value and row.lease_until is not None and row.lease_until > now:
            raise LookupError(f"message {message_id} is being asked about at the centre right now: "
                              "park it once the inquiry is over (a minute or two)")
        if status in (MessageStatus.PENDING.value, MessageStatus.RETRY_WAIT.value):
            last_error = note
        elif status == MessageStatus.UNKNOWN.value:
            last_error = (f"{note} (its outcome was unknown: the centre may hold it; its records stay queued "
                          f"in it, and `spool retry {message_id}` asks the centre again)")
        else:
            raise LookupError(f"message {message_id} {_why_not_parked(status)}")
        changed = conn.execute(update(_message).where(_message.c.id == message_id, _message.c.status == status)
                               .values(status=MessageStatus.PARKED.value, last_error=last_error, lease_until=None))
        if not changed.rowcount:
            raise LookupError(f"message {message_id} changed while it was parked (the daemon took it): look again")
        notes: list[str] = []
        if status == MessageStatus.UNKNOWN.value:
            carried = int(conn.execute(select(func.count()).select_from(_record)
                                       .where(_record.c.message_id == message_id)).scalar_one())
            records, result = 0, f"was unknown; its {carried} record(s) stay queued in it"
            notes.append(f"its outcome is unknown: its {carried} record(s) stay queued in it (the centre may hold "
                         "them), and it is no longer asked about")
        else:
            records = int(conn.execute(
                update(_record).where(_record.c.message_id == message_id,
                                      _record.c.status == RecordStatus.QUEUED.value)
                .values(status=RecordStatus.PARKED.value, park_kind=ParkKind.HELD.value, park_reason=note,
                        updated_at=now)).rowcount or 0)
            result = f"was {status}; {records} record(s) held"
        later = int(conn.execute(select(func.count()).select_from(_message).where(
            _message.c.group_key == row.group_key, _message.c.id > message_id,
            _message.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES]))).scalar_one())
        audit.write(conn, Action.PARK, f"message {message_id}", reason=reason, who=who, result=result)
    if later:
        notes.append(f"{later} later message(s) of its group {row.group_key} no longer wait behind it")
    return Parked(records, tuple(notes))


def _why_not_parked(status: str) -> str:
    return {
        MessageStatus.IN_FLIGHT.value: "is being sent right now: park it once the send is over",
        MessageStatus.ACKED.value: "was acknowledged: the centre holds it (cancel it in the HIS instead)",
        MessageStatus.PARKED.value: "is parked already",
    }.get(status, f"is {status}")


def park_record(store: StateStore, record_id: int, reason: str, who: str | None = None) -> Parked:
    """Hold a record that is not in a message yet (new or ready) back. LookupError otherwise."""
    who = who or audit.current_user()
    now = utcnow()
    note = _held_note(who, reason, now)
    with store.begin() as conn:
        row = conn.execute(select(_record.c.status, _record.c.park_kind, _record.c.message_id)
                           .where(_record.c.id == record_id)).first()
        if row is None:
            raise LookupError(f"record {record_id} is not in the spool")
        if row.status == RecordStatus.QUEUED.value:
            raise LookupError(f"record {record_id} is in message {row.message_id}: park the message "
                              f"(`spool park {row.message_id} --reason …`)")
        if row.status not in (RecordStatus.NEW.value, RecordStatus.READY.value):
            why = {RecordStatus.SENT.value: "was acknowledged: the centre holds it",
                   RecordStatus.PARKED.value: f"is parked already ({row.park_kind})",
                   RecordStatus.WITHDRAWN.value: "was withdrawn: nothing is sent for it"}.get(row.status, row.status)
            raise LookupError(f"record {record_id} {why}")
        changed = conn.execute(update(_record).where(_record.c.id == record_id, _record.c.status == row.status)
                               .values(status=RecordStatus.PARKED.value, park_kind=ParkKind.HELD.value,
                                       park_reason=note, updated_at=now))
        if not changed.rowcount:
            raise LookupError(f"record {record_id} changed while it was parked (the daemon took it): look again")
        audit.write(conn, Action.PARK, f"record {record_id}", reason=reason, who=who, result=f"was {row.status}")
    return Parked(1)


# -- retry -----------------------------------------------------------------------------------
def _requeue(conn: Connection, where: ColumnElement[bool], now: datetime) -> int:
    """Parked records the centre rejected become ready (sent again in a new message); those a
    person held go through the checks again."""
    parked = _record.c.status == RecordStatus.PARKED.value
    rejected = conn.execute(update(_record).where(where, parked, _record.c.park_kind == ParkKind.REJECTED.value)
                            .values(status=RecordStatus.READY.value, park_kind=None, park_reason=None,
                                    message_id=None, updated_at=now))
    held = conn.execute(update(_record).where(where, parked, _record.c.park_kind == ParkKind.HELD.value)
                        .values(status=_HELD_BACK.value, park_kind=None, park_reason=None, message_id=None,
                                updated_at=now))
    return int(rejected.rowcount or 0) + int(held.rowcount or 0)


def _held_unknown() -> ColumnElement[bool]:
    """A parked message whose records are still queued in it: held while its outcome was unknown."""
    return and_(_message.c.status == MessageStatus.PARKED.value,
                exists().where(_record.c.message_id == _message.c.id, _record.c.status == RecordStatus.QUEUED.value))


def _ask_again(conn: Connection, where: ColumnElement[bool], who: str, now: datetime) -> int:
    result = conn.execute(update(_message).where(where, _held_unknown()).values(
        status=MessageStatus.UNKNOWN.value, next_attempt_at=now, lease_until=None,
        last_error=f"let go by hand by {who} at {now:%Y-%m-%d %H:%M:%S} UTC: outcome unknown, asked about again"))
    return int(result.rowcount or 0)


def retry_message(store: StateStore, message_id: int, reason: str = "", who: str | None = None) -> Retried:
    """The parked records of a message go again (rejected: sent again; held: checked again); a
    message held while its outcome was unknown is asked about again. LookupError when there is
    no such message."""
    who = who or audit.current_user()
    now = utcnow()
    done = Retried()
    with store.begin() as conn:
        status = conn.execute(select(_message.c.status).where(_message.c.id == message_id)).scalar()
        if status is None:
            raise LookupError(f"message {message_id} is not in the spool")
        done.asked_again = _ask_again(conn, _message.c.id == message_id, who, now)
        if not done.asked_again:
            done.requeued = _requeue(conn, _record.c.message_id == message_id, now)
        if not (done.asked_again or done.requeued):
            done.notes.append(f"message {message_id} is {status}: it carries no parked record to retry")
        audit.write(conn, Action.RETRY, f"message {message_id}", reason=reason, who=who, result=done.result)
    return done


def retry_record(store: StateStore, record_id: int, reason: str = "", who: str | None = None) -> Retried:
    """One parked record goes again; LookupError when it is not one that ``retry`` lets go."""
    who = who or audit.current_user()
    now = utcnow()
    done = Retried()
    with store.begin() as conn:
        row = conn.execute(select(_record.c.status, _record.c.park_kind, _record.c.message_id)
                           .where(_record.c.id == record_id)).first()
        if row is None:
            raise LookupError(f"record {record_id} is not in the spool")
        if row.status == RecordStatus.QUEUED.value:
            raise LookupError(f"record {record_id} is queued in message {row.message_id}"
                              + (f": retry the message (`spool retry {row.message_id}`)" if row.message_id else ""))
        if row.status != RecordStatus.PARKED.value:
            raise LookupError(f"record {record_id} is {row.status}, not parked")
        if row.park_kind not in (ParkKind.REJECTED.value, ParkKind.HELD.value):
            raise LookupError(f"record {record_id} is parked {row.park_kind}: " + (
                "it is tried again at every cycle once its mapping is imported (`mapping unmapped`)"
                if row.park_kind == ParkKind.UNMAPPED.value
                else f"fix its row in the HIS, then `spool recheck {record_id}`"))
        done.requeued = _requeue(conn, _record.c.id == record_id, now)
        audit.write(conn, Action.RETRY, f"record {record_id}", reason=reason, who=who, result=done.result)
    return done


def retry_parked(store: StateStore, infno: str | None = None, reason: str = "", who: str | None = None) -> Retried:
    """Every parked record ``retry`` lets go (rejected by the centre, held by a person), of
    ``infno`` if given, and every message held while its outcome was unknown."""
    who = who or audit.current_user()
    now = utcnow()
    done = Retried()
    records: ColumnElement[bool] = true() if infno is None else _record.c.infno == infno
    messages: ColumnElement[bool] = true() if infno is None else _message.c.infno == infno
    with store.begin() as conn:
        done.asked_again = _ask_again(conn, messages, who, now)
        done.requeued = _requeue(conn, records, now)
        audit.write(conn, Action.RETRY, "every parked record" + (f" of {infno}" if infno else ""), reason=reason,
                    who=who, result=done.result)
    return done


# -- purge -----------------------------------------------------------------------------------
def purge(store: StateStore, before: datetime, *, keep: timedelta, label: str, reason: str = "",
          who: str | None = None, dry_run: bool = False, now: datetime | None = None) -> Purged:
    """Delete the messages the centre acknowledged before ``before`` (naive UTC), their attempts
    and records, and the sign-in attempts of that time; refused (InsideRetention) when
    ``before`` is later than ``keep`` ago. In batches, each its own transaction: a purge can be
    stopped and run again, and the daemon goes on meanwhile; the audit row (target ``label``)
    says how far it got. ``dry_run``: count only, change nothing."""
    latest = (now or utcnow()) - keep
    if before > latest:
        raise InsideRetention(before, latest, keep)
    due = and_(_message.c.status == MessageStatus.ACKED.value, _message.c.acked_at < before)
    sign_ins = and_(_attempt.c.message_id.is_(None), _attempt.c.started_at < before)
    if dry_run:
        with store.begin() as conn:
            return _counted(conn, due, sign_ins)
    who = who or audit.current_user()
    entry: int | None = None
    totals = [0, 0, 0]
    while True:
        with store.begin() as conn:
            ids = list(conn.execute(select(_message.c.id).where(due).order_by(_message.c.id)
                                    .limit(PURGE_BATCH)).scalars())
            if entry is None:
                entry = audit.write(conn, Action.PURGE, label, reason=reason, who=who, result="started")
            if not ids:
                totals[2] += int(conn.execute(delete(_attempt).where(sign_ins)).rowcount or 0)
                done = Purged(*totals)
                audit.finish(conn, entry, done.result)
                return done
            for chunk in in_chunks(ids):
                totals[2] += int(conn.execute(delete(_attempt).where(_attempt.c.message_id.in_(chunk))).rowcount or 0)
                totals[1] += int(conn.execute(delete(_record).where(_record.c.message_id.in_(chunk))).rowcount or 0)
                totals[0] += int(conn.execute(delete(_message).where(_message.c.id.in_(chunk))).rowcount or 0)
            audit.finish(conn, entry, Purged(*totals).result + " so far")


def _counted(conn: Connection, due: ColumnElement[bool], sign_ins: ColumnElement[bool]) -> Purged:
    ids = select(_message.c.id).where(due).scalar_subquery()

    def count(table: Any, where: ColumnElement[bool]) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

    return Purged(count(_message, due), count(_record, _record.c.message_id.in_(ids)),
                  count(_attempt, _attempt.c.message_id.in_(ids)) + count(_attempt, sign_ins))
