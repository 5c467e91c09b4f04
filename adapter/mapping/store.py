"""The mapping tables (目录对照) in the state database: item, department and doctor codes."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapter.records import MappingKind
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow


@dataclass(frozen=True)
class MappingRow:
    kind: MappingKind
    his_code: str
    national_code: str
    national_name: str = ""


@dataclass(frozen=True)
class UnmappedCode:
    kind: MappingKind
    his_code: str
    waiting_lines: int


#: mapping rows written per statement of an import
_CHUNK = 2000


class MappingStore:
    """Reads and writes the mapping table; lookups are cached per cycle by the caller."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def upsert(self, rows: Iterable[MappingRow], progress: Callable[[int], None] | None = None) -> int:
        """Insert or replace mapping rows in one transaction; returns how many were written.
        ``progress`` is told after every _CHUNK rows, inside that transaction (so it must not
        write to the state store itself)."""
        now = utcnow()
        payload = [
            {
                "kind": row.kind.value,
                "his_code": row.his_code,
                "national_code": row.national_code,
                "national_name": row.national_name,
                "updated_at": now,
            }
            for row in rows
        ]
        if not payload:
            return 0
        insert = pg_insert if self._store.dialect == "postgresql" else sqlite_insert
        stmt = insert(schema.mapping)
        stmt = stmt.on_conflict_do_update(
            index_elements=["kind", "his_code"],
            set_={
                "national_code": stmt.excluded.national_code,
                "national_name": stmt.excluded.national_name,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._store.begin() as conn:
            for start in range(0, len(payload), _CHUNK):
                chunk = payload[start:start + _CHUNK]
                conn.execute(stmt, chunk)
                if progress is not None:
                    progress(len(chunk))
        return len(payload)

    def load(self, conn: Connection) -> dict[MappingKind, dict[str, MappingRow]]:
        """The whole table, by kind and hospital code (a few thousand rows at most)."""
        tables: dict[MappingKind, dict[str, MappingRow]] = {kind: {} for kind in MappingKind}
        for row in conn.execute(select(schema.mapping)):
            kind = MappingKind(row.kind)
            tables[kind][row.his_code] = MappingRow(
                kind, row.his_code, row.national_code, row.national_name
            )
        return tables

    def count(self) -> dict[str, int]:
        with self._store.begin() as conn:
            rows = conn.execute(
                select(schema.mapping.c.kind, func.count()).group_by(schema.mapping.c.kind)
            )
            return {kind: n for kind, n in rows}

    def unmapped(self) -> list[UnmappedCode]:
        """Hospital codes that records are parked on, with how many records wait on each."""
        line = schema.record
        with self._store.begin() as conn:
            rows = conn.execute(
                select(line.c.park_reason, func.count())
                .where(line.c.status == RecordStatus.PARKED.value)
                .where(line.c.park_kind == ParkKind.UNMAPPED.value)
                .group_by(line.c.park_reason)
            ).all()
        counts: dict[tuple[MappingKind, str], int] = {}
        for reason, n in rows:
            for kind, code in parse_unmapped_reason(reason):
                counts[(kind, code)] = counts.get((kind, code), 0) + n
        return sorted(
            (UnmappedCode(kind, code, n) for (kind, code), n in counts.items()),
            key=lambda item: (-item.waiting_lines, item.kind.value, item.his_code),
        )


_REASON_PREFIX = "no national code mapped for "


def unmapped_reason(missing: list[tuple[MappingKind, str]]) -> str:
    """The park reason for a line with unmapped codes; :func:`parse_unmapped_reason` reads it."""
    return _REASON_PREFIX + "; ".join(f"{kind.value} {code}" for kind, code in missing)


def parse_unmapped_reason(reason: str) -> list[tuple[MappingKind, str]]:
    if not reason.startswith(_REASON_PREFIX):
        return []
    found = []
    for part in reason[len(_REASON_PREFIX) :].split("; "):
        kind, _, code = part.partition(" ")
        found.append((MappingKind(kind), code))
    return found
