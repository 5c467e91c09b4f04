"""The outbox: create, claim and settle spooled messages.

Messages of one group (one visit) leave strictly in order: a message is due only when no
earlier message of its group is still unsent, so a refund never overtakes its original line.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from adapter import jsonio
from adapter.spool import schema
from adapter.spool.states import UNSENT_MESSAGE_STATES, LineStatus, MessageStatus, ParkKind
from adapter.spool.store import StateStore, utcnow

logger = logging.getLogger(__name__)

_message = schema.message
_line = schema.fee_line
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


def spool_message(
    conn: Any,
    *,
    infno: str,
    group_key: str,
    payload: dict[str, Any],
    line_ids: Sequence[int],
    insuplc_admdvs: str | None = None,
    record_ids: Sequence[int] = (),
) -> int:
    """Commit a message and tie its lines to it (inside the caller's transaction)."""
    now = utcnow()
    message_id = conn.execute(
        insert(_message)
        .values(
            infno=infno,
            status=MessageStatus.PENDING.value,
            group_key=group_key,
            insuplc_admdvs=insuplc_admdvs,
            payload=jsonio.dumps(payload),
            line_count=len(line_ids) + len(record_ids),
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(_message.c.id)
    ).scalar_one()
    for table, ids in ((_line, line_ids), (_record, record_ids)):
        if ids:
            conn.execute(
                update(table)
                .where(table.c.id.in_(list(ids)))
                .values(status=LineStatus.QUEUED.value, message_id=message_id, updated_at=now)
            )
    return int(message_id)


def claim_due(
    store: StateStore, limit: int, lease: timedelta, due_by: datetime | None = None
) -> list[SpooledMessage]:
    """Mark up to ``limit`` messages due by ``due_by`` (default now) in flight; oldest first."""
    now = utcnow()
    due_by = due_by or now
    earlier = aliased(_message)
    blocked_by_earlier = exists().where(
        and_(
            earlier.c.group_key == _message.c.group_key,
            earlier.c.id < _message.c.id,
            earlier.c.status.in_([s.value for s in UNSENT_MESSAGE_STATES]),
        )
    )
    query = (
        select(_message)
        .where(_message.c.status.in_([MessageStatus.PENDING.value, MessageStatus.RETRY_WAIT.value]))
        .where(or_(_message.c.next_attempt_at.is_(None), _message.c.next_attempt_at <= due_by))
        .where(~blocked_by_earlier)
        .order_by(_message.c.id)
        .limit(limit)
    )
    if store.supports_skip_locked:
        query = query.with_for_update(skip_locked=True, of=_message)
    with store.begin() as conn:
        rows = conn.execute(query).all()
        if not rows:
            return []
        conn.execute(
            update(_message)
            .where(_message.c.id.in_([row.id for row in rows]))
            .values(status=MessageStatus.IN_FLIGHT.value, lease_until=now + lease)
        )
    return [_spooled(row) for row in rows]


def _spooled(row: Any) -> SpooledMessage:
    return SpooledMessage(
        row.id, row.infno, row.group_key, row.insuplc_admdvs, jsonio.loads(row.payload),
        row.attempts, row.last_msgid,
    )


def mark_acked(store: StateStore, message_id: int, inf_refmsgid: str, note: str | None = None) -> int:
    """The centre accepted the message: it and its lines are done. Returns lines acked.

    ``note`` says how it was known when no reply said so (an inquiry after a lost reply).
    """
    now = utcnow()
    attempts = _message.c.attempts if note else _message.c.attempts + 1
    with store.begin() as conn:
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id)
            .values(
                status=MessageStatus.ACKED.value,
                acked_at=now,
                inf_refmsgid=inf_refmsgid,
                attempts=attempts,
                last_error=note,
                lease_until=None,
            )
        )
        acked = 0
        for table in (_line, _record):
            result = conn.execute(
                update(table)
                .where(table.c.message_id == message_id)
                .values(status=LineStatus.SENT.value, updated_at=now)
            )
            acked += int(result.rowcount or 0)
        return acked


