"""What one send of a spooled message came to, as the send stage hands it to the settle stage."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from adapter.outbound.attempts import AttemptFinish
from adapter.outbound.envelope import CentreReply


class DeliveryKind(StrEnum):
    ACKED = "acked"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    TRANSIENT = "transient"


@dataclass(frozen=True)
class Delivery:
    """What one send of a message came to."""

    kind: DeliveryKind
    msgid: str = ""
    reply: CentreReply | None = None
    error: str = ""
    #: the answered attempt's row, still to be written (with the ack, in one transaction)
    finish: AttemptFinish | None = None
