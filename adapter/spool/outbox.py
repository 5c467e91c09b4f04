"""The outbox: create, claim and settle spooled messages.

Messages of one group (one visit) leave strictly in order: a message is due only when no
earlier message of its group is still unsent, so a refund never overtakes its original line.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Exists, and_, bindparam, delete, exists, func, insert, or_, select, true, update
from sqlalchemy.orm import aliased

from adapter import jsonio
from adapter.errors import TakenElsewhere
from adapter.outbound.attempts import AttemptFinish, finish_attempt
from adapter.spool.states import UNSENT_MESSAGE_STATES, MessageStatus, ParkKind, RecordStatus
from adapter.spool.visits import store_visit
from adapter.state import schema
from adapter.state.store import StateStore, unindexed, utcnow

logger = logging.getLogger(__name__)

_message = schema.message
_record = schema.record


@dataclass(frozen=True)
class SpooledMessage:
    id: int
    infno: str
    group_key: str
    insuplc_admdvs: str | None
    payload: dict[str, Any]
    attempts: int
    last_msgid: str | None = None
    #: the lease this worker's claim wrote: renewing it only while it is still this one shows
    #: the message was not reclaimed (and claimed again) by another worker meanwhile
    lease_until: datetime | None = None


def spool_message(
    conn: Any,
    *,
    infno: str,
    group_key: str,
    payload: dict[str, Any],
    record_ids: Sequence[int],
    insuplc_admdvs: str | None = None,
) -> int:
    """Commit a message and tie its records to it (inside the caller's transaction)."""
    now = utcnow()
    message_id = conn.execute(_NEW_MESSAGE, {
        "infno": infno, "status": MessageStatus.PENDING.value, "group_key": group_key,
        "insuplc_admdvs": insuplc_admdvs, "payload": jsonio.dumps(payload), "line_count": len(record_ids),
        "attempts": 0, "next_attempt_at": now, "created_at": now,
    }).scalar_one()
    # Only records still waiting: two daemons sharing a database may both have read them
    # READY. The second one's update finds them taken and its message is rolled back.
    taken = conn.execute(_TAKE_RECORDS, {"b_ids": list(record_ids), "b_message_id": message_id, "b_now": now})
    if int(taken.rowcount or 0) != len(record_ids):
        raise TakenElsewhere(f"records of this {infno} message were put in another message meanwhile")
    return int(message_id)


# The two statements of spool_message, built once with their values as parameters: built per
# message, SQLAlchemy's statement construction and cache key cost more than the statements.
_NEW_MESSAGE = insert(_message).returning(_message.c.id)
_TAKE_RECORDS = (
    update(_record)
    .where(_record.c.id.in_(bindparam("b_ids", expanding=True)),
           unindexed(_record.c.status) == RecordStatus.READY.value, _record.c.message_id.is_(None))
    .values(status=RecordStatus.QUEUED.value, message_id=bindparam("b_message_id"), updated_at=bindparam("b_now"))
)


def _blocked_by_earlier() -> Exists:
    """Whether an earlier message of the same group is still unsent: a group's messages go one
    after another, so a later one is not due before the one ahead of it is answered."""
    earlier = aliased(_message)
    return exists().where(
        and_(
            earlier.c.group_key == _message.c.group_key,
            earlier.c.id < _message.c.id,
            earlier.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES]),
        )
    )


def claim_due(
    store: StateStore, limit: int, lease: timedelta, due_by: datetime | None = None
) -> list[SpooledMessage]:
    """Mark up to ``limit`` messages due by ``due_by`` (default now) in flight; oldest first."""
    now = utcnow()
    with store.begin() as conn:
        rows = conn.execute(_due_statement(skip_locked=store.supports_skip_locked),
                            {"due_by": due_by or now, "limit": limit}).all()
        if not rows:
            return []
        conn.execute(_TAKE, {"ids": [row.id for row in rows], "lease_until": now + lease})
    return [_spooled(row, lease_until=now + lease) for row in rows]


