"""A transaction's field table applied to one record: a HIS row read as the national record
(fields in the spec's order, numbers as exact decimals with the spec's places, date-times in
the national form), HIS codes mapped, and every field checked against its type and length.
Also the fee-line view of a record that the registered rules and the policy rules read.

A HIS row is read defensively (:func:`read_his_row`, :func:`unreadable_values`): bytes, text
that is not UTF-8 or not Unicode, control characters, numbers that are no numbers or do not fit
their field, fee dates no charge can have. Such a row is parked as malformed with the column and
the reason; it never stops the rows beside it.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Context, Decimal, InvalidOperation
from typing import Any

from adapter import moments
from adapter.plugin.api import EmptyNumber
from adapter.plugin.transactions import ChildSpec, FieldSpec, TransactionSpec
from adapter.records import MalformedRow, MappedFeeLine, MappingKind, fee_line_from_row

_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M:%S"}
#: what a HIS database hands over as a date-time, besides a datetime object
_DATETIME_INPUTS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f")

#: What reading a value of an unexpected form raises in the standard library (Decimal, int(),
#: strptime, json, str.encode, a key or an index a row does not have): a problem of one record's
#: data, so the stages park that record and go on. Anything else (AttributeError, NameError...)
#: is a bug and still ends the cycle with a traceback.
DATA_ERRORS: tuple[type[Exception], ...] = (ValueError, ArithmeticError, TypeError, LookupError)

#: A fee dated before this is a typo, not a charge: medical insurance of this interface (and
#: its settlement) did not exist then, and 1900-01-01 is what many HIS front ends store for
#: "no date".
EARLIEST_FEE_DATE = datetime(2000, 1, 1)
#: A fee dated more than this after now is a typo too (2099-12-31 is another "no date"); the
#: day of slack lets a HIS clock a few hours off, or in another time zone, through.
FEE_DATE_LEEWAY = timedelta(days=1)
#: The fields that say when a charge happened, read against that window (in the record and in
#: its child lists: 2301 and 2204 feedetail). Other dates may well be old (a birth date) or
#: ahead (an expiry date).
FEE_DATE_FIELDS = frozenset({"fee_ocur_time"})
#: Control characters (Unicode Cc) other than tab, line feed and carriage return, and lone
#: surrogates: no HIS value means them, and a NUL cannot even be stored in PostgreSQL text.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
#: the column every transaction's messages take the insured person's area from (build stage)
_AREA_COLUMN = "insuplc_admdvs"
_AREA = re.compile(r"[0-9]{6}")

MappingTables = Mapping[MappingKind, Mapping[str, Any]]


@dataclass(frozen=True)
class HisRow:
    """A HIS row as the ledger stores it (text, numbers and JSON any state database takes), and
    what could not be read as it came, each problem naming the column."""

    values: dict[str, Any]
    problems: list[str]


def read_his_row(spec: TransactionSpec, row: Mapping[str, Any]) -> HisRow:
    """A HIS row as stored in the ledger: child lists that the query returns as JSON text
    (json_group_array / json_agg) parsed, bytes decoded, every value made storable. What cannot
    be read so (bytes that are not UTF-8, a lone surrogate, a child list that is not a JSON list
    of objects) is a problem of the row; its value is kept in a readable escaped form."""
    children = {child.node for child in spec.children}
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in row.items():
        column = str(key)
        # Nearly every value is printable text, an integer or none, storable as it is: only
        # the others go through _storable's checks (the same answer, at a fraction of the cost).
        kind = type(value)
        if not (value is None or kind is int or (kind is str and value.isprintable())):
            value = _storable(value, column, problems)
        if column in children:
            value = _child_list(value, column, problems)
        values[column] = value
    return HisRow(values, problems)


def unreadable_values(spec: TransactionSpec, raw: Mapping[str, Any], now: datetime | None = None) -> list[str]:
    """What makes the values of a HIS row as stored (``raw``) unreadable as the transaction's
    record, each naming the column: control characters in any text, a number field that holds
    no finite number or more digits than the field has, a fee date outside the sane window, an
    area code that is none. Empty: the row can be checked (the field table, the rules) as it is."""
    problems = [f"column {where} holds {_character(text, index)}" for where, text, index in _unsafe_texts(raw)]
    now = now or datetime.now()
    for where, item, value in _fields_of(raw, _read_defensively(spec)):
        problem = _number_problem(item, value) if item.kind == "num" else None
        if problem is None and item.name in FEE_DATE_FIELDS:
            problem = _fee_date_problem(value, now)
        if problem is not None:
            problems.append(f"column {where} {problem}")
    area = raw.get(_AREA_COLUMN)
    if area not in (None, "") and not _AREA.fullmatch(str(area).strip()):
        problems.append(f"column {_AREA_COLUMN} {_shown(area)} is not a 6-digit area code (参保地医保区划)")
    return problems


def plain(text: str) -> str:
    """``text`` with every control character and lone surrogate written as an escape (\\x00,
    \\ud800): storable in any database column, and readable in a log line or a park reason."""
    if text.isprintable() or _UNSAFE.search(text) is None:  # every unsafe character is unprintable
        return text
    return _UNSAFE.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def normalise(spec: TransactionSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A HIS row as the national record: spec fields in order, numbers as exact decimals."""
    top, children = _readers(spec)
    record = {name: read(row.get(column)) for column, name, read in top}
    for node, fields in children:
        entries = row.get(node) or []
        record[node] = [{name: read(entry.get(name)) for name, read in fields}
                        for entry in entries if isinstance(entry, Mapping)]
    return record


