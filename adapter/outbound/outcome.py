"""Finding out what happened to a message whose reply was lost (reference §5).

Before anything is resent the centre is asked: by a query where the region has one for the
transaction (5204 fee details, 5203 settlements, 5303 in-hospital registrations), otherwise by a
2601 reversal (omsgid = the lost attempt's msgid) for the transactions the reference lists as
reversible. Only a transaction with neither is resent as is; its business keys make the centre
refuse or ignore a repeat, and the log says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from adapter.errors import BusinessRejection
from adapter.outbound.client import CentreClient
from adapter.plugin.api import RegionProfile

logger = logging.getLogger(__name__)

REVERSAL_INFNO = "2601"


class Resolution(StrEnum):
    #: the centre holds everything the message carried
    COMMITTED = "committed"
    #: the centre holds none of it (or it was reversed): send again
    NOT_COMMITTED = "not_committed"
    #: the centre holds part of it (the keys are in ``committed``)
    PARTIAL = "partial"


@dataclass(frozen=True)
class Outcome:
    resolution: Resolution
    how: str
    committed: frozenset[str] = field(default_factory=frozenset)
    #: for a registration found committed: the mdtrt_id the centre gave it
    visit_id: str | None = None


def find_outcome(
    client: CentreClient,
    region: RegionProfile,
    infno: str,
    payload: dict[str, Any],
    lost_msgid: str | None,
    insuplc_admdvs: str | None = None,
) -> Outcome:
    """Ask the centre. Raises DeliveryError when the inquiry itself fails (stay unknown)."""
    dialect = region.dialect
    query = dialect.outcome_query(infno, payload)
    if query is not None:
        query_infno, query_input = query
        _, reply = client.call(query_infno, query_input, message_id=None, insuplc_admdvs=insuplc_admdvs)
        wanted = dialect.message_keys(infno, payload)
        held = dialect.committed_keys(infno, payload, reply.output or {}) & wanted
        how = f"{query_infno} shows {len(held)} of {len(wanted)} at the centre"
        if held == wanted:
            visit_id = dialect.visit_from_inquiry(infno, payload, reply.output or {})
            return Outcome(Resolution.COMMITTED, how, frozenset(held), visit_id)
        if not held:
            return Outcome(Resolution.NOT_COMMITTED, how)
        return Outcome(Resolution.PARTIAL, how, frozenset(held))
    if infno in region.reversible and lost_msgid:
        reversal = dialect.reversal_input(infno, payload, lost_msgid)
        try:
            client.call(REVERSAL_INFNO, reversal, message_id=None, insuplc_admdvs=insuplc_admdvs)
        except BusinessRejection as exc:
            if not dialect.nothing_to_reverse(exc.err_msg):
                raise
            return Outcome(Resolution.NOT_COMMITTED, f"2601: the centre never took {lost_msgid}")
        return Outcome(Resolution.NOT_COMMITTED, f"2601 reversed {lost_msgid}")
    logger.warning(
        "no query or reversal exists for %s in region %s; resending (the centre keys it by "
        "business key)", infno, region.name, extra={"action": "unknown_resend"},
    )
    return Outcome(Resolution.NOT_COMMITTED, f"no inquiry exists for {infno}; resent")
