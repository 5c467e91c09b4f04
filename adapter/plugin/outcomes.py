"""How a region settles a message whose reply was lost, per transaction, from its edition.

A send whose effect at the centre cannot be known from the answer (a timeout, a reset, a 5xx
or an unreadable body after the request left, an answer that belongs to another request)
leaves its message *unknown*. Nothing is resent until the way the region declares for that
transaction says what the centre holds; a transaction with no declared way stays unknown until
a person settles it (``spool resolve``). The ways the interface allows:

- ``INQUIRE``: a query answers whether the centre holds it (2201 by 5201, 4101 by 4103);
- ``WITHDRAW``: withdraw exactly what the message carried (2301 lines by 2302 naming each
  ``feedetl_sn``, never "0000"; a 2204 batch by 2205; a discharge by 2405), then send again;
- ``REVERSE``: a 2601 reversal of the lost msgid (the edition allows it for 2401 among the
  transactions the adapter sends), then send again;
- ``RESEND``: send again and read the centre's answer to a repeat (a withdrawal repeated
  finds nothing left to withdraw and is done; a repeat refused as already held is held).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LostReplyMethod(StrEnum):
    INQUIRE = "inquire"
    WITHDRAW = "withdraw"
    REVERSE = "reverse"
    RESEND = "resend"


@dataclass(frozen=True)
class LostReply:
    """The way one transaction's unknown outcome is settled, and the passage that allows it."""

    method: LostReplyMethod
    source: str
    #: WITHDRAW only: transactions whose records of the same group the withdrawal removes too
    #: (3507 deletes a batch's data of one type: a purchase and its return alike). Where another
    #: message of the group carried such a record, withdrawing would take it from the centre as
    #: well, so the message stays unknown for a person instead.
    shared_with: frozenset[str] = frozenset()


class Verdict(StrEnum):
    #: the centre holds what the message carried
    HELD = "held"
    #: the centre holds none of it: send again
    NOT_HELD = "not_held"
    #: the answer cannot tell: the message stays unknown and is asked about again later
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class InquiryAnswer:
    """What a query's answer says about one lost message."""

    verdict: Verdict
    how: str
    #: for a registration found held: the mdtrt_id the centre gave it
    visit_id: str | None = None


class RefusalMeaning(StrEnum):
    """What a refusal (infcode -1) to a withdrawal, reversal, query or repeat says."""

    #: there is nothing of it at the centre (never arrived, or already withdrawn/reversed)
    NOTHING_THERE = "nothing_there"
    #: the centre already holds it (a repeat refused as such, or settled and so past withdrawing)
    ALREADY_HELD = "already_held"
    #: neither: the refusal decides nothing
    OTHER = "other"