def fill_defaults(record: dict[str, Any], defaults: Mapping[str, str]) -> None:
    """Values for empty fields ("node.field" for a child list), e.g. hosp_appr_flag."""
    for target, value in defaults.items():
        node, _, name = target.rpartition(".")
        for holder in (record.get(node) or []) if node else [record]:
            if holder.get(name) in (None, ""):
                holder[name] = value


def read_codes(record: dict[str, Any], readings: Mapping[str, Mapping[str, str]]) -> None:
    """Codes the HIS writes as the national baseline does, rewritten the way the region's edition
    writes them (``RegionProfile.code_readings``; "node.field" for a child list): hunan's 2101
    普通住院 for the baseline's 21."""
    for target, table in readings.items():
        node, _, name = target.rpartition(".")
        for holder in (record.get(node) or []) if node else [record]:
            value = holder.get(name) if isinstance(holder, dict) else None
            if isinstance(value, str) and value in table:
                holder[name] = table[value]


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
    his_codes, facts = _fee_columns(spec)
    outpatient = spec.fee_lines != "."
    lines = []
    for entry, his in fee_entries(spec, record, raw):
        row: dict[str, Any] = {name: entry.get(national) for name, national in _NATIONAL.items()}
        for name, column, national in his_codes:
            value = his.get(column)
            row[name] = value if value not in (None, "") else entry.get(national)
        for name, column in facts:
            if his.get(column) not in (None, ""):
                row[name] = his[column]
        if outpatient and not row.get("med_type"):
            row["med_type"] = "11"  # an outpatient batch: general outpatient
        line = fee_line_from_row(row, source_key=f"{spec.infno}:{key}:{entry.get('feedetl_sn')}")
        code = str(entry.get("med_list_codg") or "")
        lines.append(MappedFeeLine(line, code, str(entry.get("bilg_dept_codg") or ""),
                                   str(entry.get("bilg_dr_codg") or ""), (names or {}).get(code, "")))
    return lines


#: (FeeLine field, HIS column, national field) of each HIS code; (FeeLine field, HIS column) of each fact
_FeeColumns = tuple[tuple[tuple[str, str, str], ...], tuple[tuple[str, str], ...]]
#: per spec (by id, the spec kept alive beside it): the HIS columns fee_lines_of reads
_FEE_COLUMNS: dict[int, tuple[TransactionSpec, _FeeColumns]] = {}


def _fee_columns(spec: TransactionSpec) -> _FeeColumns:
    """(FeeLine field, HIS column, national field) of each HIS code, and (FeeLine field, HIS
    column) of each fact, worked out once per spec rather than per line."""
    known = _FEE_COLUMNS.get(id(spec))
    if known is None or known[0] is not spec:
        his_codes = tuple((name, spec.his_columns.get(national, national), national)
                          for name, national in _HIS_CODES.items())
        known = _FEE_COLUMNS[id(spec)] = (spec, (his_codes, tuple({**_IDENTITY_FACTS, **spec.facts}.items())))
    return known[1]


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


#: (HIS column, field name, reader) of the record, and (node, (field name, reader)) of each child
_Readers = tuple[tuple[tuple[str, str, Callable[[Any], Any]], ...],
                 tuple[tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]], ...]]