@cache
def _due_statement(*, skip_locked: bool) -> Any:
    """The oldest messages due (``due_by``, ``limit``), built once: a claim is made for every
    few messages sent."""
    query = (
        select(_message)
        .where(_message.c.status.in_([MessageStatus.PENDING.value, MessageStatus.RETRY_WAIT.value]))
        .where(or_(_message.c.next_attempt_at.is_(None), _message.c.next_attempt_at <= bindparam("due_by")))
        .where(~_blocked_by_earlier())
        .order_by(_message.c.id)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=True, of=_message) if skip_locked else query


_TAKE = (update(_message).where(_message.c.id.in_(bindparam("ids", expanding=True)))
         .values(status=MessageStatus.IN_FLIGHT.value, lease_until=bindparam("lease_until")))


def renew_lease(store: StateStore, message_id: int, lease: timedelta, status: MessageStatus,
                held_until: datetime | None = None) -> bool:
    """Extend the lease of a claimed message just before working on it: a batch is claimed at
    once but worked one by one, and another daemon must not reclaim the last of it while the
    first are still being sent. False: the message is no longer ``status`` (reclaimed), or,
    with ``held_until`` (the lease this worker's claim wrote), no longer under that lease: its
    lease ran out and another worker claimed it again, so it is that worker's to send."""
    owned = _message.c.lease_until == held_until if held_until is not None else true()
    with store.begin() as conn:
        result = conn.execute(
            update(_message).where(_message.c.id == message_id, _message.c.status == status.value, owned)
            .values(lease_until=utcnow() + lease)
        )
    return int(result.rowcount or 0) == 1


def _spooled(row: Any, lease_until: datetime | None = None) -> SpooledMessage:
    return SpooledMessage(
        row.id, row.infno, row.group_key, row.insuplc_admdvs, jsonio.loads(row.payload),
        row.attempts, row.last_msgid, lease_until,
    )


def _owned(result: Any, message_id: int, expect: MessageStatus | None) -> None:
    """A result is written only while the message is still in the state its worker left it
    in: one whose lease ran out may have been reclaimed (and settled) by another worker, and a
    late result must not overwrite that (raised inside the transaction: it is rolled back)."""
    if expect is not None and not int(result.rowcount or 0):
        raise TakenElsewhere(f"message {message_id} is no longer {expect.value}: another worker reclaimed it")


def _expected(message_id: int, expect: MessageStatus | None) -> Any:
    condition = _message.c.id == message_id
    return condition if expect is None else and_(condition, _message.c.status == expect.value)


def mark_acked(
    store: StateStore, message_id: int, inf_refmsgid: str, note: str | None = None, *,
    expect: MessageStatus | None = None, visit: tuple[str, str, str] | None = None,
    finish: AttemptFinish | None = None,
) -> int:
    """The centre accepted the message: it and its lines are done. Returns lines acked.

    ``note`` says how it was known when no reply said so (an inquiry after a lost reply).
    ``visit`` (group key, mdtrt_id, msgid): the registration's mdtrt_id, stored in the same
    transaction so the message is never acked without it. ``expect``: see :func:`_owned`.
    ``finish``: the answered attempt's row, written in the same transaction.
    """
    now = utcnow()
    with store.begin() as conn:
        if finish is not None:
            finish_attempt(conn, finish)
        _owned(_ack(conn, message_id, inf_refmsgid, note, expect, now), message_id, expect)
        if visit is not None:
            store_visit(conn, *visit)
        return _records_sent(conn, message_id, now)


@dataclass(frozen=True)
class Ack:
    """One message the centre accepted, for :func:`mark_acked_together`."""

    message_id: int
    inf_refmsgid: str
    #: the answered attempt's row, written in the ack's transaction
    finish: AttemptFinish | None = None


def mark_acked_together(store: StateStore, acks: Sequence[Ack]) -> list[int | None]:
    """:func:`mark_acked` of several messages still in flight, in one transaction: the messages
    a send pass sent one after another (or at once) share one commit, and so one fsync,
    instead of one each. Returns the lines acked of each, or None for a message another
    worker reclaimed meanwhile (its ack is not written; its attempt's row still is, as the
    attempt was answered).

    A crash before the commit leaves every one of them in flight without its ack (and its
    attempt unfinished, or finished "ok"): :func:`recover_in_flight` makes each unknown, asked
    about before anything is sent again, as it does a single lost ack."""
    now = utcnow()
    acked: dict[int, int | None] = {}
    with store.begin() as conn:
        # In the order of their ids, as a claim takes them: two transactions that lock several
        # message rows each lock them in one order (on PostgreSQL, no deadlock between them).
        for ack in sorted(acks, key=lambda a: a.message_id):
            if ack.finish is not None:
                finish_attempt(conn, ack.finish)
            result = _ack(conn, ack.message_id, ack.inf_refmsgid, None, MessageStatus.IN_FLIGHT, now)
            acked[ack.message_id] = _records_sent(conn, ack.message_id, now) if result.rowcount else None
    return [acked[ack.message_id] for ack in acks]


