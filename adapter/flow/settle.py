"""Settle: what a send or an inquiry came to, written to the spool and the ledger.

An ack sends the message's records (and remembers the centre's mdtrt_id for a registration);
a business rejection parks the records the centre named (``blame_fields``) and their refunds,
the others go out again; a transient failure waits with backoff; a lost reply leaves the
message unknown until the way its region declares says what the centre holds. A message sent
again after a lost reply and refused as already held is held (and a repeated withdrawal that
finds nothing left has done its work).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace

from adapter.errors import BusinessRejection, TakenElsewhere
from adapter.flow.report import CycleReport
from adapter.outbound.attempts import AttemptFinish
from adapter.outbound.outcome import Outcome, Resolution
from adapter.plugin.api import LostReplyMethod, RefusalMeaning, RegionProfile, TransactionSpec
from adapter.spool import outbox
from adapter.spool.deliveries import Delivery, DeliveryKind
from adapter.spool.retry import backoff_seconds
from adapter.spool.states import MessageStatus
from adapter.spool.visits import registered_elsewhere
from adapter.state.store import StateStore

logger = logging.getLogger(__name__)


class Settle:
    def __init__(self, *, store: StateStore, region: RegionProfile, specs: Mapping[str, TransactionSpec],
                 retry_base_seconds: float, retry_cap_seconds: float, inquire_after_seconds: float = 0.0) -> None:
        self.store = store
        #: how long an unanswered message waits before it is asked about (see Send)
        self.inquire_after_seconds = inquire_after_seconds
        self.region = region
        self.specs = dict(specs)
        self.retry_base_seconds = retry_base_seconds
        self.retry_cap_seconds = retry_cap_seconds
        #: records sent back to READY (their message was partly rejected or partly held):
        #: the cycle builds new messages for them
        self.requeued = 0

    def delivered(self, message: outbox.SpooledMessage, delivery: Delivery, report: CycleReport) -> None:
        if delivery.finish is not None and delivery.kind is not DeliveryKind.ACKED:
            # Only an ack writes the answered attempt's row in its own transaction.
            outbox.record_finish(self.store, delivery.finish)
            delivery = replace(delivery, finish=None)
        with _unless_taken(message, self.store, delivery.finish):
            self._delivered(message, delivery, report)

    def delivered_all(self, results: Sequence[tuple[outbox.SpooledMessage, Delivery]], report: CycleReport) -> None:
        """What several sends came to, in their order; the plain acks among them (not a
        registration's, whose answer is looked at first) are written in one transaction. The
        messages are of different groups (a claim holds one message a group), so the order
        their results are written in does not matter."""
        plain = []
        for message, delivery in results:
            if delivery.kind is DeliveryKind.ACKED and not self._registers(message):
                plain.append((message, delivery))
            else:
                self.delivered(message, delivery, report)
        if not plain:
            return
        acked = outbox.mark_acked_together(self.store, [
            outbox.Ack(message.id, delivery.reply.inf_refmsgid if delivery.reply is not None else "", delivery.finish)
            for message, delivery in plain])
        for (message, _delivery), lines in zip(plain, acked, strict=True):
            if lines is None:
                logger.warning("message %d: no longer in flight: another worker reclaimed it; its result is "
                               "left to that worker", message.id,
                               extra={"action": "result_dropped", "message_id": message.id})
                continue
            report.lines_acked += lines
            report.messages_acked += 1

    def resolved(self, message: outbox.SpooledMessage, outcome: Outcome, report: CycleReport) -> None:
        with _unless_taken(message, self.store):
            self._resolved(message, outcome, report)

    def _delivered(self, message: outbox.SpooledMessage, delivery: Delivery, report: CycleReport) -> None:
        if delivery.kind is DeliveryKind.ACKED:
            self._acked(message, delivery, report)
        elif delivery.kind is DeliveryKind.REJECTED:
            self._rejected(message, delivery.error, report)
        elif delivery.kind is DeliveryKind.UNKNOWN:
            report.outcomes_unknown += 1
            outbox.mark_unknown(self.store, message.id, delivery.error, delivery.msgid, expect=MessageStatus.IN_FLIGHT,
                                inquire_after=self.inquire_after_seconds)
            logger.warning(
                "message %d: %s; asking the centre before any resend", message.id, delivery.error,
                extra={"action": "send_outcome_unknown", "message_id": message.id},
            )
        else:
            delay = backoff_seconds(message.attempts + 1, self.retry_base_seconds, self.retry_cap_seconds)
            next_at = outbox.mark_retry(self.store, message.id, delivery.error, delay, expect=MessageStatus.IN_FLIGHT)
            logger.warning(
                "message %d not delivered (%s); next attempt at %s UTC",
                message.id, delivery.error, next_at.strftime("%H:%M:%S"),
                extra={"action": "send_retry_wait", "message_id": message.id},
            )

    def _resolved(self, message: outbox.SpooledMessage, outcome: Outcome, report: CycleReport) -> None:
        note = f"reply to {message.last_msgid} was lost; {outcome.how}"
        logger.info(
            "message %d: %s (%s)", message.id, outcome.resolution.value, outcome.how,
            extra={"action": "outcome_resolved", "message_id": message.id},
        )
        if outcome.resolution is Resolution.COMMITTED and self._registers(message) and outcome.visit_id is None:
            # Held, but without the mdtrt_id later messages need: not settled yet.
            outcome = Outcome(Resolution.UNDECIDED, f"{outcome.how}, but without the visit's mdtrt_id")
        if outcome.resolution is Resolution.COMMITTED:
            visit = None if outcome.visit_id is None or not self._registers(message) else (
                message.group_key, outcome.visit_id, message.last_msgid or "")
            report.lines_acked += outbox.mark_acked(self.store, message.id, "", note=note,
                                                    expect=MessageStatus.UNKNOWN, visit=visit)
            report.messages_acked += 1
        elif outcome.resolution is Resolution.UNDECIDED:
            report.outcomes_unknown += 1
            delay = backoff_seconds(message.attempts + 1, self.retry_base_seconds, self.retry_cap_seconds)
            next_at = outbox.keep_unknown(self.store, message.id, note + "; still unknown", delay,
                                          expect=MessageStatus.UNKNOWN)
            logger.warning(
                "message %d: still unknown (%s); asking again at %s UTC, or settle it with "
                "`spool resolve %d --acked|--resend`", message.id, outcome.how, next_at.strftime("%H:%M:%S"),
                message.id, extra={"action": "outcome_undecided", "message_id": message.id},
            )
        else:
            self.requeued += outbox.resend_unknown(self.store, message, note + "; sending again",
                                                   outcome.resend_shared)

    def _acked(self, message: outbox.SpooledMessage, delivery: Delivery, report: CycleReport) -> None:
        visit = None
        finish = delivery.finish
        if self._registers(message):
            if finish is not None:
                # a registration's answer may still turn out unusable (below): its row first
                outbox.record_finish(self.store, finish)
                finish = None
            try:
                mdtrt_id = self.region.dialect.mdtrt_id_from_output(message.infno, (delivery.reply and
                                                                                   delivery.reply.output) or {})
            except BusinessRejection as exc:
                # A registration answer without its mdtrt_id cannot be acted on (later messages
                # need it): the outcome is unknown and settled the way the region allows.
                error = f"answer to {delivery.msgid} not usable: {exc}"
                self._delivered(message, Delivery(DeliveryKind.UNKNOWN, msgid=delivery.msgid, error=error), report)
                return
            other = registered_elsewhere(self.store, message.group_key, mdtrt_id)
            if other is not None:
                # A registration answer naming another visit's mdtrt_id is not this one's.
                error = f"answer to {delivery.msgid} not trusted: mdtrt_id {mdtrt_id} is visit {other}'s"
                self._delivered(message, Delivery(DeliveryKind.UNKNOWN, msgid=delivery.msgid, error=error), report)
                return
            visit = (message.group_key, mdtrt_id, delivery.msgid)
        inf_refmsgid = delivery.reply.inf_refmsgid if delivery.reply is not None else ""
        report.lines_acked += outbox.mark_acked(self.store, message.id, inf_refmsgid, expect=MessageStatus.IN_FLIGHT,
                                                visit=visit, finish=finish)
        report.messages_acked += 1

    def _rejected(self, message: outbox.SpooledMessage, err_msg: str, report: CycleReport) -> None:
        held_how = self._repeat_settles(message, err_msg)
        if held_how is not None:
            report.messages_acked += 1
            report.lines_acked += outbox.mark_acked(self.store, message.id, "", note=held_how,
                                                    expect=MessageStatus.IN_FLIGHT)
            logger.info("message %d: %s", message.id, held_how, extra={"action": "outcome_resolved",
                                                                         "message_id": message.id})
            return
        blamed = self._blamed(message, err_msg)
        parked, requeued = outbox.park_rejected(self.store, message.id, err_msg, blamed,
                                                expect=MessageStatus.IN_FLIGHT)
        report.messages_rejected += 1
        report.lines_rejected += parked
        self.requeued += requeued
        logger.warning(
            "message %d rejected by the centre: %s (%d record(s) parked, %d requeued)",
            message.id, err_msg, parked, requeued,
            extra={"action": "send_rejected", "message_id": message.id},
        )

    def _repeat_settles(self, message: outbox.SpooledMessage, err_msg: str) -> str | None:
        """How a refusal of a message sent again after a lost reply shows it done, or None.

        Refused as already held: the first send took effect (not for a registration, whose
        mdtrt_id only an answer gives). For a transaction settled by sending again (a
        withdrawal), a refusal saying nothing is left shows the first one withdrew it.
        """
        meaning = self.region.dialect.refusal_meaning(err_msg)
        if meaning is RefusalMeaning.OTHER or self._registers(message):
            return None
        way = self.region.lost_replies.get(message.infno)
        if meaning is RefusalMeaning.NOTHING_THERE and (way is None or way.method is not LostReplyMethod.RESEND):
            return None
        if not outbox.had_lost_reply(self.store, message.id):
            return None
        return f"sent again after a lost reply and the centre answered “{err_msg}”: the first send took effect"

    def _blamed(self, message: outbox.SpooledMessage, err_msg: str) -> list[int]:
        """The records a rejection names by a ``blame_fields`` value, with their refunds (a
        refund of a blamed record would only be refused next); empty: all of them."""
        spec = self.specs.get(message.infno)
        if spec is None or not spec.blame_fields:
            return []
        records = [(r.id, self._record(message.infno, r.payload)) for r in outbox.records_of(self.store, message.id)]
        blamed = {rid for rid, record in records
                  if any(str(record.get(name) or "") and str(record.get(name)) in err_msg
                         for name in spec.blame_fields)}
        if not blamed or len(blamed) == len(records):
            return []
        if spec.refund_of is not None:
            refund_field, key_field = spec.refund_of
            originals = {str(record.get(key_field)) for rid, record in records if rid in blamed}
            blamed |= {rid for rid, record in records if str(record.get(refund_field) or "") in originals}
        return sorted(blamed)

    def _registers(self, message: outbox.SpooledMessage) -> bool:
        spec = self.specs.get(message.infno)
        return spec is not None and spec.registers_visit

    def _record(self, infno: str, payload: dict[str, object]) -> dict[str, object]:
        spec = self.specs.get(infno)
        return spec.record_from_input(payload) if spec is not None else {}


@contextmanager
def _unless_taken(message: outbox.SpooledMessage, store: StateStore,
                  finish: AttemptFinish | None = None) -> Iterator[None]:
    """A result for a message another worker reclaimed meanwhile is dropped, with one log line:
    that worker settles it. The attempt's own row (``finish``, which would have gone with the
    ack) is still written: the attempt was answered."""
    try:
        yield
    except TakenElsewhere as exc:
        if finish is not None:
            outbox.record_finish(store, finish)
        logger.warning("message %d: %s; its result is left to that worker", message.id, exc,
                       extra={"action": "result_dropped", "message_id": message.id})
