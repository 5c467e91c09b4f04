"""States of spooled messages and of the ledger records they carry."""

from __future__ import annotations

from enum import StrEnum


class MessageStatus(StrEnum):
    """Where an outgoing message stands. Every message is stored before its first send."""

    #: built and committed, never sent yet
    PENDING = "pending"
    #: claimed by a worker and being sent now (a crash leaves it here until recovery)
    IN_FLIGHT = "in_flight"
    #: the centre answered infcode 0
    ACKED = "acked"
    #: the centre refused it (business rejection); kept with err_msg, never retried by itself
    PARKED = "parked"
    #: a transient failure; the next attempt time is stored in the row
    RETRY_WAIT = "retry_wait"
    #: sent, but no reply came back: found out (query or 2601 reversal) before any resend
    UNKNOWN = "unknown"


class RecordStatus(StrEnum):
    """Where one record of the ledger stands (a 2301 fee line, a 2401 admission, a 2204 charge
    batch...)."""

    #: extracted, not yet mapped and validated
    NEW = "new"
    #: mapped and valid, waiting to be put into a message
    READY = "ready"
    #: inside a message that has not been acknowledged yet
    QUEUED = "queued"
    #: acknowledged by the centre
    SENT = "sent"
    #: held back with a reason a person can act on
    PARKED = "parked"
    #: cancelled in the HIS (2302, 2205) before it ever reached the centre: nothing to send,
    #: nothing to cancel; the cancel is closed the same way
    WITHDRAWN = "withdrawn"


class ParkKind(StrEnum):
    """Why a record is parked; decides how it can come back."""

    #: the HIS row itself is unreadable (fix it in the HIS)
    MALFORMED = "malformed"
    #: a hospital code has no national mapping (import a mapping; retried every cycle)
    UNMAPPED = "unmapped"
    #: a validation rule failed (fix the data in the HIS)
    INVALID = "invalid"
    #: the centre refused it (read err_msg, fix, resubmit)
    REJECTED = "rejected"
    #: a person held it back (``spool park``, with the reason); ``spool retry`` lets it go
    HELD = "held"


#: Message states that still need work; an item in one of these is "unsent".
UNSENT_MESSAGE_STATES = (
    MessageStatus.PENDING,
    MessageStatus.IN_FLIGHT,
    MessageStatus.RETRY_WAIT,
    MessageStatus.UNKNOWN,
)

#: Record states not yet at the centre (nor parked or withdrawn): read, checked, or in a message.
UNSENT_RECORD_STATES = (RecordStatus.NEW, RecordStatus.READY, RecordStatus.QUEUED)
