"""Finding out what happened to a message whose reply was lost, the way its region allows.

The region declares per transaction how an unknown outcome is settled (``RegionProfile.
lost_replies``, see :mod:`adapter.plugin.outcomes`): by a query, by withdrawing exactly what
the message carried and sending it again, by a 2601 reversal, or by sending it again and reading
the centre's answer to the repeat. Whatever cannot be decided leaves the message unknown: it is
asked about again later, and a person can settle it (``spool resolve``). Nothing is ever resent
on a guess.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from adapter.errors import BusinessRejection
from adapter.outbound.client import CentreClient
from adapter.plugin.api import LostReplyMethod, RefusalMeaning, RegionProfile, Verdict

logger = logging.getLogger(__name__)

REVERSAL_INFNO = "2601"


class Resolution(StrEnum):
    #: the centre holds what the message carried
    COMMITTED = "committed"
    #: the centre holds none of it (never arrived, withdrawn or reversed): send it again
    NOT_COMMITTED = "not_committed"
    #: still unknown: ask again later, or a person decides
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class Outcome:
    resolution: Resolution
    how: str
    #: for a registration found committed: the mdtrt_id the centre gave it
    visit_id: str | None = None
    #: a batch-wide withdrawal took these transactions' records of the group from the centre
    #: too: the ones other messages had delivered are sent again after this one
    resend_shared: frozenset[str] = frozenset()


def find_outcome(
    client: CentreClient,
    region: RegionProfile,
    infno: str,
    payload: dict[str, Any],
    lost_msgid: str | None,
    insuplc_admdvs: str | None = None,
    *,
    shared_elsewhere: int = 0,
) -> Outcome:
    """Settle one lost reply. ``shared_elsewhere``: records of other messages that a withdrawal
    takes from the centre too (see ``LostReply.shared_with``); they are sent again after it.

    Raises DeliveryError when a call made here fails in transit (the message stays unknown).
    """
    way = region.lost_replies.get(infno)
    if way is None:
        return Outcome(Resolution.UNDECIDED, f"region {region.name} declares no way to settle a lost {infno} reply")
    dialect = region.dialect
    if way.method is LostReplyMethod.INQUIRE:
        query = dialect.inquiry(infno, payload)
        if query is None:
            return Outcome(Resolution.UNDECIDED, f"no inquiry input for {infno}")
        query_infno, query_input = query
        try:
            _, reply = client.call(query_infno, query_input, message_id=None, insuplc_admdvs=insuplc_admdvs)
        except BusinessRejection as exc:
            if dialect.refusal_meaning(exc.err_msg) is RefusalMeaning.NOTHING_THERE:
                return Outcome(Resolution.NOT_COMMITTED, f"{query_infno}: {exc.err_msg}")
            return Outcome(Resolution.UNDECIDED, f"{query_infno} refused: {exc.err_msg}")
        answer = dialect.inquiry_verdict(infno, payload, reply.output)
        resolution = {Verdict.HELD: Resolution.COMMITTED, Verdict.NOT_HELD: Resolution.NOT_COMMITTED}.get(
            answer.verdict, Resolution.UNDECIDED)
        return Outcome(resolution, answer.how, answer.visit_id)
    if way.method is LostReplyMethod.WITHDRAW:
        outcome = _withdraw(client, region, infno, payload, insuplc_admdvs)
        if shared_elsewhere and outcome.resolution is Resolution.NOT_COMMITTED:
            return Outcome(outcome.resolution, f"{outcome.how}; {shared_elsewhere} record(s) of other messages "
                                               "it took too are sent again", resend_shared=way.shared_with)
        return outcome
    if way.method is LostReplyMethod.REVERSE:
        if not lost_msgid:
            return Outcome(Resolution.UNDECIDED, "no msgid of the lost attempt to reverse")
        try:
            client.call(REVERSAL_INFNO, dialect.reversal_input(infno, payload, lost_msgid), message_id=None,
                        insuplc_admdvs=insuplc_admdvs)
        except BusinessRejection as exc:
            if dialect.refusal_meaning(exc.err_msg) is RefusalMeaning.NOTHING_THERE:
                return Outcome(Resolution.NOT_COMMITTED, f"2601: the centre never took {lost_msgid} ({exc.err_msg})")
            return Outcome(Resolution.UNDECIDED, f"2601 refused: {exc.err_msg}")
        return Outcome(Resolution.NOT_COMMITTED, f"2601 reversed {lost_msgid}")
    # RESEND: sent again; the settle stage reads a refusal of the repeat (already held: held).
    return Outcome(Resolution.NOT_COMMITTED, f"{way.source}; sending it again")


def _withdraw(
    client: CentreClient, region: RegionProfile, infno: str, payload: dict[str, Any], insuplc: str | None
) -> Outcome:
    calls = region.dialect.withdrawal(infno, payload)
    if not calls:
        return Outcome(Resolution.UNDECIDED, f"no withdrawal input for {infno}")
    done: list[str] = []
    for withdraw_infno, withdraw_input in calls:
        try:
            client.call(withdraw_infno, withdraw_input, message_id=None, insuplc_admdvs=insuplc)
        except BusinessRejection as exc:
            meaning = region.dialect.refusal_meaning(exc.err_msg)
            if meaning is RefusalMeaning.NOTHING_THERE:
                done.append(f"{withdraw_infno} found nothing to withdraw")
                continue
            if meaning is RefusalMeaning.ALREADY_HELD:
                # e.g. settled meanwhile (已参与结算的明细不能撤销): past withdrawing, so held.
                return Outcome(Resolution.COMMITTED, f"{withdraw_infno}: {exc.err_msg}")
            return Outcome(Resolution.UNDECIDED, f"{withdraw_infno} refused: {exc.err_msg}")
        done.append(f"{withdraw_infno} withdrew it")
    return Outcome(Resolution.NOT_COMMITTED, "; ".join(done))
