"""Build: ready records become messages, committed to the spool before any send.

Cancels (2302, 2205) first wait for what they cancel: once that was acked the cancel goes;
if it is parked here it never reached the centre, so it and the cancel are both closed as
withdrawn instead of sending a cancel the centre would refuse. Messages of one group (a visit,
a stock item) are spooled in phase order (registration, details, closing) and then in ledger
order; a batched transaction (2301) puts up to ``lines_per_message`` records of one group
into one message. Ready records are taken a page at a time, so a group whose records straddle
a page boundary may go in one message more than it needs; its order is kept.

A ready record whose input or area cannot be read, or whose message the state store refuses
(a value longer than its column), is parked malformed with one log line; the others are built.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DataError

from adapter import jsonio
from adapter.errors import StateStoreError, TakenElsewhere
from adapter.flow import backlog
from adapter.flow.report import CycleReport
from adapter.plugin.api import TransactionSpec
from adapter.progress import SILENT, Progress, Reporter
from adapter.spool import outbox
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, unindexed, utcnow
from adapter.validate.fields import DATA_ERRORS, plain

logger = logging.getLogger(__name__)

_record = schema.record
#: ready records read and built per pass (memory stays flat however large the backlog)
CHUNK = 5000
#: messages spooled per state-store transaction
_MESSAGES_PER_COMMIT = 200
#: the insured person's area (参保地医保区划) a message is sent for: six digits
_AREA = re.compile(r"[0-9]{6}")


@dataclass(frozen=True)
class _Ready:
    """A ready record as a message takes it."""

    id: int
    infno: str
    group_key: str
    payload: dict[str, Any]
    insuplc_admdvs: str | None


class Build:
    def __init__(self, store: StateStore, specs: Mapping[str, TransactionSpec], lines_per_message: int,
                 progress: Reporter = SILENT) -> None:
        self.store = store
        self.progress = progress
        self.specs = dict(specs)
        self.lines_per_message = lines_per_message

    def run(self, report: CycleReport) -> None:
        with self.progress.start("build", unit="records", remaining=lambda: backlog.records_in(
                self.store, self.specs, RecordStatus.READY)) as task:
            self._run(report, task)

    def _run(self, report: CycleReport, task: Progress) -> None:
        waiting = self._settle_cancels(report)
        for phase in sorted({spec.phase for spec in self.specs.values()}):
            infnos = sorted(infno for infno, spec in self.specs.items() if spec.phase == phase)
            # Each transaction's ready records are paged along its own index range (infno,
            # status, id) and merged in ledger order, so memory holds a page per transaction
            # however large the backlog, and no page re-reads what an earlier one took.
            merged = heapq.merge(*(self._ready_rows(infno) for infno in infnos), key=lambda row: row.id)
            while chunk := list(itertools.islice(merged, CHUNK)):
                rows = [row for row in chunk if row.id not in waiting]
                messages = self._messages(self._readable(rows, report))
                for start in range(0, len(messages), _MESSAGES_PER_COMMIT):
                    report.messages_built += self._spool(messages[start:start + _MESSAGES_PER_COMMIT], report)
                task.advance(len(chunk))

    def _ready_rows(self, infno: str) -> Iterator[Any]:
        """The ready records of ``infno`` in ledger order, read a page at a time."""
        last = 0
        while True:
            with self.store.begin() as conn:
                page = conn.execute(
                    select(_record.c.id, _record.c.infno, _record.c.group_key, _record.c.payload, _record.c.raw)
                    .where(_record.c.infno == infno, _record.c.status == RecordStatus.READY.value,
                           _record.c.id > last)
                    .order_by(_record.c.id)
                    .limit(CHUNK)
                ).all()
            yield from page
            if len(page) < CHUNK:
                return
            last = page[-1].id

    def _readable(self, rows: Sequence[Any], report: CycleReport) -> list[_Ready]:
        """The ready records read for their messages; those that cannot be are parked."""
        ready = []
        for row in rows:
            try:
                ready.append(self._ready(row))
            except DATA_ERRORS as exc:
                self._park([row.id], f"record {row.id} ({row.infno}) cannot be built into a message: "
                                     f"{type(exc).__name__}: {exc}", report)
        return ready

    def _ready(self, row: Any) -> _Ready:
        spec = self.specs[row.infno]
        payload = jsonio.loads(row.payload)
        if not isinstance(payload, dict):
            raise ValueError(f"its input is {type(payload).__name__}, not an object")
        if spec.batched and not isinstance(payload.get(spec.node), list):
            raise ValueError(f"its input has no {spec.node} list to join into a message")
        area = jsonio.loads(row.raw).get("insuplc_admdvs") or None
        area = str(area).strip() if area else None
        if area is not None and not _AREA.fullmatch(area):
            raise ValueError(f"insuplc_admdvs {area[:20]!r} is not a 6-digit area code")
        return _Ready(row.id, row.infno, row.group_key, payload, area)

    def _spool(self, messages: list[dict[str, Any]], report: CycleReport) -> int:
        """Messages committed in one transaction; should the state store refuse a value, one by
        one, the records of a refused message parked (a store that fails still ends the cycle).
        Returns the messages spooled."""
        try:
            with self.store.begin() as conn:
                for message in messages:
                    outbox.spool_message(conn, **message)
            return len(messages)
        except (StateStoreError, ValueError) as exc:
            if not (_refused(exc) or isinstance(exc, TakenElsewhere)):
                raise
        spooled = 0
        for message in messages:
            try:
                with self.store.begin() as conn:
                    outbox.spool_message(conn, **message)
                spooled += 1
            except TakenElsewhere:
                continue  # another daemon sharing the database built it: nothing to do here
            except (StateStoreError, ValueError) as exc:
                if not _refused(exc):
                    raise
                self._park(message["record_ids"], f"the state store refused their {message['infno']} message: {exc}",
                           report)
        return spooled

    def _park(self, ids: list[int], reason: str, report: CycleReport) -> None:
        reason = plain(reason)
        with self.store.begin() as conn:
            conn.execute(update(_record)
                         .where(_record.c.id.in_(ids), unindexed(_record.c.status) == RecordStatus.READY.value)
                         .values(status=RecordStatus.PARKED.value, park_kind=ParkKind.MALFORMED.value,
                                 park_reason=reason, updated_at=utcnow()))
        report.malformed += len(ids)
        logger.warning("%s; parked as malformed (record %s)", reason, ", ".join(map(str, ids)),
                       extra={"action": "record_unbuildable"})

    def _messages(self, rows: list[_Ready]) -> list[dict[str, Any]]:
        """The messages, in order: a batched transaction's records of one group are cut into
        messages of ``lines_per_message`` where its first record stands."""
        messages: list[dict[str, Any]] = []
        batches: dict[tuple[str, str], list[_Ready]] = {}
        for row in rows:
            spec = self.specs[row.infno]
            if not spec.batched:
                messages.append(self._message(spec, [row]))
                continue
            key = (row.infno, row.group_key)
            if key not in batches:
                batches[key] = []
                messages.append({"_batch": key})
            batches[key].append(row)
        result = []
        for message in messages:
            if "_batch" not in message:
                result.append(message)
                continue
            infno, _group = message["_batch"]
            members = batches[message["_batch"]]
            for start in range(0, len(members), self.lines_per_message):
                result.append(self._message(self.specs[infno], members[start:start + self.lines_per_message]))
        return result

    @staticmethod
    def _message(spec: TransactionSpec, rows: list[_Ready]) -> dict[str, Any]:
        payload = rows[0].payload
        if len(rows) > 1:  # a batched node: the records' entries joined, in ledger order
            payload = {spec.node: [entry for row in rows for entry in row.payload[spec.node]]}
        return {
            "infno": spec.infno, "group_key": rows[0].group_key, "payload": payload,
            "record_ids": [row.id for row in rows], "insuplc_admdvs": rows[0].insuplc_admdvs,
        }

    def _settle_cancels(self, report: CycleReport) -> set[int]:
        """Returns the ids of the ready cancels that must wait for what they cancel."""
        waiting: set[int] = set()
        for infno, spec in self.specs.items():
            if not spec.cancels:
                continue
            with self.store.begin() as conn:
                cancels = conn.execute(
                    select(_record.c.id, _record.c.business_key).where(
                        _record.c.infno == infno, _record.c.status == RecordStatus.READY.value
                    )
                ).all()
                # What the cancels name, in a few queries however many cancels there are.
                targets = {
                    row.business_key: row
                    for chunk in in_chunks(sorted({c.business_key for c in cancels}))
                    for row in conn.execute(
                        select(_record.c.id, _record.c.business_key, _record.c.park_reason, _record.c.status)
                        .where(_record.c.infno == spec.cancels, _record.c.business_key.in_(chunk)))
                }
                for cancel in cancels:
                    target = targets.get(cancel.business_key)
                    if target is None or target.status == RecordStatus.SENT.value:
                        continue  # unknown here (the centre will say) or uploaded: send the cancel
                    if target.status != RecordStatus.PARKED.value:
                        waiting.add(cancel.id)
                        continue
                    now = utcnow()
                    note = (f"cancelled in the HIS ({infno}) before it reached the centre; "
                            f"was parked: {target.park_reason or ''}")
                    conn.execute(update(_record).where(_record.c.id == target.id).values(
                        status=RecordStatus.WITHDRAWN.value, park_reason=note, updated_at=now))
                    conn.execute(update(_record).where(_record.c.id == cancel.id).values(
                        status=RecordStatus.WITHDRAWN.value, updated_at=now,
                        park_reason=f"nothing to cancel at the centre: {spec.cancels} {cancel.business_key} "
                                    "was never uploaded"))
                    report.records_withdrawn += 1
        return waiting


def _refused(exc: Exception) -> bool:
    """Whether the state store refused a value (too long for its column, a character it cannot
    encode) rather than failed (locked, gone): only then are the records at fault."""
    return isinstance(exc, ValueError) or isinstance(exc.__cause__, DataError)
