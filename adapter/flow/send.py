"""Send: every message due when a pass starts goes to the centre, in order within its group;
every message whose reply was lost is first asked about. What came back is handed, as a
:class:`Delivery` or an inquiry's :class:`Outcome`, to the settle stage the cycle gives.

A pass takes only what was due at its start, so a message that failed and came due again
meanwhile waits for the next pass. With ``in_flight`` above 1, the claimed messages go in
waves of that many at once; a claim never holds two messages of one group (a later one waits
for the earlier to be answered), so a visit's messages still go one after another, in order.
What a claimed batch came to is settled once the whole batch is through (its acks in one
commit, not one each: a commit is an fsync). A crash before then leaves its answered messages
in flight without their acks: each is asked about before anything is sent again.

After ``BREAKER_FAILURES`` messages in a row fail transiently the centre is treated as down:
the pass ends and sending pauses (``paused_until``) instead of trying every queued message
against a dead gateway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.errors import BusinessRejection, DeliveryError, OutcomeUnknown, TransientDeliveryError
from adapter.flow import backlog
from adapter.flow.report import CycleReport
from adapter.outbound.client import CentreClient
from adapter.outbound.outcome import Outcome, find_outcome
from adapter.plugin.api import RegionProfile
from adapter.progress import SILENT, Progress, Reporter
from adapter.spool import outbox
from adapter.spool.deliveries import Delivery, DeliveryKind
from adapter.spool.retry import backoff_seconds, call_with_quick_retries
from adapter.spool.states import MessageStatus
from adapter.spool.visits import bind_visit, bind_visits
from adapter.state.store import StateStore, utcnow

logger = logging.getLogger(__name__)

#: consecutive transient failures that end a send pass (the centre is treated as down)
BREAKER_FAILURES = 3
#: the longest pause after the centre looked down: the first probe comes within this of its
#: return, however long the outage (the per-message backoff may grow to an hour meanwhile)
PROBE_CAP_SECONDS = 120.0


#: what the sends of one claimed batch came to, settled together (one commit for its acks)
Settle = Callable[[list[tuple[outbox.SpooledMessage, Delivery]], CycleReport], None]
Resolve = Callable[[outbox.SpooledMessage, Outcome, CycleReport], None]


@dataclass(frozen=True)
class SendSettings:
    timeout_seconds: float
    in_process_attempts: int
    in_process_wait_seconds: float
    retry_base_seconds: float
    retry_cap_seconds: float
    #: messages sent at once, each of another group
    in_flight: int = 1

    @property
    def inquire_after_seconds(self) -> float:
        """How long an unanswered message waits before the centre is asked what became of it:
        two timeouts. A request the adapter stopped waiting for may still be running at the
        centre; an inquiry (or a withdrawal) that overtook it would find nothing, and the
        resend would then duplicate what the slow original commits."""
        return 2 * self.timeout_seconds


class Send:
    def __init__(
        self, *, store: StateStore, client: CentreClient, region: RegionProfile, settings: SendSettings,
        stop_event: threading.Event, progress: Reporter = SILENT,
    ) -> None:
        self.store = store
        self.progress = progress
        self.client = client
        self.region = region
        self.settings = settings
        self.stop_event = stop_event
        #: set when the centre looked down; sending resumes after it
        self.paused_until: datetime | None = None
        self.pause_count = 0
        #: the threads of ``in_flight`` sends, started by the first wave of more than one
        self._pool: ThreadPoolExecutor | None = None

    def run(self, report: CycleReport, settle: Settle, resolve: Resolve) -> None:
        """One pass: inquiries about lost replies, then every message due at its start."""
        pass_start = utcnow()
        with self.progress.start("send", unit="messages",
                                 remaining=lambda: backlog.messages_due(self.store, pass_start)) as task:
            self._run(report, settle, resolve, pass_start, task)

    def _run(self, report: CycleReport, settle: Settle, resolve: Resolve, pass_start: datetime,
             task: Progress) -> None:
        settings = self.settings
        # Long enough for every call one message may take: sign-in, the send and its quick retries,
        # a session renewal and resend, a confirmation query.
        lease = timedelta(seconds=settings.timeout_seconds * (settings.in_process_attempts + 5))
        if self.paused_until is not None and pass_start < self.paused_until:
            return
        # A lease that ran out (a failed state write, a worker that died) is reclaimed while
        # running, not only at start; an unfinished attempt makes its message unknown.
        outbox.recover_in_flight(self.store, only_expired=True, inquire_after=settings.inquire_after_seconds)
        self.inquire(report, resolve)
        failures_in_a_row = 0
        while not self.stop_event.is_set():
            due = outbox.claim_due(self.store, limit=max(10, 2 * max(1, settings.in_flight)), lease=lease,
                                   due_by=pass_start)
            if not due:
                return
            sent: list[tuple[outbox.SpooledMessage, Delivery]] = []
            try:
                failures_in_a_row, go_on = self._send_batch(due, lease, report, sent, failures_in_a_row)
            finally:
                # Written once the batch is through (or the pass ends in it): its acks share one
                # commit. Until then a crash leaves them in flight, asked about at the restart.
                settle(sent, report)
                task.advance(len(sent))
            if not go_on:
                return

    def _send_batch(self, due: list[outbox.SpooledMessage], lease: timedelta, report: CycleReport,
                    sent: list[tuple[outbox.SpooledMessage, Delivery]],
                    failures_in_a_row: int) -> tuple[int, bool]:
        """One claimed batch sent, in waves of ``in_flight``; what came back is added to ``sent``.
        Returns the transient failures in a row after it (the breaker's count), and whether the
        pass goes on (not when it was stopped, or the breaker ended it)."""
        wave_size = max(1, self.settings.in_flight)
        claimed_at = time.monotonic()
        # Each payload with its visit's mdtrt_id, the batch's visits read at once.
        payloads = dict(zip((m.id for m in due), bind_visits(self.store, [(m.group_key, m.payload) for m in due]),
                            strict=True))
        for start in range(0, len(due), wave_size):
            if self.stop_event.is_set() or failures_in_a_row >= BREAKER_FAILURES:
                # Hand back what this worker claimed but will not send now.
                for rest in due[start:]:
                    outbox.hand_back(self.store, rest.id)
                if failures_in_a_row >= BREAKER_FAILURES:
                    self._pause_sending()
                return failures_in_a_row, False
            # A claim younger than a sixth of its lease still leaves the message more than
            # every call it may take; an older one is renewed first (one commit less a message
            # on the way through a batch that goes quickly).
            fresh = time.monotonic() - claimed_at < lease.total_seconds() / 6
            wave = [m for m in due[start:start + wave_size]
                    if fresh or outbox.renew_lease(self.store, m.id, lease, MessageStatus.IN_FLIGHT,
                                                   held_until=m.lease_until)]
            results = self._deliver_all([(m, payloads[m.id]) for m in wave])
            for message, (delivery, failures) in zip(wave, results, strict=True):
                report.transient_failures += failures
                sent.append((message, delivery))
                if delivery.kind in (DeliveryKind.ACKED, DeliveryKind.REJECTED):
                    failures_in_a_row = 0
                    if delivery.kind is DeliveryKind.ACKED and self.pause_count:
                        # Back after an outage: what waited out its backoff is due now.
                        self.pause_count = 0
                        outbox.bring_forward(self.store)
                else:
                    failures_in_a_row += 1
        return failures_in_a_row, True

    def _deliver_all(self, wave: list[tuple[outbox.SpooledMessage, dict[str, Any]]]) -> list[tuple[Delivery, int]]:
        """Each message of a wave sent with its payload, at once when there are several; results
        in wave order. The first attempts of several are registered together just before they
        leave (one commit for the wave, not one a message)."""
        if len(wave) <= 1:
            return [self._send_one(message, payload) for message, payload in wave]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.settings.in_flight, thread_name_prefix="send")
        msgids = self.client.register_together([(m.id, m.infno) for m, _payload in wave])
        return list(self._pool.map(self._send_one, *zip(*wave, strict=True), msgids))

    def close(self) -> None:
        """Stop the sending threads (after the pass that used them has ended)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def inquire(self, report: CycleReport, resolve: Resolve) -> None:
        """Ask the centre about every message whose reply was lost, before any resend."""
        lease = timedelta(seconds=self.settings.timeout_seconds * 6)
        while not self.stop_event.is_set():
            batch = outbox.claim_unknown(self.store, limit=10, lease=lease)
            if not batch:
                return
            for message in batch:
                if not outbox.renew_lease(self.store, message.id, lease, MessageStatus.UNKNOWN):
                    continue
                way = self.region.lost_replies.get(message.infno)
                shared = outbox.shared_in_group(self.store, message, way.shared_with) if way is not None else 0
                try:
                    outcome = find_outcome(
                        self.client, self.region, message.infno,
                        bind_visit(self.store, message.group_key, message.payload),
                        message.last_msgid, message.insuplc_admdvs, shared_elsewhere=shared,
                    )
                except DeliveryError as exc:
                    if isinstance(exc, TransientDeliveryError):
                        report.transient_failures += 1
                    # The inquiry failed too: the message stays unknown and is asked about
                    # again after a backoff. Stop asking a centre that does not answer.
                    delay = backoff_seconds(message.attempts + 1, self.settings.retry_base_seconds,
                                            min(self.settings.retry_cap_seconds, PROBE_CAP_SECONDS * 5))
                    outbox.keep_unknown(self.store, message.id, f"could not settle the lost reply yet: {exc}", delay)
                    logger.warning(
                        "cannot find out what happened to message %d yet: %s", message.id, exc,
                        extra={"action": "inquiry_failed", "message_id": message.id},
                    )
                    return
                report.outcomes_resolved += 1
                resolve(message, outcome, report)

    def _pause_sending(self) -> None:
        self.pause_count += 1
        cap = min(self.settings.retry_cap_seconds, PROBE_CAP_SECONDS)
        delay = backoff_seconds(self.pause_count, self.settings.retry_base_seconds, cap)
        self.paused_until = utcnow() + timedelta(seconds=delay)
        logger.warning(
            "%d messages in a row failed; the centre looks unavailable, pausing sends until %s UTC",
            BREAKER_FAILURES, self.paused_until.strftime("%H:%M:%S"),
            extra={"action": "send_paused"},
        )

    def _confirmed(self, message: outbox.SpooledMessage, payload: dict[str, Any], delivery: Delivery) -> Delivery:
        """An ack whose answer cannot show it is this request's (a registration answering only an
        mdtrt_id) is confirmed by a query first; unconfirmed, the outcome is unknown."""
        dialect = self.region.dialect
        query = dialect.confirmation(message.infno, payload)
        if query is None or delivery.reply is None:
            return delivery
        try:
            mdtrt_id = dialect.mdtrt_id_from_output(message.infno, delivery.reply.output or {})
            _, answer = self.client.call(query[0], query[1], message_id=None, insuplc_admdvs=message.insuplc_admdvs)
        except (BusinessRejection, DeliveryError) as exc:
            return Delivery(DeliveryKind.UNKNOWN, msgid=delivery.msgid, finish=delivery.finish,
                            error=f"answer to {delivery.msgid} could not be confirmed by {query[0]}: {exc}")
        if dialect.confirmed(message.infno, payload, mdtrt_id, answer.output) is not True:
            return Delivery(DeliveryKind.UNKNOWN, msgid=delivery.msgid, finish=delivery.finish,
                            error=f"answer to {delivery.msgid} not trusted: {query[0]} does not show "
                                  f"mdtrt_id {mdtrt_id} as this registration's")
        return delivery

    def _send_one(self, message: outbox.SpooledMessage, payload: dict[str, Any] | None = None,
                  registered: str | None = None) -> tuple[Delivery, int]:
        """The message sent with ``payload`` (its own with its visit bound, read here if not
        given; in a sending thread when in flight with others), its first attempt under
        ``registered`` if its msgid was registered with its wave's: what came back, and how
        many transient failures its quick retries met. Writes nothing but its attempts."""
        settings = self.settings
        failures = 0
        first = [registered] if registered is not None else []
        if payload is None:
            payload = bind_visit(self.store, message.group_key, message.payload)
        # The answered attempt's row waits for the ack's transaction only where no other
        # request's answer can pass for this one's meanwhile (a dialect written before the
        # hook existed keeps writing it at once, as it did).
        names_request = getattr(self.region.dialect, "answer_names_its_request", None)
        finish_later = bool(names_request is not None and names_request(message.infno))

        def attempt() -> Any:
            nonlocal failures
            try:
                return self.client.call(
                    message.infno, payload, message_id=message.id, insuplc_admdvs=message.insuplc_admdvs,
                    finish_later=finish_later, registered=first.pop() if first else None,
                )
            except TransientDeliveryError:
                failures += 1
                raise

        try:
            msgid, reply = call_with_quick_retries(
                attempt, settings.in_process_attempts, settings.in_process_wait_seconds, self.stop_event
            )
        except OutcomeUnknown as exc:
            delivery = Delivery(DeliveryKind.UNKNOWN, error=str(exc))
        except TransientDeliveryError as exc:
            delivery = Delivery(DeliveryKind.TRANSIENT, error=str(exc))
        except BusinessRejection as exc:
            delivery = Delivery(DeliveryKind.REJECTED, error=exc.err_msg)
        else:
            # The answered attempt's row goes with the settle stage's write (one commit for both).
            finish = self.client.take_finish(msgid)
            mismatch = self.region.dialect.answer_mismatch(message.infno, payload, reply.output)
            if mismatch is not None:
                # infcode 0, but not this request's answer: what the centre holds is unknown.
                error = f"answer to {msgid} not trusted: {mismatch}"
                delivery = Delivery(DeliveryKind.UNKNOWN, msgid=msgid, error=error, finish=finish)
            else:
                delivery = self._confirmed(message, payload, Delivery(DeliveryKind.ACKED, msgid=msgid, reply=reply,
                                                                      finish=finish))
        return delivery, failures
