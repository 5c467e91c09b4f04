"""What is left for a stage of the cycle, counted for its progress (:mod:`adapter.progress`) once
the stage proves long, never in an ordinary cycle. Each count reads one index of the ledger or
the outbox (ix_record_status, ix_message_due), not the tables."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_, select

from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore


def records_in(store: StateStore, infnos: Iterable[str], status: RecordStatus) -> int:
    """Records of these transactions in ``status`` (new: still to check; ready: still to build)."""
    record = schema.record
    with store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(record).where(
            record.c.infno.in_(list(infnos)), record.c.status == status.value)).scalar_one())


def messages_due(store: StateStore, due_by: datetime) -> int:
    """Messages waiting to be sent that are due by ``due_by`` (what a send pass takes)."""
    message = schema.message
    with store.begin() as conn:
        return int(conn.execute(select(func.count()).select_from(message).where(
            message.c.status.in_([MessageStatus.PENDING.value, MessageStatus.RETRY_WAIT.value]),
            or_(message.c.next_attempt_at.is_(None), message.c.next_attempt_at <= due_by))).scalar_one())
