"""Record transactions described as data: which fields a transaction carries, their types and
lengths (reference §3), its business key, and how its records are grouped and mapped.

A region profile lists the transactions it speaks (``RegionProfile.transactions``); the generic
record flow (:mod:`adapter.record_flow`) extracts, maps, checks, spools and sends any of them.
2301 fee details keep their own richer path (refund holding, per-line blame).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from adapter.mapping.store import MappingKind

FieldKind = Literal["str", "num", "date", "datetime"]

_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M:%S"}


@dataclass(frozen=True)
class FieldSpec:
    """One field: name, type, length (digits for numbers), decimals, required."""

    name: str
    kind: FieldKind = "str"
    length: int = 30
    scale: int = 0
    required: bool = False


def f(name: str, kind: FieldKind = "str", length: int = 30, scale: int = 0, req: bool = False) -> FieldSpec:
    """Short constructor for spec tables."""
    return FieldSpec(name, kind, length, scale, req)


@dataclass(frozen=True)
class ChildSpec:
    """A list node beside the main one (e.g. 2401 ``diseinfo``), read from a JSON column."""

    node: str
    fields: tuple[FieldSpec, ...]
    required: bool = False
    #: fields whose value may occur once in the list (2204: feedetl_sn within the batch)
    unique: tuple[str, ...] = ()
    #: fields that must hold the same value in every entry (2204: one dise_codg per chrg_bchno)
    same: tuple[str, ...] = ()
    #: (total, quantity, price): the total must equal quantity x price to the cent
    amount: tuple[str, str, str] | None = None


@dataclass(frozen=True)
class TransactionSpec:
    infno: str
    description: str
    #: the node under ``input`` that carries the record (``data``, ``mdtrtinfo``, ``invinfo``...);
    #: empty when the record's own fields only identify it and its child lists are the input
    #: (2204: one charge batch, sent as ``feedetail[]``)
    node: str
    fields: tuple[FieldSpec, ...]
    #: fields whose values together identify a record: never uploaded twice
    key: tuple[str, ...]
    #: the field whose value orders records across transactions (a visit, a stock item)
    group_field: str
    group_prefix: str = "visit"
    children: tuple[ChildSpec, ...] = ()
    #: target field -> (mapping kind, source field): the HIS code read from the source field
    #: is mapped to the national code written into the target ("child.field" for child lists)
    mapped: Mapping[str, tuple[MappingKind, str]] = field(default_factory=dict)
    #: the reply carries the centre's mdtrt_id for this visit (2401, 2201)
    registers_visit: bool = False
    #: records carry mdtrt_id and it must be the centre's (bound at send time)
    binds_visit: bool = False
    #: the main node is a list of one record (2302 ``data[]``)
    node_is_list: bool = False
    #: the infno whose uploads this transaction cancels (2302 -> 2301 lines, 2205 -> 2204
    #: batches), matched by business key; a cancel of something never uploaded is not sent
    cancels: str = ""
    #: the child list whose entries are fee lines the policy rules check (2204: feedetail)
    policy_node: str = ""

    def key_of(self, record: Mapping[str, Any]) -> str:
        return "|".join(str(record.get(name) or "") for name in self.key)

    def group_of(self, record: Mapping[str, Any]) -> str:
        return f"{self.group_prefix}:{record.get(self.group_field) or ''}"

    def input_for(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The transaction ``input``: the main node and its child lists."""
        children = {child.node for child in self.children}
        main = {k: v for k, v in record.items() if k not in children and not k.startswith("_")}
        payload: dict[str, Any] = {}
        if self.node:
            payload[self.node] = [main] if self.node_is_list else main
        for child in self.children:
            payload[child.node] = list(record.get(child.node) or [])
        return payload


def normalise(spec: TransactionSpec, row: Mapping[str, Any]) -> dict[str, Any]:
    """A HIS row as the national record: spec fields in order, numbers as exact decimals."""
    record: dict[str, Any] = {}
    for item in spec.fields:
        record[item.name] = _value(item, row.get(item.name))
    for child in spec.children:
        record[child.node] = [
            {item.name: _value(item, entry.get(item.name)) for item in child.fields}
            for entry in row.get(child.node) or []
        ]
    return record


def _value(item: FieldSpec, raw: Any) -> Any:
    if raw is None:
        return "" if item.kind != "num" else None
    if item.kind == "num":
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            return str(raw)  # reported by check_record
        # Written with the spec's decimal places (12.5 -> 12.50 for a (16,2) amount); a value
        # with more places than the spec allows is left as it is for check_record to report.
        if number.is_finite() and _decimals(number) <= item.scale:
            return number.quantize(Decimal(1).scaleb(-item.scale))
        return number
    return str(raw).strip()


def _decimals(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


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
            values = [entry.get(total), entry.get(quantity), entry.get(price)]
            if all(isinstance(v, Decimal) and v.is_finite() for v in values):
                expected = (values[1] * values[2]).quantize(Decimal("0.01"))
                if abs(values[0] - expected) > Decimal("0.01"):
                    problems.append(
                        f"{child.node}[{index}].{total} {values[0]} is not {quantity} {values[1]} x "
                        f"{price} {values[2]} = {expected}"
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
    return problems
