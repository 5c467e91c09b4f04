#!/usr/bin/env python3
"""Carry the catalogue layouts of the published interface edition into the nhsa plugin as data.

Reads the reference's transactions.json and writes
``plugins/adapter-nhsa/adapter_nhsa/catalogue_layouts.json``: for every 13xx file download
(the ``filename`` field's note, "第1列：医疗目录编码 第2列：…") its TAB columns in order as
[number, label], and for every paged 13xx query (``updt_time``, ``page_num``, ``page_size``
in) its output fields in order as [code, label]. The plugin builds its CatalogSpecs from it.

    python3 scripts/gen_catalogue_layouts.py /work/shared/reference/interface-spec hunan-v1.1.27

Run it again when a new edition is published, and compare: a moved column moves the spec.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

_OUT = (Path(__file__).resolve().parent.parent / "plugins" / "adapter-nhsa" / "adapter_nhsa"
        / "catalogue_layouts.json")
_COLUMN = re.compile(r"^第\s*(\d+)\s*列\s*[：:]\s*(.*?)\s*$")
_PAGED_INPUT = {"updt_time", "page_num", "page_size"}


class LayoutError(ValueError):
    """The edition's text does not read as a column list (a parse doubt: look at it)."""


def parse_columns(infno: str, note: str) -> tuple[list[list[Any]], dict[str, str]]:
    """[[number, label], ...] from a "第N列：label" note, numbers 1..N without gaps, and the
    remarks some labels carry after a "；" (1326: "代理人名称；注册类型为境外是有值")."""
    columns: list[list[Any]] = []
    remarks: dict[str, str] = {}
    for line in (note or "").splitlines():
        if not line.strip():
            continue
        match = _COLUMN.match(line.strip())
        if match is None:
            raise LayoutError(f"{infno}: {line!r} is not a '第N列：label' line")
        number, label = int(match.group(1)), match.group(2)
        if number != len(columns) + 1:
            raise LayoutError(f"{infno}: column {number} follows column {len(columns)}")
        label, _, remark = label.partition("；")
        if not label:
            raise LayoutError(f"{infno}: column {number} has no label")
        if remark:
            remarks[str(number)] = remark
        columns.append([number, label])
    if not columns:
        raise LayoutError(f"{infno}: the filename note lists no columns")
    return columns, remarks


def _fields(nodes: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return [field for node in nodes or [] for field in node.get("fields") or []]


def layout(infno: str, entry: dict[str, Any]) -> dict[str, Any] | None:
    """One kind's layout, or None when the transaction is neither a file download nor a paged
    query."""
    kept: dict[str, Any] = {"name": entry.get("name", "")}
    listed = (entry.get("list_entry") or {}).get("name")
    if listed and listed != kept["name"]:
        kept["listed_as"] = listed
    if entry.get("variant_of"):
        kept["variant_of"] = entry["variant_of"]
    filename = next((f for f in _fields(entry.get("output")) if f.get("code") == "filename"), None)
    if filename is not None and "列" in (filename.get("note") or ""):
        kept["columns"], remarks = parse_columns(infno, filename["note"])
        if remarks:
            kept["remarks"] = remarks
        return kept
    inputs = {f.get("code") for f in _fields(entry.get("input"))}
    if _PAGED_INPUT <= inputs:
        kept["fields"] = [[f["code"], f.get("label", "")] for f in _fields(entry.get("output"))]
        return kept
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="folder with transactions.json and envelope.json")
    parser.add_argument("edition", help="the edition's name, as RegionProfile.interface_edition writes it")
    parser.add_argument("--out", type=Path, default=_OUT, help="the JSON to write (default: %(default)s)")
    args = parser.parse_args()
    args.out.write_text(render(args.reference, args.edition), encoding="utf-8")
    kinds = json.loads(args.out.read_text(encoding="utf-8"))["kinds"]
    files = sum(1 for k in kinds.values() if "columns" in k)
    print(f"wrote {args.out} ({files} file downloads, {len(kinds) - files} paged queries)")


def render(reference: Path, edition: str) -> str:
    """The JSON text for ``reference`` (the test compares it with the committed file)."""
    transactions = json.loads((reference / "transactions.json").read_text(encoding="utf-8"))
    envelope_path = reference / "envelope.json"
    document = (json.loads(envelope_path.read_text(encoding="utf-8")).get("document", {})
                if envelope_path.exists() else {})
    kinds: dict[str, Any] = {}
    for infno, entry in sorted(transactions.items()):
        if not infno.startswith("13") or entry.get("deprecated"):
            continue
        found = layout(infno, entry)
        if found is None:
            raise LayoutError(f"{infno} ({entry.get('name')}) is neither a file download nor a paged query")
        kinds[infno] = found
    about = {
        "edition": edition,
        "title": document.get("title", ""),
        "version": document.get("version", ""),
        "date": document.get("date", ""),
        "source": document.get("source", ""),
        "generated_by": "scripts/gen_catalogue_layouts.py",
    }
    return _dump({"about": about, "kinds": kinds})


def _dump(document: dict[str, Any]) -> str:
    """Indented JSON with each column, field or remark on one line (diffs show a moved column)."""
    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    lines = ["{", f' "about": {one(document["about"])},', ' "kinds": {']
    kinds = list(document["kinds"].items())
    for index, (infno, kind) in enumerate(kinds):
        lines.append(f"  {one(infno)}: {{")
        parts = []
        for key, value in kind.items():
            if isinstance(value, list):
                parts.append(f"   {one(key)}: [\n" + ",\n".join(f"    {one(item)}" for item in value) + "\n   ]")
            else:
                parts.append(f"   {one(key)}: {one(value)}")
        lines.append(",\n".join(parts))
        lines.append("  }" + ("," if index < len(kinds) - 1 else ""))
    lines += [" }", "}"]
    text = "\n".join(lines) + "\n"
    assert json.loads(text) == document
    return text

if __name__ == "__main__":
    main()
