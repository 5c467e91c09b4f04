"""Helpers shared by tests: drive cycles to completion and read the ledger."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select

from adapter.app import Adapter
from adapter.flow.report import CycleReport
from adapter.monitor.status import unsent_count
from adapter.spool import outbox
from adapter.state import schema


def run_until_done(adapter: Adapter, limit_seconds: float = 90.0) -> CycleReport:
    """Run cycles until nothing is left to send (bounded in time)."""
    total = CycleReport()
    outbox.recover_in_flight(adapter.store)
    deadline = time.monotonic() + limit_seconds
    while True:
        total.add(adapter.cycle.run())
        if not unsent_count(adapter.store):
            return total
        assert time.monotonic() < deadline, "cycles did not finish in time"
        time.sleep(0.05)


def fee_lines(adapter: Adapter) -> list[Any]:
    """The 2301 records of the ledger, each with its HIS row's fields as attributes too
    (mdtrt_id, feedetl_sn, his_item_code...)."""
    line = schema.record
    with adapter.store.begin() as conn:
        rows = conn.execute(select(line).where(line.c.infno == "2301").order_by(line.c.id)).all()
    found = []
    for row in rows:
        raw = json.loads(row.raw)
        fields = {key: "" if value is None else str(value).strip() for key, value in raw.items()}
        found.append(SimpleNamespace(**{**fields, **row._mapping}))
    return found


def lines_by_status(adapter: Adapter) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for row in fee_lines(adapter):
        found.setdefault(row.status, []).append(row)
    return found