def mark_retry(store: StateStore, message_id: int, error: str, delay_seconds: float) -> datetime:
    """A transient failure: store the error and when to try again (survives a restart)."""
    next_at = utcnow() + timedelta(seconds=delay_seconds)
    with store.begin() as conn:
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id)
            .values(
                status=MessageStatus.RETRY_WAIT.value,
                attempts=_message.c.attempts + 1,
                last_error=error,
                next_attempt_at=next_at,
                lease_until=None,
            )
        )
    return next_at


def mark_unknown(store: StateStore, message_id: int, error: str) -> None:
    """Sent without a reply: nothing is resent until :func:`claim_unknown` finds out."""
    with store.begin() as conn:
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id)
            .values(
                status=MessageStatus.UNKNOWN.value,
                attempts=_message.c.attempts + 1,
                last_error=error,
                next_attempt_at=utcnow(),
                lease_until=None,
            )
        )


def claim_unknown(store: StateStore, limit: int, lease: timedelta) -> list[SpooledMessage]:
    """Lease messages whose outcome is unknown, to find it out. They stay UNKNOWN meanwhile,
    so a crash during the inquiry leaves them unknown (never resent blindly)."""
    now = utcnow()
    query = (
        select(_message)
        .where(_message.c.status == MessageStatus.UNKNOWN.value)
        .where(or_(_message.c.lease_until.is_(None), _message.c.lease_until < now))
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


def ack_partly(store: StateStore, message_id: int, committed_sns: set[str], how: str) -> tuple[int, int]:
    """The centre holds some lines of a message whose reply was lost: those are sent, the
    rest go back to READY for a new message. Returns (lines acked, lines requeued)."""
    now = utcnow()
    with store.begin() as conn:
        lines = conn.execute(
            select(_line.c.id, _line.c.feedetl_sn).where(_line.c.message_id == message_id)
        ).all()
        held = [row.id for row in lines if row.feedetl_sn in committed_sns]
        missing = [row.id for row in lines if row.feedetl_sn not in committed_sns]
        if held:
            conn.execute(
                update(_line).where(_line.c.id.in_(held)).values(status=LineStatus.SENT.value, updated_at=now)
            )
        if missing:
            conn.execute(
                update(_line)
                .where(_line.c.id.in_(missing))
                .values(status=LineStatus.READY.value, message_id=None, updated_at=now)
            )
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id)
            .values(
                status=MessageStatus.ACKED.value, acked_at=now, lease_until=None,
                last_error=f"{how}; {len(missing)} line(s) not at the centre were requeued",
            )
        )
    return len(held), len(missing)


def hand_back(store: StateStore, message_id: int) -> None:
    """A claimed message that will not be sent now goes back unchanged (no attempt counted)."""
    with store.begin() as conn:
        conn.execute(
            update(_message)
            .where(_message.c.id == message_id, _message.c.status == MessageStatus.IN_FLIGHT.value)
            .values(status=MessageStatus.RETRY_WAIT.value, lease_until=None)
        )


