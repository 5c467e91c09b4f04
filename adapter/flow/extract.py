"""Extract: new HIS rows of every configured transaction into the ledger.

Rows and the watermark are committed in one transaction, so a restart neither skips nor
repeats a row. A row whose fee lines cannot be read, or that has no business key, is stored
parked (malformed) with the reason; it never stops the rest.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from adapter.flow.report import CycleReport
from adapter.his import SqlSource
from adapter.plugin.api import TransactionSpec
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow
from adapter.state.watermarks import read_watermark, save_watermark
from adapter.validate.fields import normalise, read_his_row, unreadable_fee_line


def watermark_source(infno: str) -> str:
    """The watermark's name for a transaction's HIS query."""
    return f"his.{infno}"


class Extract:
    def __init__(
        self, store: StateStore, specs: Mapping[str, TransactionSpec], sources: Mapping[str, SqlSource],
        batch_size: int, stop_event: threading.Event,
    ) -> None:
        self.store = store
        self.specs = dict(specs)
        self.sources = dict(sources)
        self.batch_size = batch_size
        self.stop_event = stop_event

    def run(self, report: CycleReport) -> None:
        for infno in self.specs:
            self.extract(infno, report)

    def extract(self, infno: str, report: CycleReport) -> None:
        spec, source = self.specs[infno], self.sources[infno]
        name = watermark_source(infno)
        while not self.stop_event.is_set():
            with self.store.begin() as conn:
                watermark = read_watermark(conn, name)
            rows = source.read_after(watermark, self.batch_size)
            if not rows:
                return
            now = utcnow()
            entries = [_entry(spec, row, str(row[source.watermark_column]), now) for row in rows]
            with self.store.begin() as conn:
                added = self.store.insert_ignoring_duplicates(conn, schema.record, entries)
                save_watermark(conn, name, str(rows[-1][source.watermark_column]))
            report.extracted += added
            report.duplicates_skipped += len(entries) - added
            report.malformed += sum(1 for e in entries if e["park_kind"] == ParkKind.MALFORMED.value)
            if len(rows) < self.batch_size:
                return

    def watermark(self, infno: str) -> str:
        with self.store.begin() as conn:
            return read_watermark(conn, watermark_source(infno))


def _entry(spec: TransactionSpec, row: Mapping[str, Any], position: str, now: Any) -> dict[str, Any]:
    raw = read_his_row(spec, row)
    record = normalise(spec, raw)
    key = spec.key_of(record)
    base = {
        "infno": spec.infno,
        "business_key": key,
        "group_key": spec.group_of(record),
        "raw": json.dumps(raw, ensure_ascii=False, default=str),
        "payload": None,
        "message_id": None,
        "created_at": now,
        "updated_at": now,
        "status": RecordStatus.NEW.value,
        "park_kind": None,
        "park_reason": None,
    }
    problem = unreadable_fee_line(spec, record, raw, key)
    missing = [name for name in spec.key if not record.get(name)]
    if problem is None and missing:
        problem = f"HIS row has no value for {', '.join(missing)} (the business key)"
    if problem is not None:
        if missing:  # no business key: keyed by its place in the HIS, so it is never dropped
            base["business_key"] = f"#{position}"
        base.update(status=RecordStatus.PARKED.value, park_kind=ParkKind.MALFORMED.value,
                    park_reason=f"malformed HIS row {position}: {problem}")
    return base
