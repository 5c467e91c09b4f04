"""Checking a transaction's ``input`` (or ``output``) against the published tables: required
fields present and non-empty, no unknown node or field, the node's shape (one object or a
list), string lengths, digits and decimals, date formats and dictionary values.

Each problem names the place (``feedetail[2].med_list_codg``) and says what is wrong, the way
a centre's refusal would. This is the oracle the simulated centre and the conformance tests
use; it reads only the edition's tables, never the adapter's transaction specs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from adapter.plugin.api import EditionDifference
from adapter.spec.tables import Dictionary, Edition, FieldTable, NodeTable

Direction = Literal["input", "output"]

_STRING_TYPES = {"字符型", "字符", "VARCHAR", "大文本", ""}
_NUMBER_TYPES = {"数值型", "数值", "BigDecimal"}
_DIGIT_TYPES = {"数字型", "数字"}
_DATE_FORMATS = {"日期型": "%Y-%m-%d", "日期": "%Y-%m-%d", "日期时间型": "%Y-%m-%d %H:%M:%S"}
#: "1-经办人；2-自助终端" style value lists in a field's 说明
_LISTED_VALUE = re.compile(r"(?:^|[；;，,。\s(（])([0-9A-Za-z]{1,6})\s*[-－:：.、]\s*[^\s；;，,。0-9]")
_NOTE_FORMATS = (("yyyy-MM-dd HH:mm:ss", "%Y-%m-%d %H:%M:%S"), ("yyyyMMddHHmmss", "%Y%m%d%H%M%S"),
                 ("yyyy-MM-dd", "%Y-%m-%d"), ("yyyyMMdd", "%Y%m%d"))


@dataclass(frozen=True)
class Problem:
    """One way a message breaks the tables: where, and what."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


def check(edition: Edition, infno: str, body: Any, direction: Direction = "input",
          differences: Sequence[EditionDifference] = ()) -> list[Problem]:
    """Problems of ``body`` (the ``input`` of a request, or the ``output`` of an answer), by
    the edition's tables as the region's declared ``differences`` change them."""
    table = edition.transactions.get(infno)
    if table is None:
        return [Problem("infno", f"{infno} is not a transaction of {edition.name}")]
    nodes = table.input if direction == "input" else table.output
    if not nodes:
        return []
    mine = [d for d in differences if d.infno in ("", infno)]
    if mine:
        edition, nodes = _apply(edition, nodes, mine)
    return list(_check_body(edition, nodes, body))


def _apply(edition: Edition, nodes: tuple[NodeTable, ...], differences: Sequence[EditionDifference]
           ) -> tuple[Edition, tuple[NodeTable, ...]]:
    """The tables as a region reads them: added dictionary values, the one table a field reads
    where the edition has two, changed required flags and lengths."""
    added: dict[str, dict[str, str]] = {}
    changed = []
    for node in nodes:
        fields = []
        for item in node.fields:
            for difference in differences:
                if difference.field != item.code:
                    continue
                if difference.required is not None:
                    item = replace(item, required=difference.required)
                if difference.length:
                    item = replace(item, length=difference.length)
                if difference.table:
                    table = edition.dictionaries.get(difference.table)
                    if table is None:
                        raise KeyError(f"{difference.field}: {edition.name} has no dictionary {difference.table!r}")
                    added.setdefault(f"{item.code}@only", {}).update(table.values)
                    item = replace(item, dict=True)
                if difference.values:
                    added.setdefault(f"{item.code}@region", {}).update(difference.values)
                    item = replace(item, dict=True)
            fields.append(item)
        changed.append(replace(node, fields=tuple(fields)))
    if not added:
        return edition, tuple(changed)
    dictionaries = dict(edition.dictionaries)
    for key, values in added.items():
        dictionaries[key] = Dictionary(key, "", values)
    return replace(edition, dictionaries=dictionaries), tuple(changed)


def envelope_fields(edition: Edition, differences: Sequence[EditionDifference] = ()
                    ) -> tuple[Edition, tuple[FieldTable, ...]]:
    """The request envelope's table (§4.1) as a region reads it (its changes without an infno)."""
    mine = [d for d in differences if not d.infno]
    if not mine:
        return edition, edition.request
    edition, (node,) = _apply(edition, (NodeTable(None, None, edition.request),), mine)
    return edition, node.fields


