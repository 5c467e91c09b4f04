"""Extraction watermarks: how far each HIS source has been read (saved with what was read)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update

from adapter.state import schema
from adapter.state.store import utcnow

_table = schema.watermark


def read_watermark(conn: Any, source: str, default: str = "0") -> str:
    value = conn.execute(select(_table.c.value).where(_table.c.source == source)).scalar()
    return value if value is not None else default


def save_watermark(conn: Any, source: str, value: str) -> None:
    """Inside the caller's transaction, so the watermark moves with the rows it covers."""
    changed = conn.execute(
        update(_table).where(_table.c.source == source).values(value=value, updated_at=utcnow())
    ).rowcount
    if not changed:
        conn.execute(insert(_table).values(source=source, value=value, updated_at=utcnow()))
