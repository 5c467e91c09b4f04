"""Versioned catalogues in the state store: validate a file into a new version, switch it in
atomically, list, roll back and compare versions.

A file is checked row by row while its good rows stream into a temporary table (memory stays
flat; see :mod:`adapter.catalog.staging`), from which a file that passed is copied into its
``staging`` version in one statement (the primary key finds duplicate codes). Any problem
refuses the whole file: the version is marked ``refused`` with its report and the active
version is untouched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal, select, update

from adapter import moments
from adapter.catalog.reader import RowSource
from adapter.catalog.staging import ENTRY_COLUMNS, Duplicate, Staging
from adapter.errors import AdapterError, FileFormatError, StateStoreError
from adapter.plugin.catalogues import CatalogSpec
from adapter.state import schema
from adapter.state.store import StateStore, in_chunks, inserted_id, utcnow

_version = schema.catalog_version
#: what the duplicate check of a policy file's entries needs to know (the code is "column 1")
_ENTRY_LIST = CatalogSpec(kind="entries", name="", columns=1, code_column=1, name_column=1, version_column=1,
                          code_pattern=".*")
_entry = schema.catalog_entry
#: rows staged a statement; also the batch the duplicates of a report are grouped by
_BATCH = 5000
#: problems kept in a report (the count of all of them is kept too)
_REPORT_LIMIT = 50
#: rows between two calls of an ingest's ``progress``
_PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" + (f" column {self.column}" if self.column else "")
        return f"{where}: {self.message}"


class CatalogRefused(AdapterError):
    """A download or import that failed validation; nothing it carried is used."""

    def __init__(self, kind: str, problems: list[Problem], total: int) -> None:
        self.kind = kind
        self.problems = problems
        self.total = total
        more = f" (and {total - len(problems)} more)" if total > len(problems) else ""
        shown = "\n  ".join(str(p) for p in problems[:10])
        super().__init__(
            f"catalogue {kind} refused, {total} problem(s){more}; the active version is unchanged:\n  {shown}"
        )


@dataclass
class VersionInfo:
    id: int
    kind: str
    ver: str
    status: str
    rows_in_file: int
    rows_total: int
    source: str
    encoding: str | None
    created_at: datetime
    activated_at: datetime | None


@dataclass
class CatalogDiff:
    kind: str
    old_id: int | None
    new_id: int
    added: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    retired: list[dict[str, Any]] = field(default_factory=list)
    #: national code -> the HIS codes mapped to it
    affected: dict[str, list[str]] = field(default_factory=dict)


class CatalogStore:
    def __init__(self, store: StateStore) -> None:
        self.store = store

    # -- reading ------------------------------------------------------------------------
    def active(self, kind: str) -> VersionInfo | None:
        with self.store.begin() as conn:
            row = conn.execute(select(_version).where(_version.c.kind == kind, _version.c.status == "active")).first()
        return None if row is None else VersionInfo(**{k: row._mapping[k] for k in VersionInfo.__dataclass_fields__})

    def versions(self, kind: str | None = None) -> list[VersionInfo]:
        query = select(_version).order_by(_version.c.kind, _version.c.id)
        if kind is not None:
            query = query.where(_version.c.kind == kind)
        with self.store.begin() as conn:
            rows = conn.execute(query).all()
        return [VersionInfo(**{k: r._mapping[k] for k in VersionInfo.__dataclass_fields__}) for r in rows]

    def report(self, version_id: int) -> dict[str, Any]:
        with self.store.begin() as conn:
            text = conn.execute(select(_version.c.report).where(_version.c.id == version_id)).scalar()
        return json.loads(text) if text else {}

    def entry(self, kind: str, code: str) -> dict[str, Any] | None:
        """The active catalogue's row for a national code."""
        with self.store.begin() as conn:
            row = conn.execute(
                select(_entry).join(_version, _version.c.id == _entry.c.version_id)
                .where(_version.c.kind == kind, _version.c.status == "active", _entry.c.code == code)
            ).first()
        return None if row is None else dict(row._mapping)

    # -- ingesting ----------------------------------------------------------------------
    def ingest(
        self,
        spec: CatalogSpec,
        catalog_file: RowSource,
        *,
        source: str,
        declared_rows: int | None = None,
        accept_mass_change: bool = False,
        max_retire_share: float = 0.05,
        progress: Callable[[int], None] | None = None,
    ) -> VersionInfo:
        """Validate and switch in one file. Raises CatalogRefused (the version is kept as
        ``refused`` with its report) or returns the new active version."""
        previous = self.active(spec.kind)
        floor = previous.ver if previous is not None else ""
        now = utcnow()
        with self.store.begin() as conn:
            version_id = inserted_id(conn.execute(insert(_version).values(
                kind=spec.kind, ver=floor, status="staging", source=source[:300], created_at=now,
            )))
        checker = _RowChecker(spec, catalog_file.text_name, floor)
        with self.store.connect() as conn:
            staging = Staging(conn, version_id)
            try:
                fault = self._stage_rows(catalog_file, checker, staging, version_id, progress)
                counted = declared_rows is None or checker.rows == declared_rows
                # Only a file that passed every check is copied; the rows of any other one were
                # staged only to find its duplicate codes (those of complete batches if it broke off).
                self._copy_or_report(staging, checker, version_id, copy=fault is None and counted,
                                     below=None if fault is None else checker.accepted // _BATCH * _BATCH)
            finally:
                staging.drop()
        if fault is not None:
            checker.add(0, 0, str(fault))
        if not counted:
            checker.add(0, 0, f"the file has {checker.rows} rows but the centre declared data_cnt={declared_rows}")
        if checker.total:
            self._refuse(version_id, checker, checker.rows, catalog_file.encoding)
            raise CatalogRefused(spec.kind, checker.problems, checker.total)
        ver = checker.max_version or floor
        with self.store.begin() as conn:
            self._merge(conn, version_id, previous)
            conn.execute(update(_version).where(_version.c.id == version_id).values(
                ver=ver, rows_in_file=checker.rows, encoding=catalog_file.encoding,
                rows_total=conn.execute(select(func.count()).where(_entry.c.version_id == version_id)).scalar_one(),
            ))
        retired_share, retired = self._retire_share(version_id, previous)
        if retired_share > max_retire_share and not accept_mass_change:
            # Kept whole but not used, so a person can look before deciding.
            checker.add(0, 0, f"this download would retire {retired} of the active codes "
                              f"({retired_share:.1%}, more than {max_retire_share:.0%}); it is held as version "
                              f"{version_id}: see `catalog diff {spec.kind} --new {version_id}`, then "
                              f"`catalog accept {version_id}` (or sync with --accept-mass-change)")
            report = {"problems": [str(p) for p in checker.problems], "total": checker.total,
                      "base": previous.id if previous else None}
            with self.store.begin() as conn:
                conn.execute(update(_version).where(_version.c.id == version_id).values(
                    status="held", report=json.dumps(report, ensure_ascii=False)))
            raise CatalogRefused(spec.kind, checker.problems, checker.total)
        return self._activate(spec.kind, version_id, previous)

    def accept(self, version_id: int) -> VersionInfo:
        """Switch in a version held for a mass change, if what it was built on is still active."""
        with self.store.begin() as conn:
            row = conn.execute(select(_version).where(_version.c.id == version_id)).first()
        if row is None or row.status != "held":
            raise AdapterError(f"catalogue version {version_id} is not held for acceptance")
        base = json.loads(row.report or "{}").get("base")
        previous = self.active(row.kind)
        if (previous.id if previous else None) != base:
            raise AdapterError(f"version {version_id} was built on version {base}, but the active one is now "
                               f"{previous.id if previous else 'none'}; sync again")
        return self._activate(row.kind, version_id, previous)

    def ingest_entries(self, kind: str, ver: str, entries: list[dict[str, Any]], *, source: str,
                       filename: str) -> VersionInfo:
        """Switch in a complete list of entries (a regional policy file): the same duplicate and
        version checks as a catalogue file; the list replaces the version before it."""
        previous = self.active(kind)
        with self.store.begin() as conn:
            version_id = inserted_id(conn.execute(insert(_version).values(
                kind=kind, ver=ver, status="staging", source=source[:300], created_at=utcnow(),
            )))
        checker = _RowChecker(_ENTRY_LIST, filename, previous.ver if previous else "")
        if previous is not None and ver < previous.ver:
            checker.add(0, 0, f"version {ver} is below the active version {previous.ver} (a regression)")
        else:
            with self.store.connect() as conn:
                staging = Staging(conn, version_id)
                try:
                    for start in range(0, len(entries), _BATCH):
                        staging.add([tuple(entry[name] for name in ENTRY_COLUMNS)
                                     for entry in entries[start:start + _BATCH]])
                    self._copy_or_report(staging, checker, version_id, copy=True)
                finally:
                    staging.drop()
        if checker.total:
            self._refuse(version_id, checker, len(entries), "utf-8")
            raise CatalogRefused(kind, checker.problems, checker.total)
        with self.store.begin() as conn:
            conn.execute(update(_version).where(_version.c.id == version_id).values(
                ver=ver, rows_in_file=len(entries), rows_total=len(entries), encoding="utf-8"))
        return self._activate(kind, version_id, previous)

    def _stage_rows(self, source: RowSource, checker: _RowChecker, staging: Staging, version_id: int,
                    progress: Callable[[int], None] | None) -> FileFormatError | None:
        """Check every row and stage the good ones; returns what was wrong with the file
        itself, if it could not be read to its end."""
        batch: list[tuple[Any, ...]] = []
        try:
            for line_no, fields in source.rows():
                entry = checker.entry(line_no, fields)
                checker.rows += 1
                if entry is not None:
                    batch.append(entry)
                    if len(batch) >= _BATCH:
                        staging.add(batch)
                        batch = []
                if progress is not None and checker.rows % _PROGRESS_EVERY == 0:
                    progress(_PROGRESS_EVERY)
            staging.add(batch)
            if progress is not None:
                progress(checker.rows % _PROGRESS_EVERY)
        except FileFormatError as exc:
            return exc
        except BaseException as exc:
            # The download broke off (the centre stopped answering mid-way): nothing is used.
            self._copy_or_report(staging, checker, version_id, copy=False,
                                 below=checker.accepted // _BATCH * _BATCH)
            checker.add(0, 0, f"download interrupted: {exc}")
            self._refuse(version_id, checker, checker.rows, source.encoding, status="failed")
            raise
        return None

    @staticmethod
    def _copy_or_report(staging: Staging, checker: _RowChecker, version_id: int, *, copy: bool,
                        below: int | None = None) -> None:
        """Copy the staged rows into the version if ``copy`` and no code is staged twice;
        otherwise report the duplicate codes among them (among the first ``below``)."""
        refused = staging.copy_into(version_id) if copy else None
        if copy and refused is None:
            return
        checker.add_duplicates(_duplicate_problems(staging.duplicates(below), checker.filename,
                                                   checker.spec.code_column))
        if refused is not None and not checker.total:  # the copy failed, and not for a duplicate
            raise StateStoreError(f"state store failed: {refused}") from refused

    def _retire_share(self, version_id: int, previous: VersionInfo | None) -> tuple[float, int]:
        if previous is None:
            return 0.0, 0
        old, new = _entry.alias("old"), _entry.alias("new")
        with self.store.begin() as conn:
            active = conn.execute(select(func.count()).where(
                old.c.version_id == previous.id, old.c.valid == "1")).scalar_one()
            retired = conn.execute(select(func.count()).select_from(
                old.join(new, and_(new.c.code == old.c.code, new.c.version_id == version_id))
            ).where(old.c.version_id == previous.id, old.c.valid == "1", new.c.valid != "1")).scalar_one()
        return (retired / active if active else 0.0), int(retired)

    def _refuse(self, version_id: int, checker: _RowChecker, rows: int, encoding: str,
                status: str = "refused") -> None:
        report = {"problems": [str(p) for p in checker.problems], "total": checker.total}
        with self.store.begin() as conn:
            conn.execute(delete(_entry).where(_entry.c.version_id == version_id))
            conn.execute(update(_version).where(_version.c.id == version_id).values(
                status=status, rows_in_file=rows, encoding=encoding,
                report=json.dumps(report, ensure_ascii=False)))

    @staticmethod
    def _merge(conn: Any, version_id: int, previous: VersionInfo | None) -> None:
        """An incremental file carries the changes: the rest comes from the version before."""
        if previous is None:
            return
        changed = select(_entry.c.code).where(_entry.c.version_id == version_id)
        columns = [c for c in _entry.c if c.name != "version_id"]
        conn.execute(insert(_entry).from_select(
            ["version_id", *[c.name for c in columns]],
            select(literal(version_id), *columns[:-1], literal(0))
            .where(_entry.c.version_id == previous.id, _entry.c.code.not_in(changed)),
        ))

    def _activate(self, kind: str, version_id: int, previous: VersionInfo | None) -> VersionInfo:
        """The switch: one transaction, so readers see the old version or the new, never a mix."""
        with self.store.begin() as conn:
            if previous is not None:
                conn.execute(update(_version).where(_version.c.id == previous.id).values(status="superseded"))
            conn.execute(update(_version).where(_version.c.id == version_id).values(
                status="active", activated_at=utcnow()))
        active = self.active(kind)
        assert active is not None
        return active

    # -- switching back -----------------------------------------------------------------
    def rollback(self, kind: str) -> VersionInfo:
        """Make the version before the active one active again."""
        current = self.active(kind)
        if current is None:
            raise AdapterError(f"catalogue {kind} has no active version to roll back")
        with self.store.begin() as conn:
            before = conn.execute(select(_version.c.id).where(
                _version.c.kind == kind, _version.c.status == "superseded", _version.c.id < current.id,
            ).order_by(_version.c.id.desc())).first()
            if before is None:
                raise AdapterError(f"catalogue {kind} has no earlier version to return to")
            conn.execute(update(_version).where(_version.c.id == current.id).values(status="rolled_back"))
            conn.execute(update(_version).where(_version.c.id == before.id).values(
                status="active", activated_at=utcnow()))
        active = self.active(kind)
        assert active is not None
        return active

    def diff(self, kind: str, new_id: int | None = None, old_id: int | None = None) -> CatalogDiff:
        """Added, changed (validity, dates, restricted use, price cap) and retired codes between
        two versions (default: the active one against the one before it)."""
        with self.store.begin() as conn:
            if new_id is None:
                new_id = conn.execute(select(_version.c.id).where(
                    _version.c.kind == kind, _version.c.status == "active")).scalar()
                if new_id is None:
                    raise AdapterError(f"catalogue {kind} has no active version")
            if old_id is None:
                old_id = conn.execute(select(_version.c.id).where(
                    _version.c.kind == kind, _version.c.id < new_id,
                    _version.c.status.in_(["superseded", "rolled_back", "active"]),
                ).order_by(_version.c.id.desc())).scalar()
            result = CatalogDiff(kind, old_id, new_id)
            new_rows = {r.code: r for r in conn.execute(select(_entry).where(_entry.c.version_id == new_id))}
            old_rows = {} if old_id is None else {
                r.code: r for r in conn.execute(select(_entry).where(_entry.c.version_id == old_id))}
            watched = ("valid", "begin_date", "end_date", "restricted", "price_cap", "name")
            for code, row in new_rows.items():
                before = old_rows.get(code)
                if before is None:
                    result.added.append({"code": code, "name": row.name})
                    continue
                changes = {k: (getattr(before, k), getattr(row, k))
                           for k in watched if getattr(before, k) != getattr(row, k)}
                if before.valid == "1" and row.valid != "1":
                    result.retired.append({"code": code, "name": row.name})
                elif changes:
                    result.changed.append({"code": code, "name": row.name, "changes": changes})
            touched = [d["code"] for d in result.changed + result.retired]
            for chunk in in_chunks(touched):  # a new edition may change every code of the catalogue
                for national, his in conn.execute(select(schema.mapping.c.national_code, schema.mapping.c.his_code)
                                                  .where(schema.mapping.c.national_code.in_(chunk))):
                    result.affected.setdefault(national, []).append(his)
        return result


class _RowChecker:
    """Checks one row at a time; keeps the first problems and counts all of them.

    Most rows of a real file are fine, so each row is first tried against the spec's checks
    prepared once (the cells the spec names picked in one call, stripped once, dates and
    numbers looked up in a small cache of values already judged). A row that fails any of
    them goes through the checks one cell at a time, which say what is wrong; so a row is
    accepted or refused, and explained, as before."""

    def __init__(self, spec: CatalogSpec, filename: str, floor: str) -> None:
        self.spec = spec
        self.filename = filename
        self.floor = floor
        self.problems: list[Problem] = []
        #: for each kept problem, the staging batches complete when it was found (see add_duplicates)
        self._found_after: list[int] = []
        self.total = 0
        self.max_version = ""
        #: rows checked so far
        self.rows = 0
        #: rows accepted so far (the staging numbers them in this order)
        self.accepted = 0
        # read once, not per row (a catalogue has up to millions of rows)
        self._required = tuple(self.spec.required_columns)
        self._dates = tuple(self.spec.all_date_columns)
        self._prepare(spec)

    def _prepare(self, spec: CatalogSpec) -> None:
        optional = (spec.name_column, spec.begin_column, spec.end_column, spec.valid_column,
                    spec.restricted_column, spec.price_column)
        wanted = sorted({spec.code_column, spec.version_column, *self._required, *self._dates,
                         *spec.number_columns, *(c for c in optional if c)})
        self._pick = _picker([c - 1 for c in wanted])
        # After the picked cells comes one empty cell: where a column the spec lacks is read.
        place = {column: n for n, column in enumerate(wanted)}
        empty = len(wanted)
        self._entry_cells = itemgetter(*(place[c] if c else empty
                                         for c in (spec.code_column, spec.version_column, *optional)))
        self._required_cells = _picker([place[c] for c in self._required])
        self._date_cells = _picker([place[c] for c in self._dates])
        self._number_cells = _picker([place[c] for c in spec.number_columns])

    def add(self, line: int, column: int, message: str) -> None:
        self.total += 1
        if len(self.problems) < _REPORT_LIMIT:
            self.problems.append(Problem(self.filename, line, column, message))
            self._found_after.append(self.accepted // _BATCH)

    def add_duplicates(self, found: Iterable[tuple[int, Problem]]) -> None:
        """Count and place the duplicates found once the file is staged. Each comes with the
        number of staging batches complete when it is reported; it goes after the problems
        found while those batches were read and before any found later (its place in the
        report when each batch was checked for duplicates as soon as it was full)."""
        early: list[tuple[int, int, Problem]] = []
        for after, problem in found:
            self.total += 1
            if len(early) < _REPORT_LIMIT:
                early.append((after, 0, problem))
        if not early:
            return
        ours = [(after, 1, problem) for after, problem in zip(self._found_after, self.problems, strict=True)]
        merged = sorted([*ours, *early], key=lambda item: item[:2])[:_REPORT_LIMIT]  # stable: each keeps its order
        self.problems = [problem for *_, problem in merged]
        self._found_after = [after for after, *_ in merged]

    def entry(self, line_no: int, fields: list[str]) -> tuple[Any, ...] | None:
        """The row's entry values (ENTRY_COLUMNS order), or None (its problems added)."""
        if len(fields) >= self.spec.columns:
            cells = (*map(str.strip, self._pick(fields)), "")
            code, version, name, begin, end, valid, restricted, price = self._entry_cells(cells)
            if (all(self._required_cells(cells)) and self.spec.code_ok(code)
                    and all(map(_date_ok, self._date_cells(cells)))
                    and all(map(_number_ok, self._number_cells(cells)))
                    and not (version and self.floor and version < self.floor)):
                self.accepted += 1
                if version > self.max_version:
                    self.max_version = version
                return (code, name[:300], version, begin[:10] or None, end[:10] or None, valid or "1",
                        restricted[:500], price or None, line_no)
        return self._explain(line_no, fields)

    def _explain(self, line_no: int, fields: list[str]) -> tuple[Any, ...] | None:
        """The checks one cell at a time: every problem of the row, each with its column."""
        spec = self.spec
        if len(fields) < spec.columns:
            self.add(line_no, len(fields), f"{len(fields)} columns, {spec.kind} needs at least {spec.columns}")
            return None
        before = self.total
        for column in self._required:
            if not fields[column - 1].strip():
                self.add(line_no, column, "required column is empty")
        code = fields[spec.code_column - 1].strip()
        if code and not spec.code_ok(code):
            self.add(line_no, spec.code_column, f"code {code!r} is not a {spec.kind} national code")
        for column in self._dates:
            value = fields[column - 1].strip()
            if value and not _is_date(value):
                self.add(line_no, column, f"{value!r} is not a date (yyyy-MM-dd)")
        for column in spec.number_columns:
            value = fields[column - 1].strip()
            if value and not _is_number(value):
                self.add(line_no, column, f"{value!r} is not a number")
        version = fields[spec.version_column - 1].strip()
        if version and self.floor and version < self.floor:
            self.add(line_no, spec.version_column,
                     f"version {version} is below the active version {self.floor} (a regression)")
        if self.total > before:
            return None
        self.accepted += 1
        self.max_version = max(self.max_version, version)

        def cell(number: int | None) -> str:
            return fields[number - 1].strip() if number else ""

        return (code, cell(spec.name_column)[:300], version, cell(spec.begin_column)[:10] or None,
                cell(spec.end_column)[:10] or None, cell(spec.valid_column) or "1",
                cell(spec.restricted_column)[:500], cell(spec.price_column) or None, line_no)


def _picker(places: list[int]) -> Callable[[Sequence[str]], tuple[str, ...]]:
    """The cells at ``places`` of a row, as a tuple, in one call (itemgetter gives a bare
    value, not a tuple, for one place, and fails for none)."""
    if len(places) > 1:
        return itemgetter(*places)
    return lambda row: tuple(row[place] for place in places)


def _duplicate_problems(found: Iterable[Duplicate], filename: str, column: int) -> Iterator[tuple[int, Problem]]:
    """The staged rows whose code came before, reported as the staging always has: batch by
    batch of _BATCH accepted rows, a repeat within a batch names the batch's first line with
    the code, then a code of an earlier batch names the code's first line. Each comes with the
    number of batches complete when it is reported (see _RowChecker.add_duplicates)."""
    batch, first_here, earlier = -1, dict[str, int](), list[Problem]()
    for seq, line, code, first_line in found:
        if seq // _BATCH != batch:
            yield from ((batch + 1, problem) for problem in earlier)
            batch, first_here, earlier = seq // _BATCH, {}, []
        seen = first_here.get(code)
        if seen is not None:
            yield batch + 1, Problem(filename, line, column, f"code {code} already on line {seen}")
            continue
        first_here[code] = line
        if first_line != line:
            earlier.append(Problem(filename, line, column, f"code {code} already on line {first_line}"))
    yield from ((batch + 1, problem) for problem in earlier)


@lru_cache(maxsize=4096)
def _date_ok(value: str) -> bool:
    # A catalogue's dates repeat (a few thousand distinct ones in a million rows): judged once each.
    return not value or _is_date(value)


@lru_cache(maxsize=4096)
def _number_ok(value: str) -> bool:
    return not value or _is_number(value)


def _is_date(value: str) -> bool:
    for pattern in ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y%m%d"):
        try:
            moments.parse(value, pattern)
            return True
        except ValueError:
            continue
    return False


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