#: per spec (by id, the spec kept alive beside it): how normalise reads each field
_READERS: dict[int, tuple[TransactionSpec, _Readers]] = {}


def _readers(spec: TransactionSpec) -> _Readers:
    """Each field's reader, chosen once per spec by its kind: a row is read without asking
    every field's kind again for every value."""
    known = _READERS.get(id(spec))
    if known is None or known[0] is not spec:
        known = _READERS[id(spec)] = (spec, (
            tuple((column, item.name, _reader(item)) for column, item in spec.field_columns),
            tuple((child.node, tuple((item.name, _reader(item)) for item in child.fields))
                  for child in spec.children)))
    return known[1]


def _reader(item: FieldSpec) -> Callable[[Any], Any]:
    if item.kind == "num":
        return functools.partial(_number_value, item.length, item.scale)
    if item.kind == "datetime":
        return _datetime_value
    if item.kind == "date":
        return _date_value
    return _text_value


def _text_value(raw: Any) -> str:
    return "" if raw is None else str(raw).strip()


def _date_value(raw: Any) -> str:
    if raw is None:
        return ""
    return raw.strftime("%Y-%m-%d") if isinstance(raw, datetime) else str(raw).strip()


def _datetime_value(raw: Any) -> str:
    return "" if raw is None else _datetime_text(raw)


def _number_value(length: int, scale: int, raw: Any) -> Any:
    return None if raw is None else _number_of_text(str(raw), length, scale)


@functools.lru_cache(maxsize=8192)
def _number_of_text(text: str, length: int, scale: int) -> Any:
    """A number field's value from its text (``str`` of what the HIS gave). Cached: quantities,
    prices and many amounts repeat from line to line, and a Decimal is immutable."""
    stripped = text.strip()
    if not stripped:
        return None  # an empty number, however the HIS wrote it (see fill_empty_numbers)
    try:
        number = Decimal(stripped)
    except InvalidOperation:
        return text  # reported by check_record
    if not number.is_finite() or _integer_digits(number) > length - scale:
        return number  # reported by check_record (1E+400 cannot even be written with places)
    # Written with the spec's decimal places (12.5 -> 12.50 for a (16,2) amount); a value
    # with more places than the spec allows is left as it is for check_record to report,
    # unless the extra places are zeros (a REAL column's 2.5000000).
    places, exact = _quantum(length, scale)
    if _decimals(number) <= scale or number == number.quantize(places, context=exact):
        return number.quantize(places, context=exact)
    return number


def _datetime_text(raw: Any) -> str:
    if isinstance(raw, datetime):
        return raw.strftime("%Y-%m-%d %H:%M:%S")
    return _datetime_of_text(str(raw))


@functools.lru_cache(maxsize=4096)
def _datetime_of_text(text: str) -> str:
    """A date-time's text in the national form (cached: a stay's lines share their times)."""
    text = text.strip()
    if moments.is_canonical(text):
        return text  # already as the interface writes it
    for fmt in _DATETIME_INPUTS:
        try:
            return moments.parse(text, fmt).strftime("%Y-%m-%d %H:%M:%S")
        except ValueError:
            continue
    return text  # reported by check_record


@functools.lru_cache(maxsize=256)
def _quantum(length: int, scale: int) -> tuple[Decimal, Context]:
    """A (length, scale) field's decimal places, and a context its digits always fit in."""
    return Decimal(1).scaleb(-scale), Context(prec=max(28, length + 1))


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
    problems: list[str] = []
    for item, name, kind, required, formed in _checked_fields(fields):
        value = record.get(name)
        if value is None or value == "":
            if required:
                problems.append(f"{where}{name} is required but empty")
            continue
        if kind == "num":
            if not isinstance(value, Decimal) or not value.is_finite():
                problems.append(f"{where}{name} {value!r} is not a number")
                continue
            too_precise = _decimals(value) > item.scale
            if too_precise:
                problems.append(f"{where}{name} {value} has more than {item.scale} decimal places")
            if _integer_digits(value) > item.length - item.scale:
                problems.append(f"{where}{name} {value} is too large ({item.length},{item.scale})")
                continue
            if too_precise:
                continue
        elif kind in _FORMATS:
            if not _reads_as(str(value), _FORMATS[kind]):
                problems.append(f"{where}{name} {value!r} is not a {kind} ({_FORMATS[kind]})")
                continue
        elif len(str(value)) > item.length:
            problems.append(f"{where}{name} is {len(str(value))} characters, at most {item.length} allowed")
            continue
        if formed:  # one problem per field: the form only once the type fits
            problems += _check_form(item, str(value), where + name)
    return problems


