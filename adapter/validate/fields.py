"""A transaction's field table applied to one record: a HIS row read as the national record
(fields in the spec's order, numbers as exact decimals with the spec's places, date-times in
the national form), HIS codes mapped, and every field checked against its type and length.
Also the fee-line view of a record that the registered rules and the policy rules read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.plugin.api import EmptyNumber
from adapter.plugin.transactions import ChildSpec, FieldSpec, TransactionSpec
from adapter.records import MalformedRow, MappedFeeLine, MappingKind, fee_line_from_row

_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M:%S"}
#: what a HIS database hands over as a date-time, besides a datetime object
_DATETIME_INPUTS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f")

MappingTables = Mapping[MappingKind, Mapping[str, Any]]


def read_his_row(spec: TransactionSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A HIS row as stored in the ledger: child lists that the query returns as JSON text
    (json_group_array / json_agg) parsed, everything else as it came."""
    children = {child.node for child in spec.children}
    raw: dict[str, Any] = {}
    for key, value in row.items():
        if key in children and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = []
        raw[key] = value
    return raw


def normalise(spec: TransactionSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A HIS row as the national record: spec fields in order, numbers as exact decimals."""
    record: dict[str, Any] = {}
    for item in spec.fields:
        record[item.name] = _value(item, row.get(spec.his_columns.get(item.name, item.name)))
    for child in spec.children:
        entries = row.get(child.node) or []
        record[child.node] = [
            {item.name: _value(item, entry.get(item.name)) for item in child.fields}
            for entry in entries if isinstance(entry, Mapping)
        ]
    return record


def fill_defaults(record: dict[str, Any], defaults: Mapping[str, str]) -> None:
    """Values for empty fields ("node.field" for a child list), e.g. hosp_appr_flag."""
    for target, value in defaults.items():
        node, _, name = target.rpartition(".")
        for holder in (record.get(node) or []) if node else [record]:
            if holder.get(name) in (None, ""):
                holder[name] = value


def fill_empty_numbers(spec: TransactionSpec, record: dict[str, Any], empty_number: EmptyNumber) -> None:
    """Optional numbers still empty after the defaults, written as the region sends them
    (``RegionProfile.empty_number``): "null" leaves them None (JSON null); "zero" writes 0 with
    the field's decimals (Decimal 0.00 for a (16,2) amount, a JSON number). Required numbers are
    left empty for :func:`check_record` to report: a missing amount is not a zero."""
    if empty_number != "zero":
        return
    _zero_fill(spec.fields, [record])
    for child in spec.children:
        _zero_fill(child.fields, [e for e in record.get(child.node) or [] if isinstance(e, dict)])


def _zero_fill(fields: Sequence[FieldSpec], holders: list[dict[str, Any]]) -> None:
    for item in fields:
        if item.kind != "num" or item.required:
            continue
        zero = Decimal(0).quantize(Decimal(1).scaleb(-item.scale))
        for holder in holders:
            if holder.get(item.name) is None:
                holder[item.name] = zero


def apply_mappings(
    spec: TransactionSpec, record: dict[str, Any], tables: MappingTables
) -> list[tuple[MappingKind, str]]:
    """Write the national codes into the record; returns the HIS codes that have no mapping."""
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


def check_record(spec: TransactionSpec, record: Mapping[str, Any]) -> list[str]:
    """Problems with a record, each a sentence naming the field (empty: fine to send)."""
    problems = _check_fields(spec.fields, record, "")
    for child in spec.children:
        entries = record.get(child.node) or []
        if child.required and not entries:
            problems.append(f"{child.node}: at least one entry is required")
        for index, entry in enumerate(entries, start=1):
            problems += _check_fields(child.fields, entry, f"{child.node}[{index}].")
        problems += _check_list(child, entries)
    return problems


# -- the fee-line view --------------------------------------------------------------------
#: FeeLine field -> the national field of a fee-detail entry it is read from
_NATIONAL = {
    "mdtrt_id": "mdtrt_id", "psn_no": "psn_no", "feedetl_sn": "feedetl_sn", "fee_ocur_time": "fee_ocur_time",
    "cnt": "cnt", "pric": "pric", "det_item_fee_sumamt": "det_item_fee_sumamt", "med_type": "med_type",
    "init_feedetl_sn": "init_feedetl_sn", "drord_no": "drord_no", "rxno": "rxno", "prd_days": "prd_days",
    "dscg_tkdrug_flag": "dscg_tkdrug_flag", "his_dept_name": "bilg_dept_name", "his_doctor_name": "bilg_dr_name",
}
#: FeeLine field -> the national field whose HIS value (before mapping) it is
_HIS_CODES = {"his_item_code": "medins_list_codg", "his_dept_code": "bilg_dept_codg",
              "his_doctor_code": "bilg_dr_codg"}


def fee_entries(spec: TransactionSpec, record: Mapping[str, Any], raw: Mapping[str, Any]) -> Iterator[
        tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(entry of the national record, the HIS row or child entry it came from) per fee line."""
    if spec.fee_lines == ".":
        yield record, raw
    elif spec.fee_lines:
        raw_entries = raw.get(spec.fee_lines) or []
        for index, entry in enumerate(record.get(spec.fee_lines) or []):
            his = raw_entries[index] if index < len(raw_entries) and isinstance(raw_entries[index], Mapping) else {}
            yield entry, his


def fee_lines_of(
    spec: TransactionSpec, record: Mapping[str, Any], raw: Mapping[str, Any], key: str,
    names: Mapping[str, str] | None = None,
) -> list[MappedFeeLine]:
    """The fee lines of a (mapped) record for the registered and policy rules. HIS codes and
    facts (category, standard price, diagnosis, stay dates) come from the HIS row; ``names``
    gives the national item names (hilist_name) by national code. Raises MalformedRow when a
    line cannot be read (a missing code, a quantity that is not a number, a bad date)."""
    lines = []
    for entry, his in fee_entries(spec, record, raw):
        row: dict[str, Any] = {name: entry.get(national) for name, national in _NATIONAL.items()}
        for name, national in _HIS_CODES.items():
            column = spec.his_columns.get(national, national)
            row[name] = his.get(column) if his.get(column) not in (None, "") else entry.get(national)
        for name, column in {**_IDENTITY_FACTS, **spec.facts}.items():
            if his.get(column) not in (None, ""):
                row[name] = his[column]
        if spec.fee_lines != "." and not row.get("med_type"):
            row["med_type"] = "11"  # an outpatient batch: general outpatient
        line = fee_line_from_row(row, source_key=f"{spec.infno}:{key}:{entry.get('feedetl_sn')}")
        code = str(entry.get("med_list_codg") or "")
        lines.append(MappedFeeLine(line, code, str(entry.get("bilg_dept_codg") or ""),
                                   str(entry.get("bilg_dr_codg") or ""), (names or {}).get(code, "")))
    return lines


_IDENTITY_FACTS = {name: name for name in (
    "his_item_name", "his_item_category", "his_std_price", "er_flag", "main_diag_code", "injury_cause",
    "adm_time", "dscg_time", "insuplc_admdvs", "rxno", "prd_days", "dscg_tkdrug_flag")}


def unreadable_fee_line(spec: TransactionSpec, record: Mapping[str, Any], raw: Mapping[str, Any],
                        key: str) -> str | None:
    """Why the fee lines of a HIS row (``record``: the row normalised) cannot be read, or None
    (checked when a row is extracted)."""
    if not spec.fee_lines:
        return None
    try:
        fee_lines_of(spec, record, raw, key)
    except MalformedRow as exc:
        return str(exc)
    return None


def _value(item: FieldSpec, raw: Any) -> Any:
    if raw is None:
        return "" if item.kind != "num" else None
    if item.kind == "num":
        if not str(raw).strip():
            return None  # an empty number, however the HIS wrote it (see fill_empty_numbers)
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            return str(raw)  # reported by check_record
        if not number.is_finite():
            return number
        # Written with the spec's decimal places (12.5 -> 12.50 for a (16,2) amount); a value
        # with more places than the spec allows is left as it is for check_record to report,
        # unless the extra places are zeros (a REAL column's 2.5000000).
        places = Decimal(1).scaleb(-item.scale)
        if _decimals(number) <= item.scale or number == number.quantize(places):
            return number.quantize(places)
        return number
    if item.kind == "datetime":
        return _datetime_text(raw)
    if item.kind == "date" and isinstance(raw, datetime):
        return raw.strftime("%Y-%m-%d")
    return str(raw).strip()


def _datetime_text(raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.strftime("%Y-%m-%d %H:%M:%S")
    text = str(raw).strip()
    for fmt in _DATETIME_INPUTS:
        try:
            return datetime.strptime(text, fmt).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    return text  # reported by check_record


def _decimals(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _check_list(child: ChildSpec, entries: list[Mapping[str, Any]]) -> list[str]:
    problems = []
    for name in child.unique:
        seen: set[str] = set()
        for value in (str(entry.get(name) or "") for entry in entries):
            if value and value in seen:
                problems.append(f"{child.node}: {name} {value} occurs more than once")
            seen.add(value)
    for name in child.same:
        values = sorted({str(entry.get(name) or "") for entry in entries})
        if len(values) > 1:
            problems.append(f"{child.node}: {name} must be the same in every entry, found {', '.join(values)}")
    if child.amount is not None:
        total, quantity, price = child.amount
        for index, entry in enumerate(entries, start=1):
            amounts = [entry.get(total), entry.get(quantity), entry.get(price)]
            finite = [v for v in amounts if isinstance(v, Decimal) and v.is_finite()]
            if len(finite) == len(amounts):
                line_total, line_quantity, line_price = finite
                expected = (line_quantity * line_price).quantize(Decimal("0.01"))
                if abs(line_total - expected) > Decimal("0.01"):
                    problems.append(
                        f"{child.node}[{index}].{total} {line_total} is not {quantity} {line_quantity} x "
                        f"{price} {line_price} = {expected}"
                    )
    return problems


def _check_fields(fields: tuple[FieldSpec, ...], record: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    for item in fields:
        value = record.get(item.name)
        name = where + item.name
        if value in (None, ""):
            if item.required:
                problems.append(f"{name} is required but empty")
            continue
        before = len(problems)
        if item.kind == "num":
            if not isinstance(value, Decimal) or not value.is_finite():
                problems.append(f"{name} {value!r} is not a number")
                continue
            if _decimals(value) > item.scale:
                problems.append(f"{name} {value} has more than {item.scale} decimal places")
            if len(str(abs(int(value)))) > item.length - item.scale:
                problems.append(f"{name} {value} is too large ({item.length},{item.scale})")
        elif item.kind in _FORMATS:
            try:
                datetime.strptime(str(value), _FORMATS[item.kind])
            except ValueError:
                problems.append(f"{name} {value!r} is not a {item.kind} ({_FORMATS[item.kind]})")
        elif len(str(value)) > item.length:
            problems.append(f"{name} is {len(str(value))} characters, at most {item.length} allowed")
        if len(problems) == before:  # one problem per field: the form only once the type fits
            problems += _check_form(item, str(value), name)
    return problems


def _check_form(item: FieldSpec, text: str, name: str) -> list[str]:
    """A value the centre would read as a command (``reserved``), or not of the field's form
    (``pattern``)."""
    if item.reserved and re.fullmatch(item.reserved, text):
        return [f"{name} {text!r} is reserved: {item.reserved_text or 'the centre reads it as a command'}"]
    if item.pattern and not re.fullmatch(item.pattern, text):
        return [f"{name} {text!r} must be {item.pattern_text or 'of the form ' + item.pattern}"]
    return []


__all__ = ["apply_mappings", "check_record", "fee_entries", "fee_lines_of", "fill_defaults",
           "fill_empty_numbers", "normalise", "read_his_row", "unreadable_fee_line"]