def _ack(conn: Any, message_id: int, inf_refmsgid: str, note: str | None, expect: MessageStatus | None,
         now: datetime) -> Any:
    """The message acked (inside the caller's transaction), while it is still in the state
    ``expect`` if given: the result's rowcount is 0 once another worker reclaimed it."""
    return conn.execute(_ack_statement(expecting=expect is not None, counted=not note), {
        "b_id": message_id, "b_status": None if expect is None else expect.value,
        "acked_at": now, "inf_refmsgid": inf_refmsgid, "last_error": note,
    })


def _records_sent(conn: Any, message_id: int, now: datetime) -> int:
    """The acked message's records marked sent; returns how many."""
    return int(conn.execute(_RECORDS_SENT, {"b_message_id": message_id, "updated_at": now}).rowcount or 0)


@cache
def _ack_statement(*, expecting: bool, counted: bool) -> Any:
    """The ack of one message, built once per kind (an ack is written for every message sent,
    and building the statement each time cost several times what running it does).
    ``expecting``: only while the message is still in the state ``b_status`` (see
    :func:`_owned`); ``counted``: the ack answers an attempt (one known from an inquiry does not)."""
    condition = _message.c.id == bindparam("b_id")
    if expecting:
        condition = and_(condition, _message.c.status == bindparam("b_status"))
    return update(_message).where(condition).values(
        status=MessageStatus.ACKED.value, acked_at=bindparam("acked_at"), inf_refmsgid=bindparam("inf_refmsgid"),
        attempts=_message.c.attempts + 1 if counted else _message.c.attempts, last_error=bindparam("last_error"),
        lease_until=None,
    )


_RECORDS_SENT = (update(_record).where(_record.c.message_id == bindparam("b_message_id"))
                 .values(status=RecordStatus.SENT.value, updated_at=bindparam("updated_at")))


def record_finish(store: StateStore, finish: AttemptFinish) -> None:
    """Write an attempt's result on its own (when it is not written with an ack)."""
    with store.begin() as conn:
        finish_attempt(conn, finish)


def mark_retry(
    store: StateStore, message_id: int, error: str, delay_seconds: float, *, expect: MessageStatus | None = None
) -> datetime:
    """A transient failure: store the error and when to try again (survives a restart)."""
    next_at = utcnow() + timedelta(seconds=delay_seconds)
    with store.begin() as conn:
        _owned(_retry(conn, message_id, error, next_at, expect), message_id, expect)
    return next_at


def _retry(conn: Any, message_id: int, error: str, next_at: datetime, expect: MessageStatus | None) -> Any:
    """The message waiting to be sent again at ``next_at`` (inside the caller's transaction)."""
    return conn.execute(
        update(_message)
        .where(_expected(message_id, expect))
        .values(
            status=MessageStatus.RETRY_WAIT.value,
            attempts=_message.c.attempts + 1,
            last_error=error,
            next_attempt_at=next_at,
            lease_until=None,
        )
    )


def mark_unknown(
    store: StateStore, message_id: int, error: str, msgid: str = "", *, expect: MessageStatus | None = None,
    inquire_after: float = 0.0,
) -> None:
    """Sent without an answer that can be trusted: nothing is resent until :func:`claim_unknown`
    finds out, no sooner than ``inquire_after`` seconds from now (see :data:`INQUIRY_GRACE`).
    ``msgid``: an attempt answered in a way not trusted (recorded as unknown)."""
    with store.begin() as conn:
        if msgid:
            conn.execute(
                update(schema.attempt).where(schema.attempt.c.msgid == msgid).values(outcome="unknown", err_msg=error)
            )
        result = conn.execute(
            update(_message)
            .where(_expected(message_id, expect))
            .values(
                status=MessageStatus.UNKNOWN.value,
                attempts=_message.c.attempts + 1,
                last_error=error,
                next_attempt_at=utcnow() + timedelta(seconds=inquire_after),
                lease_until=None,
            )
        )
        _owned(result, message_id, expect)


