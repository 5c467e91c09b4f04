"""Extract: new HIS rows of every configured transaction into the ledger.

Rows and the watermark are committed in one transaction, so a restart neither skips nor
repeats a row. A row whose values cannot be read (bytes, text that is not UTF-8, control
characters, a number that is none or does not fit its field, a fee date no charge can have),
whose fee lines cannot be read, or that has no business key, is stored parked (malformed) with
the column and the reason; it never stops the rest.

Parked lines come back. A row the HIS query returns again (its updated-at watermark moved) with
the business key of a record parked malformed, invalid or unmapped replaces that record, which
goes through the checks again; :meth:`Extract.recheck` reads the rows of such records again by
their key (``spool recheck``). A record that is ready, queued or sent, or that the centre
refused, is never replaced: what the HIS sends again of it is a duplicate.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, select, update

from adapter.errors import SourceError
from adapter.flow.report import CycleReport
from adapter.his import SqlSource
from adapter.plugin.api import TransactionSpec
from adapter.progress import SILENT, Progress, Reporter
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow
from adapter.state.watermarks import read_watermark, save_watermark
from adapter.validate.fields import (
    DATA_ERRORS,
    normalise,
    plain,
    read_his_row,
    unreadable_fee_line,
    unreadable_values,
)

logger = logging.getLogger(__name__)

_record = schema.record
#: the parked records a HIS row read again replaces: the HIS is where they are fixed
REPLACEABLE = (ParkKind.MALFORMED, ParkKind.INVALID, ParkKind.UNMAPPED)
#: what the ledger's key columns hold (schema.record business_key, group_key); a longer key
#: would make the whole batch's insert fail on PostgreSQL
_KEY_LENGTH, _GROUP_LENGTH = 200, 64
#: how much of each value an unreadable row keeps in the ledger, for a person to look at
_KEPT = 1000
#: how a HIS row is written as the ledger's raw, built once: json.dumps with any option builds
#: an encoder per call (this writes what json.dumps(raw, ensure_ascii=False, default=str) does, for less)
_RAW = json.JSONEncoder(ensure_ascii=False, default=str)


def watermark_source(infno: str) -> str:
    """The watermark's name for a transaction's HIS query."""
    return f"his.{infno}"


@dataclass(frozen=True)
class Rechecked:
    """What :meth:`Extract.recheck` did with one record."""

    record_id: int
    infno: str
    business_key: str
    #: replaced by its HIS row read again (it goes through the checks at the next cycle)
    replaced: bool
    #: what happened, in words
    note: str


class Extract:
    def __init__(
        self, store: StateStore, specs: Mapping[str, TransactionSpec], sources: Mapping[str, SqlSource],
        batch_size: int, stop_event: threading.Event, progress: Reporter = SILENT,
    ) -> None:
        self.store = store
        self.progress = progress
        self.specs = dict(specs)
        self.sources = dict(sources)
        self.batch_size = batch_size
        self.stop_event = stop_event

    def run(self, report: CycleReport) -> None:
        for infno in self.specs:
            self.extract(infno, report)

    def extract(self, infno: str, report: CycleReport) -> None:
        source = self.sources[infno]
        # what is left is counted (in the HIS) only if the extract proves long
        with self.progress.start("extract", infno,
                                 remaining=lambda: source.count_after(self.watermark(infno))) as task:
            self._extract(infno, report, task)

    def _extract(self, infno: str, report: CycleReport, task: Progress) -> None:
        spec, source = self.specs[infno], self.sources[infno]
        name = watermark_source(infno)
        while not self.stop_event.is_set():
            with self.store.begin() as conn:
                watermark = read_watermark(conn, name)
            rows = source.read_after(watermark, self.batch_size)
            if not rows:
                return
            now = utcnow()
            column = source.watermark_column
            entries = [_entry(spec, row, _position(row.get(column)), now) for row in rows]
            with self.store.begin() as conn:
                replaced = _replace_parked(conn, infno, entries)
                fresh = [entry for entry in entries if entry["business_key"] not in replaced]
                added = self.store.insert_ignoring_duplicates(conn, _record, fresh)
                save_watermark(conn, name, _position(rows[-1][column]))
            report.extracted += added + len(replaced)
            report.duplicates_skipped += len(fresh) - added
            report.malformed += sum(1 for e in entries if e["park_kind"] == ParkKind.MALFORMED.value)
            task.advance(len(rows))
            if len(rows) < self.batch_size:
                return

    def watermark(self, infno: str) -> str:
        with self.store.begin() as conn:
            return read_watermark(conn, watermark_source(infno))

    def recheck(self, record_ids: Sequence[int] | None, infno: str | None = None) -> list[Rechecked]:
        """Read the HIS row of every record parked malformed, invalid or unmapped again (those
        named, or all of them; only of ``infno`` if given) by its business key, or by its
        watermark column when it has none (a fee line whose visit row was missing), and replace
        the record with it: it goes through the checks at the next cycle. The watermark stays."""
        done, wanted = self._rechecked_records(record_ids, infno)
        by_infno: dict[str, list[Any]] = defaultdict(list)
        for row in wanted:
            by_infno[row.infno].append(row)
        for name, rows in by_infno.items():
            done += self._recheck(self.specs[name], self.sources[name], rows)
        return sorted(done, key=lambda item: item.record_id)

    def _rechecked_records(self, record_ids: Sequence[int] | None, infno: str | None) -> tuple[list[Rechecked],
                                                                                              list[Any]]:
        """(what cannot be rechecked, with why; the parked records to read again)."""
        query = select(_record.c.id, _record.c.infno, _record.c.business_key, _record.c.status,
                       _record.c.park_kind, _record.c.raw)
        if infno is not None:
            query = query.where(_record.c.infno == infno)
        with self.store.begin() as conn:
            if record_ids is None:
                found = conn.execute(query.where(_replaceable()).order_by(_record.c.id)).all()
            else:
                found = [row for chunk in in_chunks(sorted(set(record_ids)))
                         for row in conn.execute(query.where(_record.c.id.in_(chunk)))]
        refused = [Rechecked(rid, infno or "", "", False, "no such record" + (f" of {infno}" if infno else ""))
                   for rid in sorted(set(record_ids or ()) - {row.id for row in found})]
        wanted = []
        for row in found:
            if row.status != RecordStatus.PARKED.value or row.park_kind not in {k.value for k in REPLACEABLE}:
                state = row.status + (f" ({row.park_kind})" if row.park_kind else "")
                note = f"is {state}, not parked malformed, invalid or unmapped: left as it is"
            elif row.infno not in self.specs:
                note = f"transaction {row.infno} is not in [his] transactions: its HIS query is not known"
            else:
                wanted.append(row)
                continue
            refused.append(Rechecked(row.id, row.infno, row.business_key, False, note))
        return refused, wanted

    def _recheck(self, spec: TransactionSpec, source: SqlSource, records: Sequence[Any]) -> list[Rechecked]:
        """The records of one transaction: keyed ones read by their key columns, keyless ones
        by their watermark column, each kind in a few queries."""
        keyed = [spec.his_columns.get(name, name) for name in spec.key]
        watermark = self.watermark(spec.infno)
        done: list[Rechecked] = []
        for columns, group in ((keyed, [r for r in records if not r.business_key.startswith("#")]),
                               ([source.watermark_column], [r for r in records if r.business_key.startswith("#")])):
            keys: dict[int, tuple[Any, ...]] = {}
            for record in group:
                raw = json.loads(record.raw)
                values = tuple(raw.get(column) for column in columns)
                if any(value in (None, "") or isinstance(value, (dict, list)) for value in values):
                    done.append(Rechecked(record.id, spec.infno, record.business_key, False,
                                          f"its HIS row has no {', '.join(columns)} to be read again by"))
                else:
                    keys[record.id] = values
            if not keys:
                continue
            try:
                rows = source.read_by_keys(columns, sorted(set(keys.values()), key=str), watermark)
            except SourceError as exc:
                done += [Rechecked(r.id, spec.infno, r.business_key, False, f"cannot be read again: {exc}")
                         for r in group if r.id in keys]
                continue
            found: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
            for row in rows:
                found[_key_text(row.get(column) for column in columns)].append(row)
            done += [self._replace_one(spec, source, record, found.get(_key_text(keys[record.id]), []))
                     for record in group if record.id in keys]
        return done

    def _replace_one(self, spec: TransactionSpec, source: SqlSource, record: Any,
                     rows: list[dict[str, Any]]) -> Rechecked:
        def result(replaced: bool, note: str) -> Rechecked:
            return Rechecked(record.id, spec.infno, record.business_key, replaced, note)

        if not rows:
            return result(False, "the HIS query returns no row for it any more: left parked")
        if len(rows) > 1:
            return result(False, f"the HIS query returns {len(rows)} rows for its key: left parked")
        row = rows[0]
        entry = _entry(spec, row, _position(row.get(source.watermark_column)), utcnow())
        with self.store.begin() as conn:
            if entry["business_key"] != record.business_key:
                other = conn.execute(select(_record.c.id).where(
                    _record.c.infno == spec.infno, _record.c.business_key == entry["business_key"])).scalar()
                if other is not None:
                    return result(False, f"its HIS row now has the key {entry['business_key']}, which is "
                                         f"record {other}: left parked")
            if not _replace(conn, record.id, entry):
                return result(False, "changed while it was read again: left as it is")
        logger.info("record %d (%s %s) read again from the HIS", record.id, spec.infno, record.business_key,
                    extra={"action": "record_rechecked", "record_id": record.id})
        if entry["status"] == RecordStatus.PARKED.value:
            return result(True, f"read again, still {entry['park_reason']}")
        return result(True, "read again from the HIS; checked at the next cycle")


def _entry(spec: TransactionSpec, row: Mapping[str, Any], position: str, now: Any) -> dict[str, Any]:
    """The ledger row of one HIS row. One whose values cannot be read is parked malformed, with
    one log line: whatever is wrong with a row, it never stops the rows beside it."""
    try:
        entry = _read(spec, row, position, now)
    except DATA_ERRORS as exc:
        entry = _unreadable(spec, row, position, now, f"cannot be read ({type(exc).__name__}: {exc})")
    if entry["park_kind"] == ParkKind.MALFORMED.value:
        logger.warning("%s: %s", spec.infno, entry["park_reason"],
                       extra={"action": "row_malformed", "infno": spec.infno})
    return entry


def _read(spec: TransactionSpec, row: Mapping[str, Any], position: str, now: Any) -> dict[str, Any]:
    his = read_his_row(spec, row)
    raw = his.values
    record = normalise(spec, raw)
    key, group = plain(spec.key_of(record)), plain(spec.group_of(record))
    base = _base(spec, key, group, _RAW.encode(raw), now)
    problems = his.problems + unreadable_values(spec, raw)
    if not problems:
        fee_line = unreadable_fee_line(spec, record, raw, key)
        problems += [fee_line] if fee_line else []
    missing = [name for name in spec.key if not record.get(name)]
    if not problems and missing:
        problems.append(f"HIS row has no value for {', '.join(missing)} (the business key)")
    if len(key) > _KEY_LENGTH:
        problems.append(f"its business key is {len(key)} characters, more than the {_KEY_LENGTH} a key may have")
    if missing or len(key) > _KEY_LENGTH:  # keyed by its place in the HIS, so it is never dropped
        base["business_key"] = f"#{position}"
    if len(group) > _GROUP_LENGTH:
        problems.append(f"its {spec.group_field} is {len(group)} characters, too long to group messages by")
        base["group_key"] = f"{spec.group_prefix}:#{position}"[:_GROUP_LENGTH]
    if problems:
        _park(base, position, "; ".join(problems))
    return base


def _unreadable(spec: TransactionSpec, row: Mapping[str, Any], position: str, now: Any, reason: str) -> dict[str, Any]:
    """A row that could not even be read: kept as text, keyed by its place in the HIS."""
    raw = {plain(str(key)): _text(value)[:_KEPT] for key, value in row.items()}
    base = _base(spec, f"#{position}", f"{spec.group_prefix}:#{position}"[:_GROUP_LENGTH],
                 json.dumps(raw, ensure_ascii=False), now)
    return _park(base, position, reason)


def _base(spec: TransactionSpec, key: str, group: str, raw: str, now: Any) -> dict[str, Any]:
    return {
        "infno": spec.infno, "business_key": key, "group_key": group, "raw": raw, "payload": None,
        "message_id": None, "created_at": now, "updated_at": now, "status": RecordStatus.NEW.value,
        "park_kind": None, "park_reason": None,
    }


def _park(entry: dict[str, Any], position: str, reason: str) -> dict[str, Any]:
    entry.update(status=RecordStatus.PARKED.value, park_kind=ParkKind.MALFORMED.value,
                 park_reason=plain(f"malformed HIS row {position}: {reason}"))
    return entry


def _replaceable() -> ColumnElement[bool]:
    return and_(_record.c.status == RecordStatus.PARKED.value,
                _record.c.park_kind.in_([kind.value for kind in REPLACEABLE]))


def _replace_parked(conn: Any, infno: str, entries: Sequence[dict[str, Any]]) -> set[str]:
    """Entries whose business key names a record parked malformed, invalid or unmapped replace
    it (the last of a key, should the batch hold one twice); returns the keys replaced."""
    latest = {entry["business_key"]: entry for entry in entries}
    parked: dict[str, int] = {}
    replaceable = {kind.value for kind in REPLACEABLE}
    for chunk in in_chunks(sorted(latest)):
        # By the unique key alone, the state read here: a state condition in the query made
        # SQLite's planner read every parked record of the transaction for each batch.
        parked.update((row.business_key, row.id) for row in conn.execute(
            select(_record.c.business_key, _record.c.id, _record.c.status, _record.c.park_kind)
            .where(_record.c.infno == infno, _record.c.business_key.in_(chunk)))
            if row.status == RecordStatus.PARKED.value and row.park_kind in replaceable)
    replaced = set()
    for key, record_id in parked.items():
        if _replace(conn, record_id, latest[key]):
            replaced.add(key)
            logger.info("record %d (%s %s) was parked; the HIS sent its row again, which replaces it",
                        record_id, infno, key, extra={"action": "record_replaced", "record_id": record_id})
    return replaced


def _replace(conn: Any, record_id: int, entry: Mapping[str, Any]) -> bool:
    """The record takes the entry's row, key and state, if it is still parked replaceably (a
    record queued or sent meanwhile is never touched)."""
    result = conn.execute(update(_record).where(_record.c.id == record_id, _replaceable()).values(
        business_key=entry["business_key"], group_key=entry["group_key"], raw=entry["raw"], payload=None,
        message_id=None, status=entry["status"], park_kind=entry["park_kind"], park_reason=entry["park_reason"],
        updated_at=entry["updated_at"]))
    return bool(result.rowcount)


def _position(value: Any) -> str:
    """A row's watermark value as text: what the watermark table stores, and its place in the HIS."""
    return plain(_text(value))


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    try:
        return plain(str(value))
    except ValueError:  # an integer too long to write out
        return f"<{type(value).__name__} too long to show>"


def _key_text(values: Any) -> tuple[str, ...]:
    """A key's values as text, to match the rows read by key to their records (the HIS hands
    back its own types, the ledger kept them as JSON)."""
    return tuple(_text(value) for value in values)
