"""Transactions described as data: the fields a transaction carries (type, length, required),
its business key, how its records are grouped into messages, which HIS codes are mapped, and
what is special about it (line-level batching, refunds, blame, cancels, visit registration).

A region profile lists the transactions it speaks (``RegionProfile.transactions``); the one
flow (:mod:`adapter.flow`) extracts, maps, checks, spools, sends and settles any of them. Every
option here is read by the flow; docs/writing-plugins.md describes each one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from adapter.records import MappingKind

FieldKind = Literal["str", "num", "date", "datetime"]


@dataclass(frozen=True)
class FieldSpec:
    """One field: name, type, length (digits for numbers), decimals, required, and what its
    value must look like (``pattern``) or must never be (``reserved``)."""

    name: str
    kind: FieldKind = "str"
    length: int = 30
    scale: int = 0
    required: bool = False
    #: a regular expression a non-empty value must match in full, checked once the type and
    #: length are fine (2301 feedetl_sn: 1 to 15 digits, not 0); empty: any value
    pattern: str = ""
    #: what ``pattern`` asks for, in words: the problem reads "<field> '<value>' must be <pattern_text>"
    pattern_text: str = ""
    #: a regular expression of values the centre reads as a command rather than as data
    #: (2302 feedetl_sn and 2205 chrg_bchno "0000": delete every unsettled detail of the visit);
    #: a record whose value matches in full is parked invalid, never sent. Empty: none
    reserved: str = ""
    #: why ``reserved`` values are refused: the problem reads "<field> '<value>' is reserved: <reserved_text>"
    reserved_text: str = ""

    def __post_init__(self) -> None:
        # A bad expression fails when the plugin's tables are built (the plugin is reported
        # and disabled), not when the first record is checked.
        for expression in (self.pattern, self.reserved):
            if expression:
                re.compile(expression)


def f(
    name: str, kind: FieldKind = "str", length: int = 30, scale: int = 0, req: bool = False, *,
    pattern: str = "", pattern_text: str = "", reserved: str = "", reserved_text: str = "",
) -> FieldSpec:
    """Short constructor for spec tables."""
    return FieldSpec(name, kind, length, scale, req, pattern, pattern_text, reserved, reserved_text)


@dataclass(frozen=True)
class ChildSpec:
    """A list node beside the main one (e.g. 2401 ``diseinfo``), or inside it (3505
    ``selinfo.drugtracinfo``), read from a JSON column."""

    node: str
    fields: tuple[FieldSpec, ...]
    required: bool = False
    #: fields whose value may occur once in the list (2204: feedetl_sn within the batch)
    unique: tuple[str, ...] = ()
    #: fields that must hold the same value in every entry (2204: one dise_codg per chrg_bchno)
    same: tuple[str, ...] = ()
    #: (total, quantity, price): the total must equal quantity x price to the cent
    amount: tuple[str, str, str] | None = None
    #: the list is a field of the main node, not a node beside it (3505 ``selinfo.drugtracinfo[]``)
    inside: bool = False


@dataclass(frozen=True)
class TransactionSpec:
    """One upload transaction as data. Every record of it is one row of the ledger, unique per
    (infno, business key)."""

    infno: str
    description: str
    #: the node under ``input`` that carries the record (``data``, ``mdtrtinfo``, ``feedetail``...);
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
    #: national field -> the HIS query's column it is read from, where they differ (2301 reads
    #: ``medins_list_codg`` from ``his_item_code``); every other field is read by its own name
    his_columns: Mapping[str, str] = field(default_factory=dict)
    #: the reply carries the centre's mdtrt_id for this visit (2401, 2201): later messages of
    #: the visit carry it instead of the HIS visit number
    registers_visit: bool = False
    #: the main node is a list (2302 ``data[]``, 2301 ``feedetail[]``)
    node_is_list: bool = False
    #: the infno whose uploads this transaction cancels (2302 -> 2301 lines, 2205 -> 2204
    #: batches), matched by business key; a cancel of something never uploaded is not sent
    cancels: str = ""
    #: where the fee lines of a record are, for the registered validation rules, the
    #: catalogue check and the policy rules: "." (the record is one fee line, 2301), a child
    #: node (2204: ``feedetail``), or empty (no fee lines)
    fee_lines: str = ""
    #: records of one group share a message, up to ``[centre] lines_per_message`` of them,
    #: their ``node`` lists joined (2301); otherwise each record is a message of its own
    batched: bool = False
    #: (refund field, key field): a record whose refund field names another record's key field
    #: (2301 init_feedetl_sn -> feedetl_sn) is a refund of it; it is held while that original is
    #: parked here, and parked with it when the centre rejects the original
    refund_of: tuple[str, str] | None = None
    #: fields of a record whose value, named in a rejection's err_msg, blames that record alone
    #: (2301: feedetl_sn, med_list_codg); the others of the message are sent again
    blame_fields: tuple[str, ...] = ()
    #: messages of one group leave in phase order within a cycle: 0 registers the visit,
    #: 1 carries its details, 2 closes it (discharge, settlement list)
    phase: int = 1
    #: HIS facts the policy rules read (FeeLine field -> the HIS column or child-entry key),
    #: where the fee lines' own fields do not carry them (e.g. ``his_item_category``)
    facts: Mapping[str, str] = field(default_factory=dict)

    def key_of(self, record: Mapping[str, Any]) -> str:
        return "|".join(str(record.get(name) or "") for name in self.key)

    def group_of(self, record: Mapping[str, Any]) -> str:
        return f"{self.group_prefix}:{record.get(self.group_field) or ''}"

    @functools.cached_property
    def _child_nodes(self) -> frozenset[str]:
        return frozenset(child.node for child in self.children)

    @functools.cached_property
    def field_columns(self) -> tuple[tuple[str, FieldSpec], ...]:
        """(HIS column, field) of each field of the main record, worked out once per spec."""
        return tuple((self.his_columns.get(item.name, item.name), item) for item in self.fields)

    def input_for(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The transaction ``input``: the main node and its child lists."""
        children = self._child_nodes
        main = {k: v for k, v in record.items() if k not in children and k[:1] != "_"}
        payload: dict[str, Any] = {}
        for child in self.children:
            entries = list(record.get(child.node) or [])
            if child.inside and self.node:
                main[child.node] = entries
            else:
                payload[child.node] = entries
        if self.node:
            payload = {self.node: [main] if self.node_is_list else main, **payload}
        return payload

    def record_from_input(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The record an ``input`` of one record carries (the inverse of :meth:`input_for`)."""
        record: dict[str, Any] = {}
        main: Any = {}
        if self.node:
            main = payload.get(self.node)
            if isinstance(main, list):
                main = main[0] if main else {}
            record.update(main or {})
        for child in self.children:
            holder = (main or {}) if child.inside and self.node else payload
            record[child.node] = list(holder.get(child.node) or [])
        return record
