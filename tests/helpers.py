"""Helpers shared by tests: drive cycles to completion and read the ledger."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from adapter.app import Adapter
from adapter.monitor.status import unsent_count
from adapter.pipeline import CycleReport
from adapter.spool import outbox, schema


def run_until_done(adapter: Adapter, limit_seconds: float = 90.0) -> CycleReport:
    """Run cycles until nothing is left to send (bounded in time)."""
    total = CycleReport()
    outbox.recover_in_flight(adapter.store)
    deadline = time.monotonic() + limit_seconds
    while True:
        total.add(adapter.pipeline.run_cycle())
        if not unsent_count(adapter.store):
            return total
        assert time.monotonic() < deadline, "cycles did not finish in time"
        time.sleep(0.05)


def lines_by_status(adapter: Adapter) -> dict[str, list[Any]]:
    line = schema.fee_line
    found: dict[str, list[Any]] = {}
    with adapter.store.begin() as conn:
        for row in conn.execute(select(line)).all():
            found.setdefault(row.status, []).append(row)
    return found
