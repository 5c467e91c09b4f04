"""A read-only SQL source over any SQLAlchemy URL, read in watermark order.

The watermark is stored in the state database in the same transaction as the extracted lines
(see :mod:`adapter.flow.extract`), so a crash between reading and storing repeats nothing and
skips nothing: the next start reads again from the last committed watermark.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from adapter.errors import SourceError

logger = logging.getLogger(__name__)


class SqlSource:
    """Runs one parameterised query (``:watermark``, ``:limit``) against the HIS."""

    def __init__(self, url: str, query: str, watermark_column: str) -> None:
        try:
            self._display_url = repr(make_url(url))  # password masked
        except ArgumentError as exc:
            raise SourceError(f"HIS URL {url!r} is not a database URL") from exc
        self._engine = create_engine(url, future=True, pool_pre_ping=True)
        self._query = text(query)
        self.watermark_column = watermark_column

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

    def close(self) -> None:
        self._engine.dispose()


def _bind_value(watermark: str) -> int | str:
    # Integer keys must be compared as numbers ("10" < "9" as text); anything else (timestamps
    # in ISO form) compares correctly as text.
    try:
        return int(watermark)
    except ValueError:
        return watermark
