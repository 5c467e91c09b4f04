"""Build: ready records become messages, committed to the spool before any send.

Cancels (2302, 2205) first wait for what they cancel: once that was acked the cancel goes;
if it is parked here it never reached the centre, so it and the cancel are both closed as
withdrawn instead of sending a cancel the centre would refuse. Messages of one group (a visit,
a stock item) are spooled in phase order (registration, details, closing) and then in ledger
order; a batched transaction (2301) puts up to ``lines_per_message`` records of one group
into one message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update

from adapter import jsonio
from adapter.flow.report import CycleReport
from adapter.plugin.api import TransactionSpec
from adapter.spool import outbox
from adapter.spool.states import RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow

_record = schema.record
#: messages spooled per state-store transaction
_MESSAGES_PER_COMMIT = 200


class Build:
    def __init__(self, store: StateStore, specs: Mapping[str, TransactionSpec], lines_per_message: int) -> None:
        self.store = store
        self.specs = dict(specs)
        self.lines_per_message = lines_per_message

    def run(self, report: CycleReport) -> None:
        waiting = self._settle_cancels(report)
        with self.store.begin() as conn:
            rows = conn.execute(
                select(_record.c.id, _record.c.infno, _record.c.group_key, _record.c.payload, _record.c.raw)
                .where(_record.c.status == RecordStatus.READY.value, _record.c.infno.in_(list(self.specs)))
                .order_by(_record.c.id)
            ).all()
        rows = sorted((row for row in rows if row.id not in waiting),
                      key=lambda row: (self.specs[row.infno].phase, row.id))
        messages = self._messages(rows)
        for start in range(0, len(messages), _MESSAGES_PER_COMMIT):
            with self.store.begin() as conn:
                for message in messages[start:start + _MESSAGES_PER_COMMIT]:
                    outbox.spool_message(conn, **message)
        report.messages_built += len(messages)

    def _messages(self, rows: list[Any]) -> list[dict[str, Any]]:
        """The messages, in order: a batched transaction's records of one group are cut into
        messages of ``lines_per_message`` where its first record stands."""
        messages: list[dict[str, Any]] = []
        batches: dict[tuple[str, str], list[Any]] = {}
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
    def _message(spec: TransactionSpec, rows: list[Any]) -> dict[str, Any]:
        payloads = [jsonio.loads(row.payload) for row in rows]
        payload = payloads[0]
        if len(payloads) > 1:  # a batched node: the records' entries joined, in ledger order
            payload = {spec.node: [entry for p in payloads for entry in p[spec.node]]}
        insuplc = jsonio.loads(rows[0].raw).get("insuplc_admdvs") or None
        return {
            "infno": spec.infno, "group_key": rows[0].group_key, "payload": payload,
            "record_ids": [row.id for row in rows], "insuplc_admdvs": str(insuplc) if insuplc else None,
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
