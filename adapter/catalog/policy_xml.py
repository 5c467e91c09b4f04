"""Regional XML policy files, read safely: no DTD (so no entity expansion, no billion
laughs, no external entities), no network access, then validated against the region's XSD.
Any problem refuses the file with the line and column it was found at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lxml import etree

from adapter.errors import FileFormatError
from adapter.plugin.catalogues import PolicySpec

MAX_POLICY_BYTES = 64 * 1024 * 1024


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                           huge_tree=False, remove_comments=True, remove_pis=True)


def read_policy(path: Path, spec: PolicySpec) -> tuple[str, list[dict[str, Any]]]:
    """(the file's version, its items as catalogue entries); FileFormatError if refused."""
    name = path.name
    data = path.read_bytes()
    if len(data) > MAX_POLICY_BYTES:
        raise FileFormatError(f"{name}: {len(data)} bytes, more than the {MAX_POLICY_BYTES} allowed")
    # Refused before parsing: a DOCTYPE is how entity bombs and external entities get in, and
    # no policy file needs one (its structure is the XSD's business).
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise FileFormatError(f"{name} line {_line_of(data, b'<!')}: a DTD or entity declaration; refused")
    try:
        tree = etree.fromstring(data, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        raise FileFormatError(f"{name} line {line} column {column}: not well-formed XML ({exc.msg})") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise FileFormatError(f"{name}: a DTD; refused")
    schema = etree.XMLSchema(etree.parse(str(spec.xsd), _parser()))
    if not schema.validate(tree):
        problems = "; ".join(f"line {e.line} column {e.column}: {e.message}" for e in list(schema.error_log)[:10])
        raise FileFormatError(f"{name} does not match {spec.xsd.name}: {problems}")
    root = tree.getroot()
    version = str(root.get(spec.version_attribute) or "")
    entries = []
    for element in root.iter(f"{{*}}{spec.item_tag}", spec.item_tag):
        entries.append({
            "code": str(element.get(spec.code_attribute)),
            "name": str(element.get(spec.name_attribute) or "")[:300],
            "row_version": version,
            "begin_date": None, "end_date": None, "valid": "1", "restricted": "",
            "price_cap": element.get(spec.price_attribute) if spec.price_attribute else None,
            "line_no": element.sourceline or 0,
        })
    return version, entries


def _line_of(data: bytes, needle: bytes) -> int:
    return data[: max(data.find(needle), 0)].count(b"\n") + 1
