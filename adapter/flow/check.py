"""Map and check: new records, and records parked for a missing mapping, become ready or are
parked with a reason a person can act on.

In order, for every record of every transaction: the HIS codes are mapped (目录对照), the
transaction's field table is checked, then the record's fee lines go through the registered
validation rules and the active catalogues, and the policy rules see each stay whole. A refund
whose original is parked here is held with it (specs with ``refund_of``).

A record whose data the checks cannot read (a value extracted before the HIS row was read
defensively, a rule that trips over it) is parked malformed with one log line; it never stops
the chunk it came in.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, and_, bindparam, or_, select, update
from sqlalchemy.exc import DataError

from adapter import jsonio
from adapter.catalog.check import CatalogView
from adapter.errors import StateStoreError
from adapter.flow import backlog
from adapter.flow.report import CycleReport
from adapter.mapping.store import MappingStore, unmapped_reason
from adapter.plugin.api import CatalogSpec, EmptyNumber, MappedFeeLine, TransactionSpec
from adapter.plugin.rules import RuleSet, Severity, blocking
from adapter.policy.stage import Candidate, PolicyStage
from adapter.progress import SILENT, Progress, Reporter
from adapter.records import MalformedRow, MappingKind
from adapter.spec.check import DictionaryCheck
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, utcnow
from adapter.validate.fields import (
    DATA_ERRORS,
    apply_mappings,
    check_record,
    fee_entries,
    fee_lines_of,
    fill_defaults,
    fill_empty_numbers,
    normalise,
    plain,
    read_codes,
    unreadable_values,
)

logger = logging.getLogger(__name__)

_record = schema.record
#: records taken per pass (memory stays flat however large the backlog)
CHUNK = 2000
#: records of a stay that count as charged (what the centre has or will get)
_CHARGED = (RecordStatus.READY.value, RecordStatus.QUEUED.value, RecordStatus.SENT.value)


@dataclass
class _Checked:
    """One record on its way through the checks."""

    id: int
    spec: TransactionSpec
    key: str
    group_key: str
    record: dict[str, Any]
    lines: list[MappedFeeLine]
    #: the columns of the ledger row to write
    changes: dict[str, Any]
    #: the record's transaction input as the dictionary check read it, written as its payload
    #: unless the record changed since (None: built again when it is written)
    kept_input: dict[str, Any] | None = None


class Check:
    def __init__(
        self,
        *,
        store: StateStore,
        specs: Mapping[str, TransactionSpec],
        rules: RuleSet,
        catalogues: Mapping[str, CatalogSpec],
        policy: PolicyStage | None,
        defaults: Mapping[str, Mapping[str, str]],
        exp_content: Callable[[MappedFeeLine], str],
        stop_event: threading.Event,
        empty_number: EmptyNumber = "null",
        code_readings: Mapping[str, Mapping[str, str]] | None = None,
        dictionaries: DictionaryCheck | None = None,
        progress: Reporter = SILENT,
    ) -> None:
        self.store = store
        self.progress = progress
        self.specs = dict(specs)
        self.rules = rules
        self.catalogues = catalogues
        self.policy = policy
        self.defaults = defaults
        self.code_readings = dict(code_readings or {})
        #: the edition's dictionaries, checked on every record before it can be sent
        self.dictionaries = dictionaries
        self.exp_content = exp_content
        self.stop_event = stop_event
        self.empty_number = empty_number
        self.mappings = MappingStore(store)

    def run(self, report: CycleReport) -> None:
        with self.progress.start("check", unit="records", remaining=lambda: backlog.records_in(
                self.store, self.specs, RecordStatus.NEW)) as task:
            self._run(report, task)

    def _run(self, report: CycleReport, task: Progress) -> None:
        last = 0
        while not self.stop_event.is_set():
            with self.store.begin() as conn:
                tables = self.mappings.load(conn)
                rows = conn.execute(
                    select(_record.c.id, _record.c.infno, _record.c.business_key, _record.c.group_key, _record.c.raw)
                    .where(
                        _record.c.id > last,
                        _record.c.infno.in_(list(self.specs)),
                        or_(
                            _record.c.status == RecordStatus.NEW.value,
                            and_(_record.c.status == RecordStatus.PARKED.value,
                                 _record.c.park_kind == ParkKind.UNMAPPED.value),
                        ),
                    )
                    .order_by(_record.c.id)
                    .limit(CHUNK)
                ).all()
            if not rows:
                return
            last = rows[-1].id
            self._check_chunk(rows, tables, report)
            task.advance(len(rows))

    def _check_chunk(self, rows: Sequence[Any], tables: Any, report: CycleReport) -> None:
        now = utcnow()
        names = {row.national_code: row.national_name for row in tables[MappingKind.ITEM].values()}
        items = [self._checked(row, tables, names, now, report) for row in rows]
        ready = [item for item in items if item.changes["status"] == RecordStatus.READY.value]
        self._check_fee_lines(ready, now, report)
        write_findings = self._check_policy(ready, now, report)
        self._hold_refunds(items, now)
        for item in items:
            if item.changes["status"] == RecordStatus.READY.value:
                self._payload(item, report)
        self._write(items, write_findings, report)

    def _checked(self, row: Any, tables: Any, names: Mapping[str, str], now: Any, report: CycleReport) -> _Checked:
        """One record mapped and checked; one whose data the checks cannot read is parked
        malformed instead of stopping the chunk."""
        try:
            return self._map_and_check(row, tables, names, now, report)
        except DATA_ERRORS as exc:
            item = _Checked(row.id, self.specs[row.infno], row.business_key, row.group_key, {}, [],
                            {"b_id": row.id, "updated_at": now})
            return _unreadable(item, "cannot be checked", exc, report)

    def _payload(self, item: _Checked, report: CycleReport) -> None:
        try:
            payload = item.kept_input if item.kept_input is not None else item.spec.input_for(item.record)
            item.changes["payload"] = jsonio.dumps(payload)
        except DATA_ERRORS as exc:
            _unreadable(item, "cannot be written as its message input", exc, report)
        else:
            report.ready += 1

    def _write(self, items: list[_Checked], write_findings: Callable[[Any], None], report: CycleReport) -> None:
        """The chunk's changes in one transaction. Should the state store refuse a value (longer
        than its column, a character it cannot hold), the records are written one by one and
        those refused are parked malformed; a store that fails still ends the cycle."""
        try:
            with self.store.begin() as conn:
                write_findings(conn)
                _write_changes(conn, [item.changes for item in items])
            return
        except (StateStoreError, ValueError) as exc:
            if not _refused(exc):
                raise
            logger.warning("the state store refused a value of %d record(s) (%s); writing them one by one",
                           len(items), exc, extra={"action": "write_refused"})
        try:
            with self.store.begin() as conn:
                write_findings(conn)
        except (StateStoreError, ValueError) as exc:
            if not _refused(exc):
                raise
            logger.error("policy findings not kept, the state store refused them: %s", exc,
                         extra={"action": "findings_refused"})
        for item in items:
            try:
                with self.store.begin() as conn:
                    _write_changes(conn, [item.changes])
            except (StateStoreError, ValueError) as exc:
                if not _refused(exc):
                    raise
                if item.changes["status"] == RecordStatus.READY.value:
                    report.ready -= 1
                item.changes = {"b_id": item.id, "updated_at": item.changes["updated_at"]}
                _unreadable(item, "was refused by the state store", exc, report)
                with self.store.begin() as conn:
                    _write_changes(conn, [item.changes])

    def _map_and_check(self, row: Any, tables: Any, names: Mapping[str, str], now: Any,
                       report: CycleReport) -> _Checked:
        spec = self.specs[row.infno]
        raw = json.loads(row.raw)
        record = normalise(spec, raw)
        fill_defaults(record, self.defaults.get(spec.infno, {}))
        read_codes(record, self.code_readings)
        fill_empty_numbers(spec, record, self.empty_number)
        item = _Checked(row.id, spec, row.business_key, row.group_key, record, [], {"b_id": row.id, "updated_at": now})
        unreadable = unreadable_values(spec, raw)
        if unreadable:  # a row extracted before it was read defensively
            report.malformed += 1
            return _park(item, ParkKind.MALFORMED, f"malformed HIS row {row.business_key}: " + "; ".join(unreadable))
        missing = apply_mappings(spec, record, tables)
        if missing:
            report.unmapped += 1
            return _park(item, ParkKind.UNMAPPED, unmapped_reason(missing))
        problems = check_record(spec, record)
        if not problems and self.dictionaries is not None:
            # Kept for the payload: input_for per record cost as much as the check itself.
            item.kept_input = spec.input_for(record)
            problems = self.dictionaries.problems(spec.infno, item.kept_input)
        if problems:
            report.invalid += 1
            return _park(item, ParkKind.INVALID, f"{spec.infno} {row.business_key}: " + "; ".join(problems))
        try:
            item.lines = fee_lines_of(spec, record, raw, row.business_key, names)
        except MalformedRow as exc:
            report.malformed += 1
            return _park(item, ParkKind.MALFORMED, f"malformed HIS row {row.business_key}: {exc}")
        item.changes.update(status=RecordStatus.READY.value, park_kind=None, park_reason=None)
        return item

    def _check_fee_lines(self, ready: list[_Checked], now: Any, report: CycleReport) -> None:
        """Registered rules and the catalogue rule over every fee line of the ready records."""
        with_lines = [item for item in ready if item.lines]
        if not with_lines:
            return
        catalogue = CatalogView(self.store, self.catalogues,
                                (m.med_list_codg for item in with_lines for m in item.lines))
        for item in with_lines:
            try:
                problems = self._line_problems(item, catalogue, report)
            except DATA_ERRORS as exc:
                _unreadable(item, "cannot have its fee lines checked", exc, report)
                continue
            if problems:
                report.invalid += 1
                _park(item, ParkKind.INVALID, "; ".join(problems))

    def _line_problems(self, item: _Checked, catalogue: CatalogView, report: CycleReport) -> list[str]:
        problems = []
        entries = [entry for entry, _his in fee_entries(item.spec, item.record, {})]
        for index, mapped in enumerate(item.lines):
            cap = catalogue.cap_for(mapped.med_list_codg)
            if cap is not None:
                mapped = item.lines[index] = dataclasses.replace(mapped, price_cap=cap[0], price_cap_source=cap[1])
            findings = self.rules.check(mapped) + catalogue.check(mapped)
            for finding in findings:
                if finding.severity is Severity.WARN:
                    report.warnings += 1
                    logger.info("record %d: [%s] %s", item.id, finding.rule_id, finding.message,
                                extra={"action": "finding_warn"})
            problems += [f"[{p.rule_id}] {p.message}" for p in blocking(findings)]
            entry = entries[index] if index < len(entries) else None
            if isinstance(entry, dict) and "exp_content" in entry and not entry["exp_content"]:
                written = self.exp_content(mapped)
                if written != entry["exp_content"] or type(written) is not type(entry["exp_content"]):
                    item.kept_input = None  # the input kept holds a copy of the record's own fields
                entry["exp_content"] = written
        return problems

    def _check_policy(self, ready: list[_Checked], now: Any, report: CycleReport) -> Callable[[Any], None]:
        """The policy rules over the stays of the ready records, with what those stays already
        have on its way to the centre."""
        candidates = [item for item in ready if item.lines and item.changes["status"] == RecordStatus.READY.value]
        if self.policy is None or not self.policy.enabled or not candidates:
            return lambda _conn: None
        history, known = self._stays(sorted({item.group_key for item in candidates}),
                                     {item.id: item.record for item in candidates})
        try:
            stopped, write = self.policy.check(
                [Candidate(item.id, _stay_key(item.group_key), item.lines) for item in candidates], history, known)
        except DATA_ERRORS:
            stopped, write = self._policy_by_stay(candidates, history, known, report)
        for item in candidates:
            reason = stopped.get(item.id)
            if reason is not None:
                report.invalid += 1
                _park(item, ParkKind.INVALID, reason)
        return write

    def _policy_by_stay(self, candidates: list[_Checked], history: Any, known: Any,
                        report: CycleReport) -> tuple[dict[int, str], Callable[[Any], None]]:
        """The policy rules stay by stay, once they failed over the chunk's stays together: the
        records of a stay they cannot read are parked malformed, the other stays judged as usual."""
        assert self.policy is not None
        by_stay: dict[str, list[_Checked]] = defaultdict(list)
        for item in candidates:
            by_stay[_stay_key(item.group_key)].append(item)
        stopped: dict[int, str] = {}
        writes: list[Callable[[Any], None]] = []
        for stay, items in by_stay.items():
            try:
                found, write = self.policy.check([Candidate(item.id, stay, item.lines) for item in items],
                                                 history, known)
            except DATA_ERRORS as exc:
                for item in items:
                    _unreadable(item, f"cannot be judged by the policy rules (stay {stay})", exc, report)
                continue
            stopped.update(found)
            writes.append(write)

        def write_all(conn: Any) -> None:
            for write in writes:
                write(conn)

        return stopped, write_all

    def _stays(self, groups: list[str], read: Mapping[int, dict[str, Any]]
               ) -> tuple[dict[str, list[tuple[int, MappedFeeLine]]], dict[str, set[str]]]:
        """Per stay: the fee lines of its records already ready, queued or sent, and every
        feedetl_sn held for it. ``read``: records of this chunk already normalised (by id),
        not read again."""
        fee_infnos = [infno for infno, spec in self.specs.items() if spec.fee_lines]
        history: dict[str, list[tuple[int, MappedFeeLine]]] = defaultdict(list)
        known: dict[str, set[str]] = defaultdict(set)
        with self.store.begin() as conn:
            for chunk in in_chunks(groups):
                rows = conn.execute(
                    select(_record.c.id, _record.c.infno, _record.c.group_key, _record.c.business_key,
                           _record.c.status, _record.c.raw, _record.c.payload)
                    .where(_record.c.group_key.in_(chunk), _record.c.infno.in_(fee_infnos))
                    .order_by(_record.c.id)
                ).all()
                for row in rows:
                    try:
                        self._add_to_stay(row, history, known, read.get(row.id))
                    except DATA_ERRORS:  # a record the checks could not read: it adds nothing
                        logger.debug("record %d left out of its stay's history", row.id)
        return history, known

    def _add_to_stay(self, row: Any, history: dict[str, list[tuple[int, MappedFeeLine]]],
                     known: dict[str, set[str]], record: dict[str, Any] | None) -> None:
        spec, stay = self.specs[row.infno], _stay_key(row.group_key)
        charged = row.status in _CHARGED and row.payload
        # The HIS row is read only where it is needed: a record of this chunk (``record``) was
        # read from the same raw moments ago, and its feedetl_sn values are in the record.
        raw = json.loads(row.raw) if charged or record is None else {}
        if charged:
            record = spec.record_from_input(jsonio.loads(row.payload))
            try:
                history[stay] += [(row.id, m) for m in fee_lines_of(spec, record, raw, row.business_key)]
            except MalformedRow:
                pass
        known[stay].update(str(entry.get("feedetl_sn") or "")
                           for entry, _his in fee_entries(spec, record if record is not None else normalise(spec, raw),
                                                          raw))

    def _hold_refunds(self, items: list[_Checked], now: Any) -> None:
        """A refund must not reach the centre while its original is held back here. One query
        finds which of the refunded originals are parked, however many refunds."""
        refunds = []
        for item in items:
            if item.changes["status"] != RecordStatus.READY.value or item.spec.refund_of is None:
                continue
            refund_field, key_field = item.spec.refund_of
            original = item.record.get(refund_field)
            if original:
                refunds.append((item, original, item.spec.key_of({**item.record, key_field: original})))
        if not refunds:
            return
        held = {(i.spec.infno, i.key) for i in items if i.changes["status"] == RecordStatus.PARKED.value}
        wanted = sorted({key for _, _, key in refunds})
        infnos = sorted({item.spec.infno for item, _, _ in refunds})  # a refund is of its own transaction
        with self.store.begin() as conn:
            for chunk in in_chunks(wanted):
                # By the unique key, the state read here (a state condition in the query made
                # SQLite's planner read every parked record instead).
                held.update(
                    (row.infno, row.business_key) for row in conn.execute(
                        select(_record.c.infno, _record.c.business_key, _record.c.status).where(
                            _record.c.infno.in_(infnos), _record.c.business_key.in_(chunk)))
                    if row.status == RecordStatus.PARKED.value
                )
        for item, original, key in refunds:
            if (item.spec.infno, key) in held:
                _park(item, ParkKind.INVALID, f"refund of line {original}, which is parked; resolve that line first")


def _park(item: _Checked, kind: ParkKind, reason: str) -> _Checked:
    item.changes.update(status=RecordStatus.PARKED.value, park_kind=kind.value, park_reason=plain(reason))
    item.changes.pop("payload", None)
    return item


def _unreadable(item: _Checked, what: str, exc: Exception, report: CycleReport) -> _Checked:
    """Park a record a check could not read, with one log line."""
    report.malformed += 1
    reason = f"record {item.id} ({item.spec.infno} {item.key}) {what}: {type(exc).__name__}: {exc}"
    logger.warning("%s; parked as malformed", plain(reason),
                   extra={"action": "record_unreadable", "record_id": item.id})
    return _park(item, ParkKind.MALFORMED, reason)


def _write_changes(conn: Any, changes: list[dict[str, Any]]) -> None:
    # executemany needs one statement per set of columns.
    by_columns: dict[frozenset[str], list[dict[str, Any]]] = defaultdict(list)
    for change in changes:
        by_columns[frozenset(change)].append(change)
    for columns, chunk in by_columns.items():
        values: dict[str, BindParameter[Any]] = {name: bindparam(name) for name in columns if name != "b_id"}
        conn.execute(update(_record).where(_record.c.id == bindparam("b_id")).values(**values), chunk)


def _refused(exc: Exception) -> bool:
    """Whether the state store refused a value (too long for its column, a character it cannot
    encode) rather than failed (locked, gone): only then is a record at fault."""
    return isinstance(exc, ValueError) or isinstance(exc.__cause__, DataError)


def _stay_key(group_key: str) -> str:
    return group_key.split(":", 1)[1]
