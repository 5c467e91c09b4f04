"""Where a catalogue file's rows wait while the file is checked: a temporary table, filled in
file order, copied into ``catalog_entry`` in code order once the whole file has passed.

Inserting a million rows straight into ``catalog_entry`` in file order updated its primary-key
index at random places: each commit rewrote thousands of index pages (on SQLite through the
WAL and again at the checkpoint), and it grew slower as the index outgrew the page cache (1M
rows: 49 s, against 2.4 s for 100k). Appending to a table without an index costs little, and
one ``INSERT ... SELECT ... ORDER BY code`` fills the index from left to right. The database
sorts with bounded memory (spilling to temporary files), so memory stays flat.

A temporary table belongs to one connection, so the staging holds one for its whole life; on
PostgreSQL it is also unlogged. It is dropped at the end (or goes with its connection).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, Table, func, insert, literal, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adapter.errors import StateStoreError
from adapter.state import schema

_entry = schema.catalog_entry
#: a staged entry's values, in this order (``catalog_entry`` without its version_id)
ENTRY_COLUMNS: tuple[str, ...] = tuple(c.name for c in _entry.c if c.name != "version_id")
#: one row of a code staged more than once: (its place among the staged rows, counted from 0;
#: its line; the code; the line of the code's first row)
Duplicate = tuple[int, int, str, int]


class Staging:
    """The staged rows of one version, in the order they came."""

    def __init__(self, conn: Connection, version_id: int) -> None:
        self.conn = conn
        self.table = Table(f"catalog_staging_{version_id}", MetaData(),
                           # numbered by the database as rows come (SQLite's rowid, a SERIAL on
                           # PostgreSQL): cheaper than binding a number per row
                           Column("seq", Integer, primary_key=True, autoincrement=True),
                           *(Column(name, _entry.c[name].type) for name in ENTRY_COLUMNS),
                           prefixes=["TEMPORARY"])
        with self._transaction():
            self.table.create(conn)
        # One statement compiled once, run with executemany: building each row's statement in
        # SQLAlchemy cost more than checking the row. Every driver the store supports takes
        # positional "?" (sqlite3) or "%s" (psycopg); executemany binds one row at a time, so
        # PostgreSQL's limit of 65,535 parameters a statement is never near.
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        self._insert = (f"INSERT INTO {self.table.name} ({', '.join(ENTRY_COLUMNS)}) "
                        f"VALUES ({', '.join([mark] * len(ENTRY_COLUMNS))})")

    def add(self, entries: Sequence[tuple[Any, ...]]) -> None:
        """Stage entries (ENTRY_COLUMNS order), after those staged before."""
        if entries:
            with self._transaction():
                self.conn.exec_driver_sql(self._insert, list(entries))

    def copy_into(self, version_id: int) -> IntegrityError | None:
        """Copy every staged row into ``catalog_entry`` as ``version_id``, in code order. A code
        staged twice breaks the primary key: nothing is copied, and the error is returned."""
        staged = self.table.c
        try:
            with self._transaction():
                self.conn.execute(insert(_entry).from_select(
                    ["version_id", *ENTRY_COLUMNS],
                    select(literal(version_id), *(staged[name] for name in ENTRY_COLUMNS)).order_by(staged.code),
                ))
        except IntegrityError as exc:
            return exc
        return None

    def duplicates(self, below: int | None = None) -> Iterator[Duplicate]:
        """Every staged row whose code was staged more than once (its first row too), in the
        order they were staged, numbered from 0; only the first ``below`` rows if given."""
        staged = self.table.c
        numbered = select(staged.line_no, staged.code,
                          (func.row_number().over(order_by=staged.seq) - 1).label("n")).subquery("numbered")
        kept = select(numbered)
        if below is not None:
            kept = kept.where(numbered.c.n < below)
        rows = kept.subquery("kept").c
        by_code = select(rows.n, rows.line_no, rows.code,
                         func.first_value(rows.line_no).over(partition_by=rows.code, order_by=rows.n).label("first"),
                         func.count().over(partition_by=rows.code).label("times")).subquery("by_code").c
        query = (select(by_code.n, by_code.line_no, by_code.code, by_code.first)
                 .where(by_code.times > 1).order_by(by_code.n))
        with self._transaction():
            for n, line, code, first_line in self.conn.execute(query.execution_options(yield_per=1000)):
                yield int(n), int(line), str(code), int(first_line)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """A transaction on the staging's connection; errors read as those of StateStore.begin
        (a broken primary key stays an IntegrityError, for copy_into)."""
        try:
            with self.conn.begin():
                yield
        except IntegrityError:
            raise
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store failed: {exc}") from exc

    def drop(self) -> None:
        try:
            with self.conn.begin():
                self.table.drop(self.conn)
        except SQLAlchemyError:
            self.conn.invalidate()  # a closed connection takes its temporary tables with it
