"""The generic record path for transactions described as data (:mod:`adapter.transactions`):
extract past a watermark, map HIS codes, check every field, spool one message per record.

Records land in the ``record`` ledger, unique per (infno, business key), in the same
transaction that advances the watermark, exactly like fee lines.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from adapter import jsonio
from adapter.extract.sql import SqlSource
from adapter.mapping.store import MappingKind, MappingRow, MappingStore, unmapped_reason
from adapter.policy.stage import BatchPolicy
from adapter.records import MalformedRow, MappedFeeLine, fee_line_from_row
from adapter.spool import outbox, schema
from adapter.spool.states import LineStatus, ParkKind
from adapter.spool.store import StateStore, utcnow
from adapter.spool.watermarks import read_watermark, save_watermark
from adapter.transactions import TransactionSpec, check_record, normalise

logger = logging.getLogger(__name__)

_record = schema.record
#: what a re-check of an unmapped record may change
_RECHECKED = ("status", "park_kind", "park_reason", "payload")


class RecordFlow:
    """Runs the enabled record transactions, in the configured order, over one state store."""

    def __init__(
        self,
        *,
        store: StateStore,
        specs: Mapping[str, TransactionSpec],
        sources: Mapping[str, SqlSource],
        batch_size: int,
        defaults: Mapping[str, Mapping[str, str]] | None = None,
        policy: BatchPolicy | None = None,
    ) -> None:
        """``defaults``: per infno, values the region puts into empty fields (see
        ``Dialect.record_defaults``)."""
        self.store = store
        self.defaults = dict(defaults or {})
        self.policy = policy
        self.specs = dict(specs)
        self.sources = dict(sources)
        self.batch_size = batch_size
        self.mappings = MappingStore(store)

    # -- extract, map, check -----------------------------------------------------------------
    def extract(self, infno: str) -> tuple[int, int]:
        """New HIS rows of one transaction into the ledger. Returns (ready, parked)."""
        spec, source = self.specs[infno], self.sources[infno]
        ready = parked = 0
        while True:
            with self.store.begin() as conn:
                watermark = read_watermark(conn, f"his.{infno}")
                tables = self.mappings.load(conn)
            rows = source.read_after(watermark, self.batch_size)
            if not rows:
                return ready, parked
            now = utcnow()
            entries = [self._entry(spec, row, tables, now) for row in rows]
            write_findings = self._policy_pass(spec, entries)
            ready += sum(1 for e in entries if e["status"] == LineStatus.READY.value)
            parked += sum(1 for e in entries if e["status"] == LineStatus.PARKED.value)
            with self.store.begin() as conn:
                self.store.insert_ignoring_duplicates(conn, _record, entries)
                write_findings(conn)
                save_watermark(conn, f"his.{infno}", str(rows[-1][source.watermark_column]))
            if len(rows) < self.batch_size:
                return ready, parked

    def recheck_unmapped(self) -> int:
        """Records parked for a missing mapping are tried again (after a mapping import)."""
        with self.store.begin() as conn:
            tables = self.mappings.load(conn)
            rows = conn.execute(
                select(_record.c.id, _record.c.infno, _record.c.raw).where(
                    _record.c.status == LineStatus.PARKED.value,
                    _record.c.park_kind == ParkKind.UNMAPPED.value,
                )
            ).all()
        now = utcnow()
        rechecked: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for row in rows:
            spec = self.specs.get(row.infno)
            if spec is not None:
                rechecked.setdefault(row.infno, []).append((row.id, self._entry(spec, json.loads(row.raw), tables, now)))
        changes = []
        writers = []
        for infno, found in rechecked.items():
            writers.append(self._policy_pass(self.specs[infno], [entry for _id, entry in found]))
            changes += [{"b_id": record_id, **{k: entry[k] for k in _RECHECKED}, "updated_at": now}
                        for record_id, entry in found if entry["park_kind"] != ParkKind.UNMAPPED.value]
        if changes:
            with self.store.begin() as conn:
                for write in writers:
                    write(conn)
                conn.execute(
                    update(_record)
                    .where(_record.c.id == bindparam("b_id"))
                    .values({name: bindparam(name) for name in (*_RECHECKED, "updated_at")}),
                    changes,
                )
        return sum(1 for c in changes if c["status"] == LineStatus.READY.value)

    def _entry(
        self, spec: TransactionSpec, row: Mapping[str, Any], tables: dict[MappingKind, dict[str, MappingRow]],
        now: Any,
    ) -> dict[str, Any]:
        raw = {key: _json_child(spec, key, value) for key, value in row.items()}
        record = normalise(spec, raw)
        _fill_defaults(record, self.defaults.get(spec.infno, {}))
        base = {
            "infno": spec.infno,
            "business_key": spec.key_of(record),
            "group_key": spec.group_of(record),
            "raw": json.dumps(raw, ensure_ascii=False, default=str),
            "payload": None,
            "message_id": None,
            "created_at": now,
            "updated_at": now,
        }
        missing = _apply_mappings(spec, record, tables)
        if missing:
            return {**base, **_parked(ParkKind.UNMAPPED, unmapped_reason(missing))}
        problems = check_record(spec, record)
        if problems:
            return {**base, **_parked(ParkKind.INVALID, f"{spec.infno} {base['business_key']}: " + "; ".join(problems))}
        return {
            **base, "status": LineStatus.READY.value, "park_kind": None, "park_reason": None,
            "payload": jsonio.dumps(spec.input_for(record)),
        }

    def _policy_pass(self, spec: TransactionSpec, entries: list[dict[str, Any]]) -> Callable[[Any], None]:
        """Run the policy rules over the ready entries of a batch (parking the ones a blocking
        finding stops, in place); returns the writer of the findings, to be called in the
        transaction that stores the entries."""
        ready = [e for e in entries if e["status"] == LineStatus.READY.value]
        if self.policy is None or not spec.policy_node or not ready:
            return lambda _conn: None
        history = self._policy_history(spec, {e["group_key"] for e in ready})
        batches = [(e["group_key"].split(":", 1)[1], _entry_lines(spec, e), history.get(e["group_key"], []))
                   for e in ready]
        reasons, write = self.policy.check_all(batches)
        for entry, reason in zip(ready, reasons, strict=True):
            if reason is not None:
                entry.update(_parked(ParkKind.INVALID, f"{spec.infno} {entry['business_key']}: {reason}"), payload=None)
        return write

    def _policy_history(self, spec: TransactionSpec, groups: set[str]) -> dict[str, list[MappedFeeLine]]:
        """group -> the policy lines of its records already on their way (ready, queued, sent)."""
        with self.store.begin() as conn:
            rows = conn.execute(select(_record.c.group_key, _record.c.payload, _record.c.raw, _record.c.business_key)
                                .where(_record.c.infno == spec.infno, _record.c.group_key.in_(list(groups)),
                                       _record.c.status.in_([LineStatus.READY.value, LineStatus.QUEUED.value,
                                                             LineStatus.SENT.value]))).all()
        history: dict[str, list[MappedFeeLine]] = {}
        for row in rows:
            history.setdefault(row.group_key, []).extend(_entry_lines(spec, row._mapping))
        return history

    # -- cancels of what never left -----------------------------------------------------------
    def settle_cancels(self) -> tuple[int, set[int]]:
        """Ready cancels (2302, 2205) wait until what they cancel has an answer from the centre.
        If it was acked the cancel goes; if it is parked here it never reached the centre, so
        it and the cancel are both closed as withdrawn instead of sending a cancel the centre
        would refuse. Returns (cancels closed, ids of cancels that must wait)."""
        closed, waiting = 0, set()
        for infno, spec in self.specs.items():
            if not spec.cancels:
                continue
            with self.store.begin() as conn:
                cancels = conn.execute(
                    select(_record.c.id, _record.c.business_key).where(
                        _record.c.infno == infno, _record.c.status == LineStatus.READY.value
                    )
                ).all()
                for cancel in cancels:
                    target = _cancel_target(conn, spec.cancels, cancel.business_key)
                    if target is None or target[3] == LineStatus.SENT.value:
                        continue  # unknown here (the centre will say) or uploaded: send the cancel
                    table, target_id, reason, status = target
                    if status != LineStatus.PARKED.value:
                        waiting.add(cancel.id)
                        continue
                    now = utcnow()
                    note = f"cancelled in the HIS ({infno}) before it reached the centre; was parked: {reason}"
                    conn.execute(update(table).where(table.c.id == target_id).values(
                        status=LineStatus.WITHDRAWN.value, park_reason=note, updated_at=now))
                    conn.execute(update(_record).where(_record.c.id == cancel.id).values(
                        status=LineStatus.WITHDRAWN.value, updated_at=now,
                        park_reason=f"nothing to cancel at the centre: {spec.cancels} {cancel.business_key} "
                                    "was never uploaded"))
                    closed += 1
        return closed, waiting

    # -- spool ------------------------------------------------------------------------------
    def build_messages(self, registering: bool, waiting: set[int] | None = None) -> int:
        """One message per ready record (these transactions carry one record each), either of
        the transactions that register a visit or of all the others; ``waiting`` records are
        left for a later cycle."""
        infnos = [i for i, spec in self.specs.items() if spec.registers_visit == registering]
        if not infnos:
            return 0
        with self.store.begin() as conn:
            rows = conn.execute(
                select(_record.c.id, _record.c.infno, _record.c.group_key, _record.c.payload, _record.c.raw)
                .where(_record.c.status == LineStatus.READY.value, _record.c.infno.in_(infnos))
                .order_by(_record.c.id)
            ).all()
        rows = [row for row in rows if row.id not in (waiting or set())]
        for row in rows:
            insuplc = json.loads(row.raw).get("insuplc_admdvs") or None
            with self.store.begin() as conn:
                outbox.spool_message(
                    conn, infno=row.infno, group_key=row.group_key, payload=jsonio.loads(row.payload),
                    line_ids=[], record_ids=[row.id], insuplc_admdvs=insuplc,
                )
        return len(rows)

    # -- visits -----------------------------------------------------------------------------
    def register_visit(self, group_key: str, mdtrt_id: str, msgid: str) -> None:
        """Remember the centre's mdtrt_id for a HIS visit (from the 2401 reply)."""
        his_key = group_key.split(":", 1)[1]
        with self.store.begin() as conn:
            conn.execute(schema.visit.delete().where(schema.visit.c.his_key == his_key))
            conn.execute(
                insert(schema.visit).values(
                    his_key=his_key, mdtrt_id=mdtrt_id, registered_by=msgid, registered_at=utcnow()
                )
            )

    def bind_visit(self, group_key: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Replace the HIS visit number by the centre's mdtrt_id, where the adapter registered it."""
        if not group_key.startswith("visit:"):
            return payload
        his_key = group_key.split(":", 1)[1]
        with self.store.begin() as conn:
            mdtrt_id = conn.execute(
                select(schema.visit.c.mdtrt_id).where(schema.visit.c.his_key == his_key)
            ).scalar()
        if mdtrt_id is None:
            return payload
        return _replace_value(payload, "mdtrt_id", his_key, mdtrt_id)


def _cancel_target(conn: Any, infno: str, business_key: str) -> tuple[Any, int, str, str] | None:
    """(table, id, park reason, status) of the upload a cancel names, if the adapter has it."""
    if infno == "2301":
        mdtrt_id, _, feedetl_sn = business_key.partition("|")
        table = schema.fee_line
        where = [table.c.mdtrt_id == mdtrt_id, table.c.feedetl_sn == feedetl_sn]
    else:
        table = _record
        where = [table.c.infno == infno, table.c.business_key == business_key]
    row = conn.execute(select(table.c.id, table.c.park_reason, table.c.status).where(*where)).first()
    return None if row is None else (table, row.id, row.park_reason or "", row.status)


def _apply_mappings(
    spec: TransactionSpec, record: dict[str, Any], tables: dict[MappingKind, dict[str, MappingRow]]
) -> list[tuple[MappingKind, str]]:
    missing: list[tuple[MappingKind, str]] = []
    for target, (kind, source) in spec.mapped.items():
        if "." in target:
            node, field_name = target.split(".", 1)
            holders = record.get(node) or []
        else:
            field_name, holders = target, [record]
        for holder in holders:
            code = str(holder.get(source) or "")
            if not code:
                continue  # an empty code is reported by the required-field check
            found = tables[kind].get(code)
            if found is None:
                missing.append((kind, code))
            else:
                holder[field_name] = found.national_code
    return sorted(set(missing))


def policy_lines(
    spec: TransactionSpec, record: Mapping[str, Any], raw: Mapping[str, Any], business_key: str
) -> list[MappedFeeLine]:
    """The entries of ``spec.policy_node`` as fee lines for the policy rules: national fields
    from the record, HIS facts (category, standard price, diagnosis) from the HIS row's
    underscore columns (``_category``, ``_std_price``, ``_item_name``, ``_main_diag``,
    ``_er_flag``), which are never sent."""
    lines = []
    raw_entries = raw.get(spec.policy_node) or []
    for index, entry in enumerate(record.get(spec.policy_node) or []):
        extra = raw_entries[index] if index < len(raw_entries) and isinstance(raw_entries[index], Mapping) else {}
        row = {
            "mdtrt_id": entry.get("mdtrt_id"), "psn_no": entry.get("psn_no"), "feedetl_sn": entry.get("feedetl_sn"),
            "fee_ocur_time": entry.get("fee_ocur_time"), "his_item_code": entry.get("medins_list_codg"),
            "his_item_name": extra.get("_item_name"), "cnt": entry.get("cnt"), "pric": entry.get("pric"),
            "det_item_fee_sumamt": entry.get("det_item_fee_sumamt"),
            "his_dept_code": extra.get("bilg_dept_codg") or entry.get("bilg_dept_codg"),
            "his_dept_name": entry.get("bilg_dept_name"),
            "his_doctor_code": extra.get("bilg_dr_codg") or entry.get("bilg_dr_codg"),
            "his_doctor_name": entry.get("bilg_dr_name"), "med_type": "11", "rxno": entry.get("rxno"),
            "prd_days": entry.get("prd_days"), "his_item_category": extra.get("_category"),
            "his_std_price": extra.get("_std_price"), "er_flag": extra.get("_er_flag"),
            "main_diag_code": extra.get("_main_diag") or entry.get("dise_codg"),
            "dscg_tkdrug_flag": entry.get("dscg_tkdrug_flag"),
        }
        try:
            line = fee_line_from_row(row, source_key=f"{spec.infno}:{business_key}:{entry.get('feedetl_sn')}")
        except MalformedRow:
            continue  # the field checks above already refused anything unreadable
        lines.append(MappedFeeLine(line, str(entry.get("med_list_codg") or ""), str(entry.get("bilg_dept_codg") or ""),
                                   str(entry.get("bilg_dr_codg") or "")))
    return lines


def _entry_lines(spec: TransactionSpec, entry: Mapping[str, Any]) -> list[MappedFeeLine]:
    """The policy lines of a ledger entry (its payload is the mapped record, raw the HIS row)."""
    payload = jsonio.loads(entry["payload"])
    return policy_lines(spec, {spec.policy_node: payload.get(spec.policy_node) or []}, json.loads(entry["raw"]),
                        entry["business_key"])


def _fill_defaults(record: dict[str, Any], defaults: Mapping[str, str]) -> None:
    for target, value in defaults.items():
        node, _, name = target.rpartition(".")
        for holder in (record.get(node) or []) if node else [record]:
            if holder.get(name) in (None, ""):
                holder[name] = value


def _parked(kind: ParkKind, reason: str) -> dict[str, Any]:
    return {"status": LineStatus.PARKED.value, "park_kind": kind.value, "park_reason": reason}


def _json_child(spec: TransactionSpec, key: str, value: Any) -> Any:
    # Child lists come from the HIS query as JSON text (json_group_array / json_agg).
    if isinstance(value, str) and any(child.node == key for child in spec.children):
        try:
            return json.loads(value)
        except ValueError:
            return []
    return value


def _replace_value(node: Any, key: str, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (new if k == key and v == old else _replace_value(v, key, old, new)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_replace_value(item, key, old, new) for item in node]
    return node