def _check_body(edition: Edition, nodes: tuple[NodeTable, ...], body: Any) -> Iterator[Problem]:
    root = [n for n in nodes if n.node is None]
    named = {n.node: n for n in nodes if n.node is not None}
    if root and not named and (isinstance(body, list) or root[0].multi is True):
        # e.g. 5204: the output is the list itself, with no node
        if not isinstance(body, list):
            yield Problem("", "must be a list of objects (this answer has no node)")
            return
        yield from _check_entries(edition, root[0], body, "", root[0].multi)
        return
    if not isinstance(body, Mapping):
        yield Problem("", f"expected an object, got {type(body).__name__}")
        return
    root_fields = {f.code for n in root for f in n.fields}
    for key in body:
        if key not in named and key not in root_fields:
            yield Problem(str(key), "unknown node or field" + _case_hint(key, set(named) | root_fields))
    for node in root:
        yield from _check_entry(edition, node, body, "", extra_keys=set(named), report_unknown=False)
    first = nodes[0].node
    for name, node in named.items():
        if node.parent is not None:
            continue  # checked inside the entries of the node it nests in
        if name not in body:
            if any(f.required for f in node.fields) and (node.multi is False or name == first):
                yield Problem(name, "node is missing")
            continue
        yield from _check_entries(edition, node, body[name], name, node.multi, nodes)


def _check_entries(edition: Edition, node: NodeTable, value: Any, path: str, multi: bool | None,
                   nodes: tuple[NodeTable, ...] = ()) -> Iterator[Problem]:
    if isinstance(value, list):
        if multi is False:
            yield Problem(path, "must be one object, not a list")
            return
        for index, entry in enumerate(value, start=1):
            yield from _check_entry(edition, node, entry, f"{path}[{index}]" if path else f"[{index}]", nodes=nodes)
    elif isinstance(value, Mapping):
        if multi is True:
            yield Problem(path, "must be a list of objects, not one object")
            return
        yield from _check_entry(edition, node, value, path, nodes=nodes)
    elif value is not None:
        yield Problem(path, f"expected an object or a list, got {type(value).__name__}")


def _check_entry(edition: Edition, node: NodeTable, entry: Any, path: str, *, extra_keys: set[str] | None = None,
                 report_unknown: bool = True, nodes: tuple[NodeTable, ...] = ()) -> Iterator[Problem]:
    if not isinstance(entry, Mapping):
        yield Problem(path, f"expected an object, got {type(entry).__name__}")
        return
    prefix = f"{path}." if path else ""
    codes = {f.code for f in node.fields}
    nested = {n.node: n for n in nodes if n.parent is not None and n.node is not None}
    for key, value in entry.items():
        if key in nested:
            yield from _check_entries(edition, nested[key], value, prefix + key, nested[key].multi, nodes)
        elif report_unknown and key not in codes and key not in (extra_keys or set()):
            yield Problem(prefix + str(key), "unknown field" + _case_hint(key, codes))
    for field in node.fields:
        value = entry.get(field.code)
        if value is None or value == "":
            if field.required:
                hint = ' (an empty number is sent as 0)' if field.type in _NUMBER_TYPES else ""
                yield Problem(prefix + field.code, f"{field.label or field.code} is required{hint}")
            continue
        problem = check_value(edition, field, value)
        if problem:
            yield Problem(prefix + field.code, problem)


def check_value(edition: Edition, field: FieldTable, value: Any) -> str | None:
    """What is wrong with one present value of a field, or None."""
    if isinstance(value, (Mapping, list)):
        return None  # a nested structure: its own node is checked where the tables have one
    text = str(value)
    kind = field.type
    if kind in _NUMBER_TYPES or (kind in _DIGIT_TYPES and "," in _normal_length(field.length)):
        problem = _check_number(text, field.length)
        if problem:
            return problem
    elif kind in _DIGIT_TYPES:
        if not text.isdigit():
            return f"{text!r} is not digits"
        limit = _chars(field.length)
        if limit is not None and len(text) > limit:
            return f"{len(text)} digits, at most {limit}"
    elif kind in _DATE_FORMATS:
        fmt = _note_format(field.note) or _DATE_FORMATS[kind]
        try:
            datetime.strptime(text, fmt)
        except ValueError:
            return f"{text!r} is not a {kind} ({_human(fmt)})"
    elif kind in _STRING_TYPES:
        limit = _chars(field.length)
        if limit is not None and len(text) > limit:
            return f"{len(text)} characters, at most {limit}"
    if field.dict:
        allowed = dictionary_values(edition, field)
        if allowed and text not in allowed:
            return f"{text!r} is not a value of {field.label or field.code}"
    return None


def dictionary_values(edition: Edition, field: FieldTable) -> set[str]:
    """The values a dictionary-flagged field may take: its dictionary (by code, or the code
    written snake_case) and the values its 说明 lists, plus what the region adds; empty when
    none can be found. Where the edition prints two tables under one code, the first is read
    unless the region names the other (``EditionDifference.table``): never both."""
    values: set[str] = set()
    for code in {field.code, _snake(field.code), field.code.lower()}:
        only = edition.dictionaries.get(f"{code}@only")
        keys = (f"{code}@only",) if only is not None else (code,)
        for key in (*keys, f"{code}@region"):
            entry = edition.dictionaries.get(key)
            if entry is not None:
                values |= set(entry.values)
    values |= {match.group(1) for match in _LISTED_VALUE.finditer(field.note)}
    return values


