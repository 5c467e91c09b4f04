"""One cycle: extract -> map -> validate -> build messages -> spool -> send.

Each stage reads its input from the state store and leaves its output there, so a cycle that
stops anywhere resumes at the same point: nothing is lost and nothing is taken twice.
"""

from __future__ import annotations

import dataclasses

import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from adapter.catalog.check import CatalogView
from adapter.policy.stage import PolicyStage
from adapter.config import Settings
from adapter.errors import BusinessRejection, DeliveryError, OutcomeUnknown, TransientDeliveryError
from adapter.extract.sql import SqlSource
from adapter.mapping.store import MappingKind, MappingRow, MappingStore, unmapped_reason
from adapter.outbound.client import CentreClient
from adapter.outbound.outcome import Outcome, Resolution, find_outcome
from adapter.plugin.api import RegionProfile
from adapter.record_flow import RecordFlow
from adapter.records import FeeLine, MalformedRow, MappedFeeLine, fee_line_from_row
from adapter.spool import outbox, schema
from adapter.spool.retry import backoff_seconds, call_with_quick_retries
from adapter.spool.states import LineStatus, ParkKind
from adapter.spool.store import StateStore, utcnow
from adapter.spool.watermarks import read_watermark, save_watermark
from adapter.validate.engine import RuleSet, Severity, blocking

logger = logging.getLogger(__name__)

FEE_SOURCE = "his.fee_lines"
FEE_INFNO = "2301"
#: consecutive transient failures that end a send pass (the centre is treated as down)
BREAKER_FAILURES = 3
_line = schema.fee_line


@dataclass
class CycleReport:
    """What one cycle did; also what ``run --once`` and ``demo`` print."""

    extracted: int = 0
    duplicates_skipped: int = 0
    malformed: int = 0
    unmapped: int = 0
    invalid: int = 0
    ready: int = 0
    messages_built: int = 0
    messages_acked: int = 0
    lines_acked: int = 0
    transient_failures: int = 0
    messages_rejected: int = 0
    lines_rejected: int = 0
    #: sends whose reply was lost, and inquiries that settled such a message
    outcomes_unknown: int = 0
    outcomes_resolved: int = 0
    #: records of the other transactions (2401, 2402, 3501-3507...)
    records_ready: int = 0
    records_parked: int = 0
    #: findings of warn severity (the line was sent; e.g. a restricted-use item)
    warnings: int = 0
    #: cancels (2302, 2205) closed here because what they cancel never reached the centre
    records_withdrawn: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def parked(self) -> int:
        return self.malformed + self.unmapped + self.invalid + self.lines_rejected

    @property
    def clean(self) -> bool:
        return not (self.parked or self.transient_failures or self.errors)

    def add(self, other: CycleReport) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(other, name)
            if isinstance(value, list):
                getattr(self, name).extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)


