"""Catalogue files that look like the centre's (one UTF-8 TAB text in a zip, no header), for
the simulated centre, the tests and the benchmark."""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from adapter.plugin.catalogues import CatalogSpec


@dataclass(frozen=True)
class CatalogRow:
    code: str
    name: str
    version: str
    valid: str = "1"
    begin: str = "2020-01-01"
    end: str = ""
    restricted: str = ""


def row_fields(spec: CatalogSpec, row: CatalogRow) -> list[str]:
    """All columns of one row: the ones the spec knows filled from ``row``, the rest with
    plausible filler (what makes a 97-column 1301 line about 600 bytes, like a real one)."""
    fields = [f"字段{n}值" for n in range(1, spec.columns + 1)]
    for column in (*spec.date_columns,):
        fields[column - 1] = "2020-01-01"
    for column in spec.number_columns:
        fields[column - 1] = "10"
    placed = {
        spec.code_column: row.code, spec.name_column: row.name, spec.version_column: row.version,
        spec.valid_column: row.valid, spec.begin_column: row.begin, spec.end_column: row.end,
        spec.restricted_column: row.restricted,
    }
    for place, value in placed.items():
        if place is not None:
            fields[place - 1] = value
    return fields


def write_catalog(path: Path, spec: CatalogSpec, rows: Iterable[CatalogRow], member: str | None = None,
                  encoding: str = "utf-8") -> int:
    """Write a catalogue zip; returns the rows written."""
    member = member or path.name.removesuffix(".zip")
    if not member.endswith(".txt"):
        member += ".txt"
    count = 0
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive, \
            archive.open(member, "w", force_zip64=True) as out:
        for row in rows:
            out.write(("\t".join(row_fields(spec, row)) + "\n").encode(encoding))
            count += 1
    return count


def drug_codes(count: int, start: int = 0) -> Iterator[str]:
    """Distinct, well-formed 1301 western-drug codes."""
    for n in range(start, start + count):
        yield f"XA01AB{chr(65 + n % 26)}{n % 1000:03d}A001{n // 1000 % 10000:04d}{n % 100000:05d}"


def consumable_codes(count: int, start: int = 0) -> Iterator[str]:
    """Distinct, well-formed 1306 medical-consumable codes ("C" and 19 digits, the 20-character
    医保通用名 level the sample HIS maps to)."""
    for n in range(start, start + count):
        yield f"C{90 + n % 10:02d}{n // 10 % 10000:04d}{n:013d}"
