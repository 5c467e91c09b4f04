"""The ``progress`` rows: how far long work has got, written by the process doing it
(:mod:`adapter.progress`) and read by ``status`` and the status page in others.

A row says what was done and when; the rate, the time left and the estimated end are worked
out from it by whoever reads it, so a reader needs nothing from the writer's memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from adapter.state import schema
from adapter.state.store import StateStore

_table = schema.progress


@dataclass(frozen=True)
class ProgressRow:
    """One piece of long work as far as it got. Times are naive UTC, as the state store keeps them."""

    stage: str
    #: the transaction or catalogue ("" for a stage over every transaction)
    infno: str
    unit: str
    done: int
    #: None: not known (the work reports what it did and its rate only)
    total: int | None
    #: the total is an estimate (counted or guessed when the work proved long)
    estimated: bool
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    owner: str = ""

    @property
    def label(self) -> str:
        """``extract 2301``, ``check``."""
        return f"{self.stage} {self.infno}".strip()

    @property
    def running(self) -> bool:
        return self.finished_at is None

    @property
    def elapsed_seconds(self) -> float:
        return max(0.0, (self.updated_at - self.started_at).total_seconds())

    @property
    def rate(self) -> float | None:
        """Units a second since the work began (None before any time has passed)."""
        elapsed = self.elapsed_seconds
        return self.done / elapsed if elapsed > 0 and self.done else None

    @property
    def seconds_left(self) -> float | None:
        """At the rate so far (None without a total or a rate; 0 once the total is reached)."""
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(0, self.total - self.done) / rate

    @property
    def ends_at(self) -> datetime | None:
        """When it should end, at the rate so far, counted from its last update."""
        left = self.seconds_left
        return None if left is None else self.updated_at + timedelta(seconds=left)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "infno": self.infno, "unit": self.unit, "done": self.done, "total": self.total,
                "estimated": self.estimated, "started_at": self.started_at, "updated_at": self.updated_at,
                "finished_at": self.finished_at, "owner": self.owner,
                "rate_per_second": None if self.rate is None else round(self.rate, 2),
                "seconds_left": None if self.seconds_left is None else round(self.seconds_left),
                "ends_at": self.ends_at}

    def with_done(self, done: int, at: datetime) -> ProgressRow:
        return replace(self, done=done, updated_at=at)


def write_progress(store: StateStore, row: ProgressRow) -> None:
    """The row of ``row``'s stage and transaction, replacing what an earlier run left there."""
    values = {"stage": row.stage, "infno": row.infno, "unit": row.unit, "done": row.done, "total": row.total,
              "estimated": int(row.estimated), "started_at": row.started_at, "updated_at": row.updated_at,
              "finished_at": row.finished_at, "owner": row.owner[:64]}
    insert = pg_insert if store.dialect == "postgresql" else sqlite_insert
    statement = insert(_table).values(values)
    statement = statement.on_conflict_do_update(
        index_elements=["stage", "infno"],
        set_={name: statement.excluded[name] for name in values if name not in ("stage", "infno")})
    with store.begin() as conn:
        conn.execute(statement)


def read_progress(store: StateStore, running_only: bool = True) -> list[ProgressRow]:
    """The rows (only the unfinished ones by default), the longest-running first."""
    query = select(_table).order_by(_table.c.started_at, _table.c.stage, _table.c.infno)
    if running_only:
        query = query.where(_table.c.finished_at.is_(None))
    with store.begin() as conn:
        rows = conn.execute(query).all()
    return [ProgressRow(row.stage, row.infno, row.unit, int(row.done), None if row.total is None else int(row.total),
                        bool(row.estimated), row.started_at, row.updated_at, row.finished_at, row.owner)
            for row in rows]