def park_rejected(store: StateStore, message_id: int, err_msg: str) -> tuple[int, int]:
    """A business rejection: park what the centre blamed, requeue the rest.

    The centre refuses a message as a whole, so none of its lines were taken. When err_msg
    names some of the lines (by feedetl_sn or national code) only those are parked and the
    others go back to READY for a new message; otherwise every line is parked. Returns
    (lines parked, lines requeued).
    """
    now = utcnow()
    reason = f"centre rejected the upload: {err_msg}"
    with store.begin() as conn:
        lines = conn.execute(
            select(_line.c.id, _line.c.feedetl_sn, _line.c.mapped, _line.c.raw).where(
                _line.c.message_id == message_id
            )
        ).all()
        blamed = [row.id for row in lines if _is_blamed(row, err_msg)]
        if not blamed or len(blamed) == len(lines):
            blamed = [row.id for row in lines]
        # A refund of a blamed line would only be refused next ("original not found").
        blamed_sns = {row.feedetl_sn for row in lines if row.id in set(blamed)}
        blamed += [
            row.id for row in lines if row.id not in set(blamed) and _refunds(row) in blamed_sns
        ]
        innocent = [row.id for row in lines if row.id not in set(blamed)]
        conn.execute(
            update(_line)
            .where(_line.c.id.in_(blamed))
            .values(
                status=LineStatus.PARKED.value,
                park_kind=ParkKind.REJECTED.value,
                park_reason=reason,
                updated_at=now,
            )
        )
        if innocent:
            conn.execute(
                update(_line)
                .where(_line.c.id.in_(innocent))
                .values(status=LineStatus.READY.value, message_id=None, updated_at=now)
            )
        # Record transactions carry one record per message: the record takes the refusal.
        records = conn.execute(
            update(_record)
            .where(_record.c.message_id == message_id)
            .values(
                status=LineStatus.PARKED.value, park_kind=ParkKind.REJECTED.value,
                park_reason=reason, updated_at=now,
            )
        )
        records_parked = int(records.rowcount or 0)
        note = f" ({len(innocent)} line(s) not named were requeued)" if innocent else ""
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
    return len(blamed) + records_parked, len(innocent)


def _is_blamed(row: Any, err_msg: str) -> bool:
    if row.feedetl_sn and row.feedetl_sn in err_msg:
        return True
    mapped = json.loads(row.mapped) if row.mapped else {}
    code = mapped.get("med_list_codg")
    return bool(code) and code in err_msg


def _refunds(row: Any) -> str | None:
    original = json.loads(row.raw).get("init_feedetl_sn")
    return str(original) if original else None


def recover_in_flight(store: StateStore) -> int:
    """At start: messages a crash left in flight are due again now. Returns how many.

    One whose last attempt never finished, or finished well but was not recorded as acked,
    may be at the centre: it becomes UNKNOWN and is inquired about before anything is resent.
    """
    attempt = schema.attempt
    unfinished = exists().where(
        and_(
            attempt.c.msgid == _message.c.last_msgid,
            or_(attempt.c.finished_at.is_(None), attempt.c.outcome.in_(["ok", "unknown"])),
        )
    )
    with store.begin() as conn:
        unknown = conn.execute(
            update(_message)
            .where(_message.c.status == MessageStatus.IN_FLIGHT.value)
            .where(unfinished)
            .values(
                status=MessageStatus.UNKNOWN.value,
                next_attempt_at=utcnow(),
                last_error="interrupted while waiting for the centre's reply; outcome unknown",
                lease_until=None,
            )
        )
        result = conn.execute(
            update(_message)
            .where(_message.c.status == MessageStatus.IN_FLIGHT.value)
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
    """When the earliest waiting message is due (None if nothing waits)."""
    with store.begin() as conn:
        return conn.execute(
            select(func.min(_message.c.next_attempt_at)).where(
                _message.c.status.in_(
                    [s.value for s in (MessageStatus.PENDING, MessageStatus.RETRY_WAIT, MessageStatus.UNKNOWN)]
                )
            )
        ).scalar()


def requeue_parked(store: StateStore, message_id: int | None = None) -> int:
    """Put centre-rejected lines and records back to READY (after the cause was fixed)."""
    now = utcnow()
    count = 0
    with store.begin() as conn:
        for table in (_line, _record):
            query = update(table).where(table.c.status == LineStatus.PARKED.value).where(
                table.c.park_kind == ParkKind.REJECTED.value
            )
            if message_id is not None:
                query = query.where(table.c.message_id == message_id)
            result = conn.execute(
                query.values(
                    status=LineStatus.READY.value, park_kind=None, park_reason=None,
                    message_id=None, updated_at=now,
                )
            )
            count += int(result.rowcount or 0)
    return count
