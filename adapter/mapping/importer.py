"""Import mapping rows from CSV (UTF-8 or GB18030, as Excel in China saves it)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from adapter.errors import MappingImportError
from adapter.mapping.store import MappingRow
from adapter.records import MappingKind

REQUIRED_COLUMNS = ("kind", "his_code", "national_code")
#: Chinese headers hospital staff use in their spreadsheets, accepted as aliases.
HEADER_ALIASES = {
    "类别": "kind",
    "医院编码": "his_code",
    "院内编码": "his_code",
    "医保编码": "national_code",
    "国家编码": "national_code",
    "医保名称": "national_name",
    "国家名称": "national_name",
}
KIND_ALIASES = {"项目": "item", "科室": "dept", "医生": "doctor", "医师": "doctor"}


def read_mapping_csv(path: Path) -> list[MappingRow]:
    """Parse a mapping CSV; every problem is reported with file, line and column at once."""
    text = _decode(path)
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None:
        raise MappingImportError(f"{path}: the file is empty")
    reader.fieldnames = [HEADER_ALIASES.get(f.strip(), f.strip()) for f in reader.fieldnames]
    absent = [c for c in REQUIRED_COLUMNS if c not in reader.fieldnames]
    if absent:
        raise MappingImportError(
            f"{path}:1: missing column(s) {', '.join(absent)}; the header must include "
            f"{', '.join(REQUIRED_COLUMNS)} (national_name optional)"
        )
    rows: list[MappingRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for record in reader:
        line = reader.line_num
        kind_text = (record.get("kind") or "").strip().lower()
        kind_text = KIND_ALIASES.get(kind_text, kind_text)
        his_code = (record.get("his_code") or "").strip()
        national = (record.get("national_code") or "").strip()
        try:
            kind = MappingKind(kind_text)
        except ValueError:
            problems.append(
                f"{path}:{line}: column kind: {kind_text!r} is not one of item, dept, doctor"
            )
            continue
        if not his_code:
            problems.append(f"{path}:{line}: column his_code is empty")
            continue
        if not national:
            problems.append(f"{path}:{line}: column national_code is empty for {his_code}")
            continue
        key = (kind.value, his_code)
        if key in seen:
            problems.append(
                f"{path}:{line}: {kind.value} {his_code} is mapped again (first on line "
                f"{seen[key]})"
            )
            continue
        seen[key] = line
        rows.append(MappingRow(kind, his_code, national, (record.get("national_name") or "").strip()))
    if problems:
        raise MappingImportError(
            f"{path}: {len(problems)} problem(s), nothing imported:\n"
            + "\n".join(f"  - {p}" for p in problems[:50])
        )
    return rows


def _decode(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MappingImportError(f"{path}: cannot read: {exc.strerror}") from exc
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise MappingImportError(f"{path}: neither UTF-8 nor GB18030 text")
