"""A read-only SQL source over any SQLAlchemy URL, read in watermark order.

The watermark is stored in the state database in the same transaction as the extracted lines
(see :mod:`adapter.flow.extract`), so a crash between reading and storing repeats nothing and
skips nothing: the next start reads again from the last committed watermark.

One row can also be read again by its business key (``spool recheck``), wherever the watermark
stands: the query is read as a subquery filtered on its key columns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adapter.errors import SourceError

logger = logging.getLogger(__name__)

#: a watermark below every integer one (text watermarks start below "")
_LOWEST = -(2**63)
#: the ``:limit`` of a read by key: every row that has the key
_NO_LIMIT = 2**31 - 1
#: keys per query of a read by key (two or three parameters each)
_KEYS_PER_QUERY = 200


class SqlSource:
    """Runs one parameterised query (``:watermark``, ``:limit``) against the HIS."""

    def __init__(self, url: str, query: str, watermark_column: str, countable: bool = True) -> None:
        try:
            self._display_url = repr(make_url(url))  # password masked
        except ArgumentError as exc:
            raise SourceError(f"HIS URL {url!r} is not a database URL") from exc
        self._engine = create_engine(url, future=True, pool_pre_ping=True)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_text_as_stored)
        self._text = query
        self._query = text(query)
        self.watermark_column = watermark_column
        #: :meth:`count_after` may run (``[progress] count_his_backlog``)
        self.countable = countable

    def read_after(self, watermark: str, limit: int) -> list[dict[str, Any]]:
        """Rows whose watermark column is beyond ``watermark``, at most ``limit``, in order."""
        try:
            with self._engine.connect() as conn:
                result = conn.execute(
                    self._query, {"watermark": _bind_value(watermark), "limit": limit}
                )
                rows = [dict(row._mapping) for row in result]
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read the HIS at {self._display_url}: {exc}") from exc
        if rows and self.watermark_column not in rows[0]:
            raise SourceError(
                f"the HIS query returns no column {self.watermark_column!r} "
                f"(columns: {', '.join(rows[0])})"
            )
        return rows

    def count_after(self, watermark: str) -> int | None:
        """How many rows the query has beyond ``watermark`` (its ``:limit`` lifted), for the
        progress of a long extract; None when counting is off. One COUNT over the query: about
        what reading the rest once costs the HIS, so it is asked only when an extract proves long."""
        if not self.countable:
            return None
        inner = self._text.strip().rstrip(";")  # on a line of its own below: a final -- comment ends there
        try:
            with self._engine.connect() as conn:
                return int(conn.execute(text(f"SELECT count(*) FROM ({inner}\n) AS backlog"),
                                        {"watermark": _bind_value(watermark), "limit": _NO_LIMIT}).scalar_one())
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot count the HIS rows past the watermark at {self._display_url}: {exc}") from exc

    def read_by_keys(
        self, columns: Sequence[str], keys: Sequence[Sequence[Any]], watermark: str
    ) -> list[dict[str, Any]]:
        """The rows of the query whose ``columns`` hold one of ``keys`` (a value per column),
        wherever the watermark stands: the query is read as a subquery, its ``:watermark``
        bound below every row (the lowest integer, or empty text, as the stored ``watermark``
        is one or the other) and its ``:limit`` lifted. Raises SourceError when the query cannot
        be read so: it returns no such column, or the database refuses it as a subquery."""
        if not keys:
            return []
        floor: int | str = _LOWEST if isinstance(_bind_value(watermark), int) else ""
        inner = self._text.strip().rstrip(";")  # on a line of its own below: a final -- comment ends there
        quote = self._engine.dialect.identifier_preparer.quote
        rows: list[dict[str, Any]] = []
        try:
            with self._engine.connect() as conn:
                returned = list(conn.execute(text(f"SELECT * FROM ({inner}\n) AS keyed WHERE 1 = 0"),
                                             {"watermark": floor, "limit": 0}).keys())
                missing = [column for column in columns if column not in returned]
                if missing:
                    raise SourceError(f"the HIS query returns no column {', '.join(missing)}, so its rows "
                                      "cannot be read again by their business key")
                for start in range(0, len(keys), _KEYS_PER_QUERY):
                    params: dict[str, Any] = {"watermark": floor, "limit": _NO_LIMIT}
                    alternatives = []
                    for i, key in enumerate(keys[start:start + _KEYS_PER_QUERY]):
                        parts = []
                        for j, (column, value) in enumerate(zip(columns, key, strict=True)):
                            params[f"keyed_{i}_{j}"] = value
                            parts.append(f"keyed.{quote(column)} = :keyed_{i}_{j}")
                        alternatives.append("(" + " AND ".join(parts) + ")")
                    result = conn.execute(
                        text(f"SELECT * FROM ({inner}\n) AS keyed WHERE " + " OR ".join(alternatives)), params)
                    rows += [dict(row._mapping) for row in result]
        except SQLAlchemyError as exc:
            raise SourceError(f"cannot read the HIS query by its key columns ({', '.join(columns)}) at "
                              f"{self._display_url}: {exc}") from exc
        return rows

    def close(self) -> None:
        self._engine.dispose()


def _bind_value(watermark: str) -> int | str:
    # Integer keys must be compared as numbers ("10" < "9" as text); anything else (timestamps
    # in ISO form) compares correctly as text.
    try:
        return int(watermark)
    except ValueError:
        return watermark


def _sqlite_text_as_stored(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.text_factory = _text_or_bytes


def _text_or_bytes(data: bytes) -> str | bytes:
    """SQLite TEXT as str, except a value that is not UTF-8: that one stays bytes, and the
    extractor parks its row as malformed. (The default text_factory raises instead, and one
    such value in one row stopped every read of the query, every cycle.)"""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data