def claim_unknown(store: StateStore, limit: int, lease: timedelta) -> list[SpooledMessage]:
    """Lease messages whose outcome is unknown, to find it out. They stay UNKNOWN meanwhile,
    so a crash during the inquiry leaves them unknown (never resent blindly)."""
    now = utcnow()
    query = (
        select(_message)
        .where(_message.c.status == MessageStatus.UNKNOWN.value)
        .where(or_(_message.c.lease_until.is_(None), _message.c.lease_until < now))
        .where(or_(_message.c.next_attempt_at.is_(None), _message.c.next_attempt_at <= now))
        .order_by(_message.c.id)
        .limit(limit)
    )
    if store.supports_skip_locked:
        query = query.with_for_update(skip_locked=True, of=_message)
    with store.begin() as conn:
        rows = conn.execute(query).all()
        if rows:
            conn.execute(
                update(_message)
                .where(_message.c.id.in_([row.id for row in rows]))
                .values(lease_until=now + lease, next_attempt_at=now + lease)
            )
    return [_spooled(row) for row in rows]


@dataclass(frozen=True)
class MessageRecord:
    """A record a message carries: its ledger id, business key and the input built from it."""

    id: int
    business_key: str
    payload: dict[str, Any]


def records_of(store: StateStore, message_id: int) -> list[MessageRecord]:
    """The records a message carries, in ledger order."""
    with store.begin() as conn:
        rows = conn.execute(
            select(_record.c.id, _record.c.business_key, _record.c.payload)
            .where(_record.c.message_id == message_id)
            .order_by(_record.c.id)
        ).all()
    return [MessageRecord(row.id, row.business_key, jsonio.loads(row.payload) if row.payload else {}) for row in rows]


def keep_unknown(
    store: StateStore, message_id: int, how: str, delay_seconds: float, *, expect: MessageStatus | None = None
) -> datetime:
    """An inquiry could not decide: the message stays unknown and is asked about again later
    (or settled by a person with ``spool resolve``)."""
    next_at = utcnow() + timedelta(seconds=delay_seconds)
    with store.begin() as conn:
        result = conn.execute(
            update(_message)
            .where(_expected(message_id, expect))
            .values(attempts=_message.c.attempts + 1, last_error=how, next_attempt_at=next_at, lease_until=None)
        )
        _owned(result, message_id, expect)
    return next_at


def _shared(message: SpooledMessage, infnos: frozenset[str]) -> Any:
    # Only delivered records count: later messages of the group wait behind this one.
    return and_(
        _record.c.group_key == message.group_key,
        _record.c.infno.in_(sorted(infnos)),
        _record.c.message_id != message.id,
        _record.c.status == RecordStatus.SENT.value,
    )


def shared_in_group(store: StateStore, message: SpooledMessage, infnos: frozenset[str]) -> int:
    """Records of ``infnos`` in the message's group that other messages delivered: what a
    batch-wide withdrawal takes away with the lost message."""
    if not infnos:
        return 0
    with store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(_record).where(_shared(message, infnos))).scalar_one())


def resend_unknown(store: StateStore, message: SpooledMessage, error: str, infnos: frozenset[str]) -> int:
    """A message whose reply was lost, found not held by the centre (or withdrawn, or
    reversed): it is due again now, and where a batch-wide withdrawal took the group's
    delivered records of ``infnos`` with it, those are READY again, to go out in new messages
    after it. One transaction for both: a crash between them
    would leave records the centre no longer holds marked sent, never to be sent again.
    Returns the records made READY."""
    now = utcnow()
    with store.begin() as conn:
        _owned(_retry(conn, message.id, error, now, MessageStatus.UNKNOWN), message.id, MessageStatus.UNKNOWN)
        if not infnos:
            return 0
        result = conn.execute(
            update(_record).where(_shared(message, infnos))
            .values(status=RecordStatus.READY.value, message_id=None, updated_at=now)
        )
        if result.rowcount:
            _take_back_later(conn, message.id, now)
    return int(result.rowcount or 0)


