"""What one attempt came to, as its ``attempt`` row records it.

The client writes it as soon as the answer is read, except for a business message sent by the
send stage: there the settle stage writes it in the same transaction as the message's ack, so
an acknowledged message costs one commit after its send, not two.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, update

from adapter.state import schema
from adapter.state.store import utcnow


@dataclass(frozen=True)
class AttemptFinish:
    msgid: str
    #: ok, rejected, busy, transient or unknown
    outcome: str
    http_status: int | None
    infcode: int | None
    err_msg: str
    inf_refmsgid: str = ""
    #: when the centre received the request, on its clock (the answer's refmsg_time)
    received_at: datetime | None = None


#: built once: an attempt is finished for every request, and building the statement each
#: time cost several times what running it does
_FINISH = (update(schema.attempt).where(schema.attempt.c.msgid == bindparam("b_msgid"))
           .values({name: bindparam(name) for name in ("finished_at", "outcome", "http_status", "infcode",
                                                        "err_msg", "inf_refmsgid", "refmsg_time")}))


def finish_attempt(conn: Any, finish: AttemptFinish) -> None:
    """Record ``finish`` on its attempt row (inside the caller's transaction)."""
    conn.execute(_FINISH, {
        "b_msgid": finish.msgid,
        "finished_at": utcnow(),
        "outcome": finish.outcome,
        "http_status": finish.http_status,
        "infcode": None if finish.infcode is None else str(finish.infcode),
        "err_msg": finish.err_msg,
        "inf_refmsgid": finish.inf_refmsgid or None,
        "refmsg_time": finish.received_at,
    })
