#!/usr/bin/env python3
"""Carry the published interface tables into the project as its own data.

Reads a reference folder (transactions.json, dictionaries.json, envelope.json, as parsed from
the edition's document) and writes ``adapter/spec/data/<edition>/``: every transaction's input
and output nodes with their fields (code, label, type, length, dictionary flag, required
flag, note), the code dictionaries, and the envelope's request and response fields. Samples,
prose and the revision history stay behind: only facts travel.

    python3 scripts/gen_interface_tables.py /work/shared/reference/interface-spec hunan-v1.1.27

Run it again when a new edition is published (into a new folder) and name that edition in the
region plugins that follow it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

_OUT = Path(__file__).resolve().parent.parent / "adapter" / "spec" / "data"
_FIELD_KEYS = ("code", "label", "type", "length", "dict", "required", "note")
_NODE_KEYS = ("node", "multi", "parent", "path")


def _node(node: dict[str, Any]) -> dict[str, Any]:
    kept = {key: node[key] for key in _NODE_KEYS if node.get(key) is not None}
    kept.setdefault("node", None)
    kept.setdefault("multi", None)
    kept["fields"] = [{key: field.get(key) for key in _FIELD_KEYS} for field in node.get("fields") or []]
    return kept


def _transaction(infno: str, entry: dict[str, Any]) -> dict[str, Any]:
    kept: dict[str, Any] = {"name": entry.get("name", ""), "input": [_node(n) for n in entry.get("input") or []],
                            "output": [_node(n) for n in entry.get("output") or []]}
    for flag in ("deprecated", "variant_of", "output_none"):
        if entry.get(flag):
            kept[flag] = entry[flag]
    for layout in ("input_file", "output_file"):
        if entry.get(layout):
            kept[layout] = entry[layout]
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="folder with transactions.json, dictionaries.json, envelope.json")
    parser.add_argument("edition", help="folder name under adapter/spec/data, e.g. hunan-v1.1.27")
    parser.add_argument("--out", type=Path, default=_OUT, help="where the edition folders are (default: %(default)s)")
    args = parser.parse_args()
    transactions = json.loads((args.reference / "transactions.json").read_text(encoding="utf-8"))
    dictionaries = json.loads((args.reference / "dictionaries.json").read_text(encoding="utf-8"))
    envelope = json.loads((args.reference / "envelope.json").read_text(encoding="utf-8"))
    document = envelope.get("document", {})
    out = args.out / args.edition
    out.mkdir(parents=True, exist_ok=True)
    about = {
        "edition": args.edition,
        "title": document.get("title", ""),
        "version": document.get("version", ""),
        "date": document.get("date", ""),
        "baseline": document.get("baseline", ""),
        "source": document.get("source", ""),
        "generated_by": "scripts/gen_interface_tables.py",
    }
    tables = {"about": about,
              "transactions": {infno: _transaction(infno, entry) for infno, entry in sorted(transactions.items())}}
    _write(out / "transactions.json", tables)
    _write(out / "dictionaries.json", {"about": about, "dictionaries": {
        code: {"label": entry.get("label", ""), "values": entry.get("values", {})}
        for code, entry in sorted(dictionaries.items())}})
    _write(out / "envelope.json", {"about": about,
                                   "request": [_node({"fields": envelope["request"]["fields"]})["fields"]][0],
                                   "response": [_node({"fields": envelope["response"]["fields"]})["fields"]][0],
                                   "return_codes": {"values": envelope.get("return_codes", {}).get("values", {})}})
    print(f"wrote {out} ({len(transactions)} transactions, {len(dictionaries)} dictionaries)")


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=0, sort_keys=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