def _take_back_later(conn: Any, message_id: int, now: datetime) -> int:
    """Records requeued out of message ``message_id`` go out in a new message, which would be
    queued behind the group's later messages: a refund of one of those lines would reach the
    centre before the line and be refused. So the group's later messages that were never
    sent are taken apart too (their records READY again, the messages deleted: nothing of them
    left the adapter), and the next build spools all of it again in phase and ledger order.
    A later message cannot have been sent: it waited behind this one. Returns how many."""
    group_key = conn.execute(select(_message.c.group_key).where(_message.c.id == message_id)).scalar_one()
    later = [row.id for row in conn.execute(
        select(_message.c.id).where(
            _message.c.group_key == group_key,
            _message.c.id > message_id,
            _message.c.status == MessageStatus.PENDING.value,
            _message.c.attempts == 0,
            ~exists().where(schema.attempt.c.message_id == _message.c.id),
        )
    )]
    if later:
        conn.execute(update(_record).where(_record.c.message_id.in_(later))
                     .values(status=RecordStatus.READY.value, message_id=None, updated_at=now))
        conn.execute(delete(_message).where(_message.c.id.in_(later)))
        logger.info("message %d: %d later message(s) of its group taken apart to keep the group's order",
                    message_id, len(later), extra={"action": "requeue_in_order", "message_id": message_id})
    return len(later)


def had_lost_reply(store: StateStore, message_id: int) -> bool:
    """Whether an earlier attempt of the message may have reached the centre unanswered: one
    never finished, one whose answer was not trusted, or one answered well whose ack was never
    written (the daemon stopped between the two; the message is not acked, or this would not
    be asked). The same attempts make :func:`recover_in_flight` call a message unknown."""
    attempt = schema.attempt
    with store.begin() as conn:
        return conn.execute(
            select(attempt.c.msgid).where(
                attempt.c.message_id == message_id,
                or_(attempt.c.outcome.in_(["unknown", "ok"]), attempt.c.finished_at.is_(None)),
            ).limit(1)
        ).first() is not None


def bring_forward(store: StateStore) -> int:
    """The centre answers again: messages waiting out a transient failure are due now rather
    than at the end of their backoff (which may be an hour away after a long outage)."""
    now = utcnow()
    with store.begin() as conn:
        result = conn.execute(
            update(_message)
            .where(_message.c.status == MessageStatus.RETRY_WAIT.value, _message.c.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
    return int(result.rowcount or 0)


def hand_back(store: StateStore, message_id: int) -> None:
    """A claimed message that will not be sent now goes back unchanged (no attempt counted)."""
    with store.begin() as conn:
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id, _message.c.status == MessageStatus.IN_FLIGHT.value)
            .values(status=MessageStatus.RETRY_WAIT.value, lease_until=None)
        )


def park_rejected(
    store: StateStore, message_id: int, err_msg: str, blamed: Sequence[int], *, expect: MessageStatus | None = None
) -> tuple[int, int]:
    """A business rejection: park the records ``blamed`` (every record of the message when
    empty), send the others again in a new message. Returns (parked, requeued)."""
    now = utcnow()
    reason = f"centre rejected the upload: {err_msg}"
    with store.begin() as conn:
        _owned(conn.execute(update(_message).where(_expected(message_id, expect)).values(lease_until=None)),
               message_id, expect)
        ids = [row.id for row in conn.execute(select(_record.c.id).where(_record.c.message_id == message_id))]
        named = set(blamed) & set(ids) or set(ids)
        parked = [i for i in ids if i in named]
        innocent = [i for i in ids if i not in named]
        conn.execute(
            update(_record)
            .where(_record.c.id.in_(parked))
            .values(
                status=RecordStatus.PARKED.value,
                park_kind=ParkKind.REJECTED.value,
                park_reason=reason,
                updated_at=now,
            )
        )
        if innocent:
            conn.execute(
                update(_record)
                .where(_record.c.id.in_(innocent))
                .values(status=RecordStatus.READY.value, message_id=None, updated_at=now)
            )
        if innocent:
            _take_back_later(conn, message_id, now)
        note = f" ({len(innocent)} record(s) not named were requeued)" if innocent else ""
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id)
            .values(
                status=MessageStatus.PARKED.value,
                attempts=_message.c.attempts + 1,
                last_error=err_msg + note,
                lease_until=None,
            )
        )
    return len(parked), len(innocent)