#: (field, name, kind, required, has a reserved value or a pattern) of each field
_CheckedField = tuple[FieldSpec, str, str, bool, bool]
#: per field table (by id, the table kept alive beside it): what _check_fields reads of each field
_CHECKED: dict[int, tuple[tuple[FieldSpec, ...], tuple[_CheckedField, ...]]] = {}


def _checked_fields(fields: tuple[FieldSpec, ...]) -> tuple[_CheckedField, ...]:
    """What :func:`_check_fields` reads of every field, looked up once per field table rather
    than attribute by attribute for every value of every record."""
    known = _CHECKED.get(id(fields))
    if known is None or known[0] is not fields:
        known = _CHECKED[id(fields)] = (fields, tuple(
            (item, item.name, item.kind, item.required, bool(item.reserved or item.pattern)) for item in fields))
    return known[1]


@functools.lru_cache(maxsize=4096)
def _reads_as(text: str, fmt: str) -> bool:
    """Whether ``text`` is a date or date-time of ``fmt`` (cached: a stay's times repeat)."""
    try:
        moments.parse(text, fmt)
    except ValueError:
        return False
    return True


def _check_form(item: FieldSpec, text: str, name: str) -> list[str]:
    """A value the centre would read as a command (``reserved``), or not of the field's form
    (``pattern``)."""
    if item.reserved and re.fullmatch(item.reserved, text):
        return [f"{name} {text!r} is reserved: {item.reserved_text or 'the centre reads it as a command'}"]
    if item.pattern and not re.fullmatch(item.pattern, text):
        return [f"{name} {text!r} must be {item.pattern_text or 'of the form ' + item.pattern}"]
    return []




# -- reading a HIS row defensively ----------------------------------------------------------
#: how much of a bad value a problem shows
_SHOWN = 40


def _storable(value: Any, where: str, problems: list[str]) -> Any:
    """A value as the ledger can store it (JSON with ``default=str``, UTF-8 text)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(f"column {where} is not UTF-8 text (bytes {data[:12].hex(' ')}"
                            f"{' ...' if len(data) > 12 else ''})")
            return data.decode("utf-8", "backslashreplace")
    if isinstance(value, str):
        if value.isprintable():  # a lone surrogate is unprintable: nothing to look for
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            problems.append(f"column {where} holds {_character(value, exc.start)}")
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and Infinity are no JSON; the number check names them
    if isinstance(value, Mapping):
        return {str(k): _storable(v, f"{where}.{k}", problems) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v, f"{where}[{i}]", problems) for i, v in enumerate(value, start=1)]
    if value is None or isinstance(value, (bool, int, Decimal, datetime, date)):
        return value
    return str(value)  # a driver's own type (UUID, interval...): its text


def _child_list(value: Any, column: str, problems: list[str]) -> Any:
    """A child list column: JSON text parsed (numbers as exact decimals), checked to be a list
    of objects. What is none is kept as it came (the record reads it as no entries)."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value, parse_float=Decimal, parse_constant=str)
        except ValueError as exc:
            problems.append(f"column {column} is not a JSON list ({exc})")
            return value  # kept as it came, for a person to see; it reads as no entries
        value = _storable(parsed, column, problems)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"column {column} is {type(value).__name__}, not a list of entries")
        return value
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, Mapping):
            problems.append(f"column {column} entry {index} is {_shown(entry)}, not an object")
    return value


def _unsafe_texts(raw: Mapping[str, Any], where: str = "") -> Iterator[tuple[str, str, int]]:
    """(column, text, index) of the first unsafe character of every text that has one."""
    for key, value in raw.items():
        if value is None or type(value) is int:  # most values: nothing to look for, no ABC check
            continue
        if isinstance(value, str):
            if value.isprintable():  # every unsafe character is unprintable
                continue
            match = _UNSAFE.search(value)
            if match is not None:
                yield f"{where}{key}", value, match.start()
        elif isinstance(value, Mapping):
            yield from _unsafe_texts(value, f"{where}{key}.")
        elif isinstance(value, list):
            for index, entry in enumerate(value, start=1):
                if isinstance(entry, Mapping):
                    yield from _unsafe_texts(entry, f"{where}{key}[{index}].")


