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


@dataclass(frozen=True)
class TransactionSpec:
    infno: str
    description: str
    #: the node under ``input`` that carries the record (``data``, ``mdtrtinfo``, ``invinfo``...)
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

    def key_of(self, record: Mapping[str, Any]) -> str:
        return "|".join(str(record.get(name) or "") for name in self.key)

    def group_of(self, record: Mapping[str, Any]) -> str:
        return f"{self.group_prefix}:{record.get(self.group_field) or ''}"

    def input_for(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The transaction ``input``: the main node and its child lists."""
        payload: dict[str, Any] = {self.node: {k: v for k, v in record.items() if not k.startswith("_")}}
        for child in self.children:
            payload[self.node].pop(child.node, None)
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
            return Decimal(str(raw).strip())
        except InvalidOperation:
            return str(raw)  # reported by check_record
    return str(raw).strip()


def check_record(spec: TransactionSpec, record: Mapping[str, Any]) -> list[str]:
    """Problems with a record, each a sentence naming the field (empty: fine to send)."""
    problems = _check_fields(spec.fields, record, "")
    for child in spec.children:
        entries = record.get(child.node) or []
        if child.required and not entries:
            problems.append(f"{child.node}: at least one entry is required")
        for index, entry in enumerate(entries, start=1):
            problems += _check_fields(child.fields, entry, f"{child.node}[{index}].")
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
            exponent = value.as_tuple().exponent
            decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
            if decimals > item.scale:
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
