"""The state store: a SQLAlchemy engine over SQLite (WAL) or PostgreSQL, plus small helpers.

SQLite is the embedded default. PostgreSQL lets several adapter workers share one spool;
claims then use ``FOR UPDATE SKIP LOCKED`` so two workers never send the same message. A SQLite
file is for the adapter's user alone (:mod:`adapter.state.private`); the payloads and HIS rows
in either are sealed when the configuration names a key (:mod:`adapter.state.sealing`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, Table, create_engine, event, func, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adapter.errors import StateStoreError
from adapter.state.private import prepare_sqlite_file
from adapter.state.sealing import Keyring, KeySettings, attach
from adapter.state.upgrade import Upgrade, upgrade

logger = logging.getLogger(__name__)
T = TypeVar("T")


#: values bound in one IN list (well below PostgreSQL's 65,535 parameters and SQLite's limits)
IN_LIST_SIZE = 500


def in_chunks(values: Sequence[T], size: int = IN_LIST_SIZE) -> Iterator[Sequence[T]]:
    """``values`` cut into slices short enough for one ``IN (...)`` list each."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def unindexed(column: ColumnElement[str]) -> ColumnElement[str]:
    """``column`` in a form no index serves, for a condition that only guards rows a primary-key
    IN list already picks (``id IN (...) AND status = 'ready'``). Without statistics SQLite's
    planner takes ix_record_park (status) for it once the list is a dozen ids long, and reads
    every ready record of the backlog for each message spooled: building grew quadratic in it."""
    return func.coalesce(column, "")


def utcnow() -> datetime:
    """Naive UTC now: every timestamp in the state store is UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def inserted_id(result: CursorResult[Any]) -> int:
    """The integer primary key of the row a single-row INSERT added."""
    key = result.inserted_primary_key
    # Only a multi-row INSERT has no single key; every caller inserts one row.
    assert key is not None
    return int(key[0])


class StateSettings(KeySettings, Protocol):
    """What opening the state database needs from the configuration (``[state]``)."""

    @property
    def url(self) -> str: ...


def state_engine(url: str) -> Engine:
    """An engine on the state database; a SQLite file (and its folder) is made private first,
    and gets the pragmas the store relies on."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StateStoreError(f"state store URL {url!r} is not a database URL") from exc
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:") \
            and not database.startswith("file:"):
        try:
            prepare_sqlite_file(Path(database))
        except OSError as exc:
            raise StateStoreError(f"cannot create the state database {database}: {exc.strerror}") from exc
    try:
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateStoreError(f"cannot open state store {parsed!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class StateStore:
    """Owns the engine of the state database; opening it creates the tables, or upgrades a
    database written by an earlier version (:mod:`adapter.state.upgrade`). ``keyring`` seals
    and unseals the sealed columns (none: written plain, and a sealed value is refused)."""

    def __init__(self, url: str, keyring: Keyring | None = None) -> None:
        self.url = url
        self.upgrade: Upgrade
        self.engine: Engine = state_engine(url)
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self.keyring = keyring or Keyring()
        attach(self.engine, self.keyring)
        try:
            self.upgrade = upgrade(self.engine)
        except SQLAlchemyError as exc:
            self.engine.dispose()
            raise StateStoreError(f"cannot open state store {parsed!r}: {exc}") from exc
        except StateStoreError:
            self.engine.dispose()
            raise
        logger.debug("state database %r at revision %s; sealing %s", parsed, self.upgrade.after,
                     f"with key {self.keyring.current_id}" if self.keyring.seals else "off",
                     extra={"action": "state_open"})

    @classmethod
    def configured(cls, settings: StateSettings) -> StateStore:
        """The state database as the configuration describes it, with its sealing keys."""
        return cls(settings.url, Keyring.from_settings(settings))

    @property
    def supports_skip_locked(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction; SQLAlchemy errors become :class:`StateStoreError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store failed: {exc}") from exc

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """One connection for several transactions (each its own ``conn.begin()``), for work
        that keeps a temporary table between them; SQLAlchemy errors become StateStoreError."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StateStoreError(f"state store failed: {exc}") from exc

    def insert_ignoring_duplicates(
        self, conn: Connection, table: Table, rows: Sequence[dict[str, Any]]
    ) -> int:
        """Insert rows, silently skipping any that violate a unique key; returns rows added."""
        if not rows:
            return 0
        if self.dialect == "postgresql":
            stmt: Any = pg_insert(table).on_conflict_do_nothing()
        elif self.dialect == "sqlite":
            stmt = sqlite_insert(table).on_conflict_do_nothing()
        else:  # pragma: no cover - other backends insert one by one
            added = 0
            for row in rows:
                try:
                    with conn.begin_nested():
                        conn.execute(insert(table), row)
                    added += 1
                except SQLAlchemyError:
                    continue
            return added
        # RETURNING yields exactly the rows inserted (rowcount is unreliable for executemany
        # with ON CONFLICT on some drivers); SQLAlchemy batches this into multi-row INSERTs.
        key = next(iter(table.primary_key.columns))
        result = conn.execute(stmt.returning(key), list(rows))
        return len(result.all())

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the status command read while the daemon writes; synchronous=FULL because a
    # lost ack after a power cut would mean a resend. A busy timeout keeps a CLI
    # command that touches the store at the same moment from failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