class Pipeline:
    """The stages, in order, over one state store, HIS source and centre client."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: StateStore,
        source: SqlSource,
        client: CentreClient,
        region: RegionProfile,
        rules: RuleSet,
        records: RecordFlow,
        policy: PolicyStage | None = None,
        stop_event: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.source = source
        self.client = client
        self.region = region
        self.rules = rules
        self.records = records
        self.policy = policy
        self.mappings = MappingStore(store)
        self.stop_event = stop_event or threading.Event()
        #: set when the centre looked down (see send_due); sending resumes after it
        self.paused_until: datetime | None = None
        self.pause_count = 0

    def run_cycle(self) -> CycleReport:
        report = CycleReport()
        order = self.settings.his.transactions
        for infno in order:
            if infno != FEE_INFNO:
                ready, parked = self.records.extract(infno)
                report.records_ready += ready
                report.records_parked += parked
        report.records_ready += self.records.recheck_unmapped()
        if FEE_INFNO in order:
            self.extract(report)
            self.map_and_validate(report)
        # Messages of one visit leave in id order: registrations are spooled before fee
        # lines, fee lines before everything else (discharge comes after the last charge).
        report.messages_built += self.records.build_messages(registering=True)
        self.build_messages(report)
        withdrawn, waiting = self.records.settle_cancels()
        report.records_withdrawn += withdrawn
        report.messages_built += self.records.build_messages(registering=False, waiting=waiting)
        self.send_due(report)
        return report

    # -- extract -------------------------------------------------------------------------
    def extract(self, report: CycleReport) -> None:
        """Read new HIS rows; lines and the watermark are committed in one transaction."""
        batch = self.settings.schedule.batch_size
        column = self.source.watermark_column
        while not self.stop_event.is_set():
            watermark = self.watermark()
            rows = self.source.read_after(watermark, batch)
            if not rows:
                return
            now = utcnow()
            records = [self._ledger_row(row, str(row[column]), now, report) for row in rows]
            with self.store.begin() as conn:
                added = self.store.insert_ignoring_duplicates(conn, _line, records)
                save_watermark(conn, FEE_SOURCE, str(rows[-1][column]))
            report.extracted += added
            report.duplicates_skipped += len(records) - added
            if len(rows) < batch:
                return

    def watermark(self) -> str:
        with self.store.begin() as conn:
            return read_watermark(conn, FEE_SOURCE)

    @staticmethod
    def _ledger_row(row: dict[str, Any], key: str, now: Any, report: CycleReport) -> dict[str, Any]:
        raw = json.dumps(row, ensure_ascii=False, default=str)
        base = {
            "source_key": key,
            "mdtrt_id": _clean(row.get("mdtrt_id")),
            "feedetl_sn": _clean(row.get("feedetl_sn")),
            "his_item_code": _clean(row.get("his_item_code")),
            "raw": raw,
            "created_at": now,
            "updated_at": now,
        }
        try:
            fee_line_from_row(row, source_key=key)
        except MalformedRow as exc:
            report.malformed += 1
            return {
                **base,
                "status": LineStatus.PARKED.value,
                "park_kind": ParkKind.MALFORMED.value,
                "park_reason": f"malformed HIS row {key}: {exc}",
            }
        return {**base, "status": LineStatus.NEW.value, "park_kind": None, "park_reason": None}

    # -- map and validate ----------------------------------------------------------------
    def map_and_validate(self, report: CycleReport) -> None:
        """New lines, and lines parked for a missing mapping, are mapped and checked."""
        with self.store.begin() as conn:
            tables = self.mappings.load(conn)
            rows = conn.execute(
                select(_line.c.id, _line.c.source_key, _line.c.raw)
                .where(
                    or_(
                        _line.c.status == LineStatus.NEW.value,
                        and_(
                            _line.c.status == LineStatus.PARKED.value,
                            _line.c.park_kind == ParkKind.UNMAPPED.value,
                        ),
                    )
                )
                .order_by(_line.c.id)
            ).all()
        if not rows:
            return
        now = utcnow()
        updates: list[dict[str, Any]] = []
        lines: dict[int, FeeLine] = {}
        ready: dict[int, MappedFeeLine] = {}
        results = []
        for row in rows:
            line = lines[row.id] = fee_line_from_row(json.loads(row.raw), source_key=row.source_key)
            results.append((row, *map_line(line, tables)))
        catalogue = CatalogView(
            self.store, self.region.catalogues, (m.med_list_codg for _, m, _ in results if m is not None)
        )
        for row, mapped, missing in results:
            if mapped is None:
                report.unmapped += 1
                updates.append(_park(row.id, ParkKind.UNMAPPED, unmapped_reason(missing), now))
                continue
            cap = catalogue.cap_for(mapped.med_list_codg)
            if cap is not None:
                mapped = dataclasses.replace(mapped, price_cap=cap[0], price_cap_source=cap[1])
            findings = self.rules.check(mapped) + catalogue.check(mapped)
            for finding in findings:
                if finding.severity is Severity.WARN:
                    report.warnings += 1
                    logger.info("line %d: [%s] %s", row.id, finding.rule_id, finding.message,
                                extra={"action": "finding_warn"})
            problems = blocking(findings)
            if problems:
                report.invalid += 1
                reason = "; ".join(f"[{p.rule_id}] {p.message}" for p in problems)
                updates.append(_park(row.id, ParkKind.INVALID, reason, now))
                continue
            ready[row.id] = mapped
            updates.append(
                {
                    "b_id": row.id,
                    "status": LineStatus.READY.value,
                    "park_kind": None,
                    "park_reason": None,
                    "mapped": json.dumps(mapped.to_json(), ensure_ascii=False),
                    "updated_at": now,
                }
            )
        # Policy rules see whole stays: the lines ready now with those of the same stays before.
        stopped = self.policy.run(ready) if self.policy is not None else {}
        for index, item in enumerate(updates):
            reason = stopped.get(item["b_id"])
            if reason is not None:
                updates[index] = _park(item["b_id"], ParkKind.INVALID, reason, now)
        report.invalid += len(stopped)
        report.ready += len(ready) - len(stopped)
        self._hold_refunds_of_parked_originals(updates, lines)
        # executemany needs one statement per set of columns: parked rows carry no "mapped".
        by_columns: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
        for item in updates:
            by_columns[frozenset(item)].append(item)
        with self.store.begin() as conn:
            for columns, chunk in by_columns.items():
                values = {name: bindparam(name) for name in columns if name != "b_id"}
                stmt = update(_line).where(_line.c.id == bindparam("b_id")).values(**values)
                conn.execute(stmt, chunk)

    def _hold_refunds_of_parked_originals(
        self, updates: list[dict[str, Any]], lines: dict[int, FeeLine]
    ) -> None:
        """A refund must not reach the centre while its original line is held back here.

        One query finds which of the refunded originals are parked, however many refunds.
        """
        refunds = [
            (item, (lines[item["b_id"]].mdtrt_id, lines[item["b_id"]].init_feedetl_sn))
            for item in updates
            if item["status"] == LineStatus.READY.value and lines[item["b_id"]].init_feedetl_sn
        ]
        if not refunds:
            return
        held = {
            (lines[u["b_id"]].mdtrt_id, lines[u["b_id"]].feedetl_sn)
            for u in updates
            if u["status"] == LineStatus.PARKED.value
        }
        with self.store.begin() as conn:
            held.update(
                (row.mdtrt_id, row.feedetl_sn)
                for row in conn.execute(
                    select(_line.c.mdtrt_id, _line.c.feedetl_sn).where(
                        _line.c.status == LineStatus.PARKED.value,
                        _line.c.feedetl_sn.in_({original for _, (_, original) in refunds}),
                    )
                )
            )
        for item, key in refunds:
            if key in held:
                item.update(
                    status=LineStatus.PARKED.value,
                    park_kind=ParkKind.INVALID.value,
                    park_reason=f"refund of line {key[1]}, which is parked; resolve that line first",
                )
                item.pop("mapped", None)

    # -- build messages ------------------------------------------------------------------
    def build_messages(self, report: CycleReport) -> None:
        """Group ready lines per visit, up to lines_per_message, and spool each message."""
        per_message = self.settings.centre.lines_per_message
        with self.store.begin() as conn:
            rows = conn.execute(
                select(_line.c.id, _line.c.mdtrt_id, _line.c.mapped)
                .where(_line.c.status == LineStatus.READY.value)
                .order_by(_line.c.mdtrt_id, _line.c.id)
            ).all()
        by_visit: dict[str, list[tuple[int, MappedFeeLine]]] = defaultdict(list)
        for row in rows:
            by_visit[row.mdtrt_id].append((row.id, MappedFeeLine.from_json(json.loads(row.mapped))))
        for mdtrt_id, items in by_visit.items():
            for start in range(0, len(items), per_message):
                chunk = items[start : start + per_message]
                lines = [mapped for _, mapped in chunk]
                payload = self.region.dialect.fee_detail_input(lines)
                with self.store.begin() as conn:
                    outbox.spool_message(
                        conn,
                        infno=FEE_INFNO,
                        group_key=f"visit:{mdtrt_id}",
                        payload=payload,
                        line_ids=[line_id for line_id, _ in chunk],
                        insuplc_admdvs=lines[0].line.insuplc_admdvs or None,
                    )
                report.messages_built += 1

    # -- send ----------------------------------------------------------------------------
    def send_due(self, report: CycleReport) -> None:
        """Send every message due when the pass starts; failures get a stored next-attempt time.

        A pass takes only what was due at its start, so a message that failed and came due
        again meanwhile waits for the next pass. After ``BREAKER_FAILURES`` messages in a row
        fail transiently the centre is treated as down: the pass ends and sending pauses
        (``paused_until``) instead of trying every queued message against a dead gateway.
        """
        schedule = self.settings.schedule
        lease = timedelta(seconds=self.settings.centre.timeout_seconds * (schedule.in_process_attempts + 2))
        pass_start = utcnow()
        if self.paused_until is not None and pass_start < self.paused_until:
            return
        self.resolve_unknown(report)
        failures_in_a_row = 0
        while not self.stop_event.is_set():
            due = outbox.claim_due(self.store, limit=10, lease=lease, due_by=pass_start)
            if not due:
                return
            for index, message in enumerate(due):
                if self.stop_event.is_set() or failures_in_a_row >= BREAKER_FAILURES:
                    # Hand back what this worker claimed but will not send now.
                    for rest in due[index:]:
                        outbox.hand_back(self.store, rest.id)
                    if failures_in_a_row >= BREAKER_FAILURES:
                        self._pause_sending()
                    return
                delivered = self._send_one(message, report)
                failures_in_a_row = 0 if delivered else failures_in_a_row + 1

    def resolve_unknown(self, report: CycleReport) -> None:
        """Ask the centre about every message whose reply was lost, before any resend."""
        lease = timedelta(seconds=self.settings.centre.timeout_seconds * 4)
        while not self.stop_event.is_set():
            batch = outbox.claim_unknown(self.store, limit=10, lease=lease)
            if not batch:
                return
            for message in batch:
                try:
                    outcome = find_outcome(
                        self.client, self.region, message.infno,
                        self.records.bind_visit(message.group_key, message.payload),
                        message.last_msgid, message.insuplc_admdvs,
                    )
                except DeliveryError as exc:
                    if isinstance(exc, TransientDeliveryError):
                        report.transient_failures += 1
                    # The inquiry failed too: the message stays unknown (its lease expires and
                    # the next pass asks again). Stop asking a centre that does not answer.
                    logger.warning(
                        "cannot find out what happened to message %d yet: %s", message.id, exc,
                        extra={"action": "inquiry_failed", "message_id": message.id},
                    )
                    return
                self._settle(message, outcome, report)

    def _settle(self, message: outbox.SpooledMessage, outcome: Outcome, report: CycleReport) -> None:
        report.outcomes_resolved += 1
        note = f"reply to {message.last_msgid} was lost; {outcome.how}"
        logger.info(
            "message %d: %s (%s)", message.id, outcome.resolution.value, outcome.how,
            extra={"action": "outcome_resolved", "message_id": message.id},
        )
        if outcome.resolution is Resolution.COMMITTED:
            spec = self.region.transactions.get(message.infno)
            if spec is not None and spec.registers_visit:
                if outcome.visit_id is None:
                    logger.error(
                        "message %d: the centre holds the registration but the inquiry gave no "
                        "mdtrt_id; later messages of %s will carry the HIS visit number",
                        message.id, message.group_key, extra={"action": "visit_unknown"},
                    )
                else:
                    self.records.register_visit(message.group_key, outcome.visit_id, message.last_msgid or "")
            report.messages_acked += 1
            report.lines_acked += outbox.mark_acked(self.store, message.id, "", note=note)
        elif outcome.resolution is Resolution.PARTIAL:
            acked, _requeued = outbox.ack_partly(self.store, message.id, set(outcome.committed), note)
            report.lines_acked += acked
            self.build_messages(report)
        else:
            outbox.mark_retry(self.store, message.id, note + "; sending again", 0)

    def _pause_sending(self) -> None:
        self.pause_count += 1
        schedule = self.settings.schedule
        delay = backoff_seconds(self.pause_count, schedule.retry_base_seconds, schedule.retry_cap_seconds)
        self.paused_until = utcnow() + timedelta(seconds=delay)
        logger.warning(
            "%d messages in a row failed; the centre looks unavailable, pausing sends until %s UTC",
            BREAKER_FAILURES, self.paused_until.strftime("%H:%M:%S"),
            extra={"action": "send_paused"},
        )

    def _send_one(self, message: outbox.SpooledMessage, report: CycleReport) -> bool:
        """Send one message; False when it failed transiently (it waits for a retry)."""
        schedule = self.settings.schedule
        failures = 0
        payload = self.records.bind_visit(message.group_key, message.payload)

        def attempt() -> Any:
            nonlocal failures
            try:
                return self.client.call(
                    message.infno,
                    payload,
                    message_id=message.id,
                    insuplc_admdvs=message.insuplc_admdvs,
                )
            except TransientDeliveryError:
                failures += 1
                raise

        try:
            msgid, reply = call_with_quick_retries(
                attempt, schedule.in_process_attempts, schedule.in_process_wait_seconds, self.stop_event
            )
        except OutcomeUnknown as exc:
            report.transient_failures += failures
            report.outcomes_unknown += 1
            outbox.mark_unknown(self.store, message.id, str(exc))
            logger.warning(
                "message %d: %s; asking the centre before any resend", message.id, exc,
                extra={"action": "send_outcome_unknown", "message_id": message.id},
            )
            return False
        except TransientDeliveryError as exc:
            report.transient_failures += failures
            delay = backoff_seconds(
                message.attempts + 1, schedule.retry_base_seconds, schedule.retry_cap_seconds
            )
            next_at = outbox.mark_retry(self.store, message.id, str(exc), delay)
            logger.warning(
                "message %d not delivered (%s); next attempt at %s UTC",
                message.id, exc, next_at.strftime("%H:%M:%S"),
                extra={"action": "send_retry_wait", "message_id": message.id},
            )
            return False
        except BusinessRejection as exc:
            report.transient_failures += failures
            parked, requeued = outbox.park_rejected(self.store, message.id, exc.err_msg)
            report.messages_rejected += 1
            report.lines_rejected += parked
            logger.warning(
                "message %d rejected by the centre: %s (%d line(s) parked, %d requeued)",
                message.id, exc.err_msg, parked, requeued,
                extra={"action": "send_rejected", "message_id": message.id},
            )
            if requeued:
                self.build_messages(report)
            return True
        report.transient_failures += failures
        spec = self.region.transactions.get(message.infno)
        if spec is not None and spec.registers_visit:
            mdtrt_id = self.region.dialect.mdtrt_id_from_output(message.infno, reply.output or {})
            self.records.register_visit(message.group_key, mdtrt_id, msgid)
        report.messages_acked += 1
        report.lines_acked += outbox.mark_acked(self.store, message.id, reply.inf_refmsgid)
        self.pause_count = 0
        return True


def map_line(
    line: FeeLine, tables: dict[MappingKind, dict[str, MappingRow]]
) -> tuple[MappedFeeLine | None, list[tuple[MappingKind, str]]]:
    """Apply the mapping tables; returns the mapped line or the codes that have no mapping."""
    item = tables[MappingKind.ITEM].get(line.his_item_code)
    dept = tables[MappingKind.DEPT].get(line.his_dept_code)
    doctor = tables[MappingKind.DOCTOR].get(line.his_doctor_code)
    missing = [
        (kind, code)
        for kind, code, found in (
            (MappingKind.ITEM, line.his_item_code, item),
            (MappingKind.DEPT, line.his_dept_code, dept),
            (MappingKind.DOCTOR, line.his_doctor_code, doctor),
        )
        if found is None
    ]
    if missing or item is None or dept is None or doctor is None:
        return None, missing
    return (
        MappedFeeLine(
            line=line,
            med_list_codg=item.national_code,
            bilg_dept_codg=dept.national_code,
            bilg_dr_codg=doctor.national_code,
            hilist_name=item.national_name,
        ),
        [],
    )


def _park(line_id: int, kind: ParkKind, reason: str, now: Any) -> dict[str, Any]:
    return {
        "b_id": line_id,
        "status": LineStatus.PARKED.value,
        "park_kind": kind.value,
        "park_reason": reason,
        "updated_at": now,
    }


def _clean(value: Any) -> str:
    return "" if value is None else str(value).strip()