def _check_number(text: str, length: str) -> str | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"{text!r} is not a number"
    if not number.is_finite():
        return f"{text!r} is not a number"
    digits, places = _number_shape(length)
    if digits is None:
        return None
    exponent = number.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > places and number != number.quantize(Decimal(1).scaleb(-places)):
        return f"{text} has more than {places} decimal places ({length})"
    if len(str(abs(int(number)))) > digits - places:
        return f"{text} has more than {digits - places} integer digits ({length})"
    return None


def _normal_length(length: str) -> str:
    return length.replace("（", "(").replace("）", ")").replace("，", ",").strip("() ").replace(" ", "")


def _number_shape(length: str) -> tuple[int | None, int]:
    text = _normal_length(length)
    if re.fullmatch(r"\d+,\d+", text):
        digits, places = text.split(",")
        return int(digits), int(places)
    if text.isdigit():
        return int(text), 0
    return None, 0


def _chars(length: str) -> int | None:
    text = _normal_length(length).upper()
    if re.fullmatch(r"\d{1,3}(,\d{3})+", text):  # "2,000"
        return int(text.replace(",", ""))
    match = re.fullmatch(r"(\d+)([KM]?)", text)
    if match is None:
        return None
    return int(match.group(1)) * {"": 1, "K": 1024, "M": 1024 * 1024}[match.group(2)]


def _note_format(note: str) -> str | None:
    return next((fmt for written, fmt in _NOTE_FORMATS if written in note), None)


def _human(fmt: str) -> str:
    return fmt.replace("%Y", "yyyy").replace("%m", "MM").replace("%d", "dd").replace("%H", "HH").replace(
        "%M", "mm").replace("%S", "ss")


def _snake(code: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", code).lower()


def _case_hint(key: Any, known: set[str]) -> str:
    matches = [k for k in known if k.lower() == str(key).lower() and k != key]
    return f" (did you mean {matches[0]}?)" if matches else ""


class DictionaryCheck:
    """The values the dictionary-flagged fields of the edition may take (代码标识 Y, 4.4: 字典内容
    参照字典表), as a region reads them, checked on every record before it is put into a message.

    Built once per region; per transaction, only its dictionary fields are visited, so the check
    costs a few set lookups per record rather than the whole table check.
    """

    def __init__(self, edition: Edition, differences: Sequence[EditionDifference] = ()) -> None:
        self._edition = edition
        self._differences = tuple(differences)
        self._fields: dict[str, dict[str | None, list[tuple[str, str, frozenset[str]]]]] = {}

    def _table(self, infno: str) -> dict[str | None, list[tuple[str, str, frozenset[str]]]]:
        cached = self._fields.get(infno)
        if cached is not None:
            return cached
        found: dict[str | None, list[tuple[str, str, frozenset[str]]]] = {}
        table = self._edition.transactions.get(infno)
        if table is not None:
            edition, nodes = self._edition, table.input
            mine = [d for d in self._differences if d.infno in ("", infno)]
            if mine:
                edition, nodes = _apply(edition, nodes, mine)
            for node in nodes:
                fields = [(f.code, f.label or f.code, frozenset(dictionary_values(edition, f)))
                          for f in node.fields if f.dict]
                if any(allowed for _, _, allowed in fields):
                    found[node.node] = [item for item in fields if item[2]]
        self._fields[infno] = found
        return found

    def problems(self, infno: str, payload: Mapping[str, Any]) -> list[str]:
        """Each dictionary value of ``payload`` (a transaction ``input``) the edition lacks."""
        problems: list[str] = []
        for node, fields in self._table(infno).items():
            for path, entry in _entries(payload, node):
                for code, label, allowed in fields:
                    value = entry.get(code)
                    if value is not None and value != "" and str(value) not in allowed:
                        problems.append(f"{path}{code} {str(value)!r} is not a value of {label} in the dictionary")
        return problems


def _entries(payload: Mapping[str, Any], node: str | None) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The objects of ``node`` in an input: at the top, as a top node's value, or inside one."""
    if node is None:
        yield "", payload
        return
    holders: list[tuple[str, Any]] = [("", payload)]
    for name, value in payload.items():
        for index, item in enumerate(value if isinstance(value, list) else [value]):
            if isinstance(item, Mapping):
                holders.append((f"{name}[{index + 1}].", item))
    for prefix, holder in holders:
        value = holder.get(node)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                yield f"{prefix}{node}[{index + 1}]." if isinstance(value, list) else f"{prefix}{node}.", item
