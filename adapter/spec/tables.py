"""Loading an edition of the interface tables: transactions (input and output nodes with their
fields), code dictionaries, and the envelope's fields."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_DATA = Path(__file__).parent / "data"
#: the edition the national plugin and the simulated centre follow unless a region names another
DEFAULT_EDITION = "hunan-v1.1.27"


@dataclass(frozen=True)
class FieldTable:
    code: str
    label: str
    type: str
    length: str
    dict: bool
    required: bool
    note: str


@dataclass(frozen=True)
class NodeTable:
    #: the node's name under input/output, or None when its fields sit directly there
    node: str | None
    #: True: a list; False: one object; None: the edition does not say
    multi: bool | None
    fields: tuple[FieldTable, ...]
    #: the field of another node this node nests under, where the edition says so
    parent: str | None = None

    def field(self, code: str) -> FieldTable | None:
        return next((f for f in self.fields if f.code == code), None)


@dataclass(frozen=True)
class TransactionTable:
    infno: str
    name: str
    input: tuple[NodeTable, ...]
    output: tuple[NodeTable, ...]
    deprecated: bool = False


@dataclass(frozen=True)
class Dictionary:
    code: str
    label: str
    values: dict[str, str]


@dataclass(frozen=True)
class Edition:
    name: str
    about: dict[str, Any]
    transactions: dict[str, TransactionTable]
    dictionaries: dict[str, Dictionary]
    request: tuple[FieldTable, ...]
    response: tuple[FieldTable, ...]

    def transaction(self, infno: str) -> TransactionTable:
        try:
            return self.transactions[infno]
        except KeyError:
            raise KeyError(f"edition {self.name} has no transaction {infno}") from None

    def label(self, dictionary: str, value: str) -> str:
        """The label of a code (insutype 310 -> 职工基本医疗保险); the code itself if unknown."""
        entry = self.dictionaries.get(dictionary)
        return entry.values.get(str(value), str(value)) if entry is not None else str(value)


def _field(raw: dict[str, Any]) -> FieldTable:
    return FieldTable(str(raw.get("code") or ""), str(raw.get("label") or ""), str(raw.get("type") or ""),
                      str(raw.get("length") or ""), bool(raw.get("dict")), bool(raw.get("required")),
                      str(raw.get("note") or ""))


def _node(raw: dict[str, Any]) -> NodeTable:
    return NodeTable(raw.get("node"), raw.get("multi"), tuple(_field(f) for f in raw.get("fields") or []),
                     raw.get("parent"))


@functools.cache
def load_edition(name: str = DEFAULT_EDITION) -> Edition:
    """An edition by its folder name under adapter/spec/data."""
    folder = _DATA / name
    if not folder.is_dir():
        known = ", ".join(sorted(p.name for p in _DATA.iterdir() if p.is_dir()))
        raise KeyError(f"no interface edition {name!r} (known: {known})")
    tables = json.loads((folder / "transactions.json").read_text(encoding="utf-8"))
    dictionaries = json.loads((folder / "dictionaries.json").read_text(encoding="utf-8"))
    envelope = json.loads((folder / "envelope.json").read_text(encoding="utf-8"))
    transactions = {
        infno: TransactionTable(infno, entry.get("name", ""), tuple(_node(n) for n in entry.get("input") or []),
                                tuple(_node(n) for n in entry.get("output") or []), bool(entry.get("deprecated")))
        for infno, entry in tables["transactions"].items()
    }
    return Edition(
        name, tables["about"], transactions,
        {code: Dictionary(code, entry.get("label", ""), dict(entry.get("values") or {}))
         for code, entry in dictionaries["dictionaries"].items()},
        tuple(_field(f) for f in envelope["request"]), tuple(_field(f) for f in envelope["response"]),
    )