def _fields_of(raw: Mapping[str, Any], wanted: _Fields) -> Iterator[tuple[str, FieldSpec, Any]]:
    """(column, field, value) of each ``wanted`` field in the record and in its child entries."""
    top, children = wanted
    for column, item in top:
        yield column, item, raw.get(column)
    for node, fields in children:
        entries = raw.get(node)
        for index, entry in enumerate(entries if isinstance(entries, list) else [], start=1):
            if isinstance(entry, Mapping):
                for item in fields:
                    yield f"{node}[{index}].{item.name}", item, entry.get(item.name)


#: (column, field) of the record, and (node, fields) of each child list
_Fields = tuple[tuple[tuple[str, FieldSpec], ...], tuple[tuple[str, tuple[FieldSpec, ...]], ...]]
#: per spec (by id, the spec kept alive beside it): the fields unreadable_values reads
_DEFENSIVE: dict[int, tuple[TransactionSpec, _Fields]] = {}


def _read_defensively(spec: TransactionSpec) -> _Fields:
    """The fields whose values :func:`unreadable_values` reads (numbers and fee dates), worked
    out once per spec rather than per row."""
    known = _DEFENSIVE.get(id(spec))
    if known is None or known[0] is not spec:
        def read(item: FieldSpec) -> bool:
            return item.kind == "num" or item.name in FEE_DATE_FIELDS
        known = _DEFENSIVE[id(spec)] = (spec, (
            tuple((column, item) for column, item in spec.field_columns if read(item)),
            tuple((child.node, tuple(item for item in child.fields if read(item))) for child in spec.children)))
    return known[1]


def _number_problem(item: FieldSpec, value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (Mapping, list)):
        return f"holds {type(value).__name__}, not a number"
    return _number_text_problem(str(value), item.length, item.scale)


@functools.lru_cache(maxsize=8192)
def _number_text_problem(text: str, length: int, scale: int) -> str | None:
    """What is wrong with a number's text (``str`` of the value) for a (length, scale) field;
    cached, as the same quantities and prices come again and again."""
    if not text.strip():
        return None
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return f"{_shown(text)} is not a number"
    if not number.is_finite():
        return f"{_shown(text)} is not a finite number"
    digits, allowed = _integer_digits(number), length - scale
    if digits > allowed:
        return (f"{_shown(text)} has {digits} digits before the decimal point, at most {allowed} allowed "
                f"({length},{scale})")
    return None


def _fee_date_problem(value: Any, now: datetime) -> str | None:
    """A fee date outside [EARLIEST_FEE_DATE, now + FEE_DATE_LEEWAY]; one that is no date-time
    at all is left to the field table."""
    if value is None or isinstance(value, (Mapping, list)):
        return None
    try:
        when = value if isinstance(value, datetime) else _moment_of_text(str(value))
    except ValueError:  # an integer too long to write out: no date-time either
        return None
    if when is None:
        return None
    if when < EARLIEST_FEE_DATE:
        return f"{_shown(value)} is before {EARLIEST_FEE_DATE:%Y-%m-%d}: no charge is that old (a placeholder date?)"
    if when > now + FEE_DATE_LEEWAY:
        return f"{_shown(value)} is more than a day in the future: no charge has happened yet then"
    return None


@functools.lru_cache(maxsize=4096)
def _moment_of_text(text: str) -> datetime | None:
    """The date-time a text holds, read as the field table reads it; None: it is none."""
    try:
        return moments.parse(_datetime_of_text(text), _FORMATS["datetime"])
    except ValueError:
        return None


def _character(text: str, index: int) -> str:
    code = ord(text[index])
    what = "a lone surrogate (not text)" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{what} U+{code:04X} at position {index + 1}"


def _shown(value: Any) -> str:
    text = plain(str(value))
    return repr(text if len(text) <= _SHOWN else text[:_SHOWN] + "...")


def _integer_digits(number: Decimal) -> int:
    """Digits before the decimal point, as the field tables count them (0.5 and 0 have one),
    without building the integer (1E+999999999 would not fit in memory)."""
    return 1 if number.is_zero() else max(number.adjusted() + 1, 1)


__all__ = ["DATA_ERRORS", "EARLIEST_FEE_DATE", "FEE_DATE_FIELDS", "FEE_DATE_LEEWAY", "HisRow", "apply_mappings",
           "check_record", "fee_entries", "fee_lines_of", "fill_defaults", "fill_empty_numbers", "normalise", "plain",
           "read_his_row", "unreadable_fee_line", "unreadable_values"]
