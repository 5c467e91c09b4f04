"""Checking outgoing lines against the active catalogues (issue: catalogue use): the national
code exists and is valid on the fee date, and a restricted-use item is reported. The price
caps found here go onto the line (``price_cap``) for the policy rule over-standard-price.

Only kinds with an active version are checked: before the first download nothing is known,
and refusing every line would stop uploads for a reason the hospital cannot fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import select

from adapter.plugin.catalogues import CatalogSpec
from adapter.plugin.rules import Finding, Severity
from adapter.records import MappedFeeLine
from adapter.state import schema
from adapter.state.store import StateStore

_CHUNK = 500


@dataclass(frozen=True)
class Entry:
    kind: str
    version: str
    valid: str
    begin_date: str | None
    end_date: str | None
    restricted: str
    price_cap: str | None


class CatalogView:
    """The active catalogue rows of a set of codes, fetched in a few queries."""

    def __init__(self, store: StateStore, specs: Mapping[str, CatalogSpec], codes: Iterable[str]) -> None:
        self.specs = {kind: spec for kind, spec in specs.items() if spec.role == "codes"}
        price_lists = {kind for kind, spec in specs.items() if spec.role == "price_caps"}
        version, entry = schema.catalog_version, schema.catalog_entry
        with store.begin() as conn:
            self.active = dict(conn.execute(
                select(version.c.kind, version.c.ver).where(version.c.status == "active")).all())
            self.entries: dict[str, Entry] = {}
            #: national code -> (cap, the kind that sets it), from 1318 and regional policy files
            self.local_caps: dict[str, tuple[Decimal, str]] = {}
            wanted = sorted(set(codes))
            for start in range(0, len(wanted), _CHUNK):
                rows = conn.execute(
                    select(version.c.kind, version.c.ver, entry.c.code, entry.c.valid, entry.c.begin_date,
                           entry.c.end_date, entry.c.restricted, entry.c.price_cap)
                    .join(version, version.c.id == entry.c.version_id)
                    .where(version.c.status == "active", entry.c.code.in_(wanted[start:start + _CHUNK]))
                ).all()
                for row in rows:
                    if row.kind in price_lists or row.kind.startswith("policy:"):
                        cap = _decimal(row.price_cap)
                        held = self.local_caps.get(row.code)
                        if cap is not None and (held is None or cap < held[0]):  # the strictest applies
                            self.local_caps[row.code] = (cap, row.kind)
                        continue
                    if row.kind not in self.specs:
                        continue  # reference data: kept, compared, not checked against
                    self.entries[row.code] = Entry(row.kind, row.ver, row.valid, row.begin_date, row.end_date,
                                                   row.restricted, row.price_cap)

    def cap_for(self, code: str) -> tuple[Decimal, str] | None:
        """The lowest price cap for a code (catalogue column, 1318, regional price list) and
        where it comes from; the policy rule over-standard-price enforces it."""
        caps = []
        if code in self.local_caps:
            caps.append(self.local_caps[code])
        entry = self.entries.get(code)
        cap = _decimal(entry.price_cap) if entry is not None else None
        if cap is not None and entry is not None:
            caps.append((cap, entry.kind))
        return min(caps, default=None, key=lambda c: c[0])

    def kind_of(self, code: str) -> str | None:
        """The catalogue kind a code belongs to, if that kind has an active version."""
        for kind, spec in self.specs.items():
            if kind in self.active and spec.code_ok(code):
                return kind
        return None

    def check(self, mapped: MappedFeeLine) -> list[Finding]:
        code = mapped.med_list_codg
        findings: list[Finding] = []
        kind = self.kind_of(code)
        if kind is None:
            return findings
        entry = self.entries.get(code)
        if entry is None:
            return [*findings, Finding("catalogue-code-exists", Severity.BLOCK,
                                       f"national code {code} is not in catalogue {kind} (version "
                                       f"{self.active[kind]}); correct the mapping or sync the catalogue")]
        day = mapped.line.fee_ocur_time.strftime("%Y-%m-%d")
        if entry.valid != "1":
            findings.append(Finding("catalogue-valid", Severity.BLOCK,
                                    f"national code {code} is retired in catalogue {kind} (version {entry.version}); "
                                    "map the HIS item to its successor"))
        elif (entry.begin_date and day < entry.begin_date) or (entry.end_date and day > entry.end_date):
            findings.append(Finding("catalogue-valid", Severity.BLOCK,
                                    f"national code {code} is valid {entry.begin_date or '…'} to "
                                    f"{entry.end_date or '…'} in catalogue {kind}, not on {day}"))
        if entry.restricted:
            findings.append(Finding("catalogue-restricted-use", Severity.WARN,
                                    f"{code} is restricted: {entry.restricted[:200]}"))
        return findings


def _decimal(text: str | None) -> Decimal | None:
    if not text:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class StaleMapping:
    """A mapping whose national code the active catalogue no longer offers."""

    kind: str
    his_code: str
    national_code: str
    reason: str


def stale_mappings(store: StateStore, specs: Mapping[str, CatalogSpec]) -> list[StaleMapping]:
    """Item mappings whose national code is retired in, or missing from, the active catalogue."""
    mapping = schema.mapping
    with store.begin() as conn:
        rows = conn.execute(select(mapping.c.kind, mapping.c.his_code, mapping.c.national_code)
                            .where(mapping.c.kind == "item").order_by(mapping.c.his_code)).all()
    view = CatalogView(store, specs, (row.national_code for row in rows))
    stale = []
    for row in rows:
        kind = view.kind_of(row.national_code)
        if kind is None:
            continue
        entry = view.entries.get(row.national_code)
        if entry is None:
            reason = f"not in catalogue {kind} (version {view.active[kind]})"
        elif entry.valid != "1":
            reason = f"retired in catalogue {kind} (version {entry.version})"
        else:
            continue
        stale.append(StaleMapping(row.kind, row.his_code, row.national_code, reason))
    return stale