def recover_in_flight(store: StateStore, *, only_expired: bool = False, inquire_after: float = 0.0) -> int:
    """Messages left in flight are due again (every one, or ``only_expired``: those whose lease
    ran out, e.g. after a failed state write or a worker that died; a live worker's lease is
    renewed before each message, so a daemon sharing the database never takes one it is
    sending). Returns how many.

    One whose last attempt never finished, or finished well but was not recorded as acked,
    may be at the centre: it becomes UNKNOWN and is asked about after ``inquire_after``
    seconds (the centre may still be working on the request nobody waits for any more).
    """
    attempt = schema.attempt
    unfinished = exists().where(
        and_(
            attempt.c.msgid == _message.c.last_msgid,
            or_(attempt.c.finished_at.is_(None), attempt.c.outcome.in_(["ok", "unknown"])),
        )
    )
    in_flight = _message.c.status == MessageStatus.IN_FLIGHT.value
    if only_expired:
        in_flight = and_(in_flight, _message.c.lease_until < utcnow())
    with store.begin() as conn:
        unknown = conn.execute(
            update(_message)
            .where(in_flight)
            .where(unfinished)
            .values(
                status=MessageStatus.UNKNOWN.value,
                next_attempt_at=utcnow() + timedelta(seconds=inquire_after),
                last_error="interrupted while waiting for the centre's reply; outcome unknown",
                lease_until=None,
            )
        )
        result = conn.execute(
            update(_message)
            .where(in_flight)
            .values(
                status=MessageStatus.RETRY_WAIT.value,
                next_attempt_at=utcnow(),
                last_error="recovered after an interrupted send; outcome of the last attempt unknown",
                lease_until=None,
            )
        )
    count = int(result.rowcount or 0) + int(unknown.rowcount or 0)
    if count:
        logger.warning(
            "recovered %d message(s) left in flight", count, extra={"action": "recover_in_flight"}
        )
    return count


def next_due_at(store: StateStore) -> datetime | None:
    """When the earliest waiting message that can go is due (None if nothing waits): one
    queued behind an earlier message of its group waits for that one, whatever its own time,
    so it does not make the daemon wake (and run cycles that send nothing) before then."""
    with store.begin() as conn:
        return conn.execute(
            select(func.min(_message.c.next_attempt_at)).where(
                _message.c.status.in_(
                    [s.value for s in (MessageStatus.PENDING, MessageStatus.RETRY_WAIT, MessageStatus.UNKNOWN)]
                ),
                ~_blocked_by_earlier(),
            )
        ).scalar()


def requeue_parked(store: StateStore, message_id: int | None = None) -> int:
    """Put centre-rejected records back to READY (after the cause was fixed)."""
    query = update(_record).where(_record.c.status == RecordStatus.PARKED.value).where(
        _record.c.park_kind == ParkKind.REJECTED.value
    )
    if message_id is not None:
        query = query.where(_record.c.message_id == message_id)
    with store.begin() as conn:
        result = conn.execute(
            query.values(
                status=RecordStatus.READY.value, park_kind=None, park_reason=None, message_id=None,
                updated_at=utcnow(),
            )
        )
    return int(result.rowcount or 0)


def resolve_by_hand(store: StateStore, message_id: int, *, acked: bool, note: str) -> int:
    """A person settles an unknown message: the centre holds it (``acked``: its records are
    sent) or it is to be sent again. Returns the records it carries; raises LookupError when
    the message is not unknown (only an unknown outcome is a person's to settle)."""
    with store.begin() as conn:
        status = conn.execute(select(_message.c.status).where(_message.c.id == message_id)).scalar()
    if status != MessageStatus.UNKNOWN.value:
        raise LookupError(f"message {message_id} is {status or 'not in the spool'}, not unknown")
    if acked:
        return mark_acked(store, message_id, "", note=note)
    mark_retry(store, message_id, note, 0)
    with store.begin() as conn:
        return int(conn.execute(
            select(func.count()).select_from(_record).where(_record.c.message_id == message_id)
        ).scalar_one())
