"""The order of a cycle, and the only module that knows it:

    extract -> map and check -> build messages (spool) -> send -> settle

Each stage reads its input from the state database and leaves its output there, so a cycle
that stops anywhere resumes at the same point: nothing is lost and nothing is taken twice.
Every transaction (2301 fee lines included) goes through the same stages; what differs between
transactions is data in their specs.
"""

from __future__ import annotations

import threading
from datetime import datetime

from adapter.flow.build import Build
from adapter.flow.check import Check
from adapter.flow.extract import Extract
from adapter.flow.report import CycleReport
from adapter.flow.send import Send
from adapter.flow.settle import Settle


class Cycle:
    def __init__(self, *, extract: Extract, check: Check, build: Build, send: Send, settle: Settle,
                 stop_event: threading.Event) -> None:
        self.extract = extract
        self.check = check
        self.build = build
        self.send = send
        self.settle = settle
        self.stop_event = stop_event

    @property
    def paused_until(self) -> datetime | None:
        """When sending resumes after the centre looked down (None: not paused)."""
        return self.send.paused_until

    def run(self) -> CycleReport:
        report = CycleReport()
        self.extract.run(report)
        self.check.run(report)
        self.build.run(report)
        self.send_due(report)
        return report

    def send_due(self, report: CycleReport) -> None:
        """A send pass; records a rejection or an inquiry sent back get new messages."""
        self.settle.requeued = 0
        self.send.run(report, self.settle.delivered_all, self.settle.resolved)
        if self.settle.requeued:
            self.build.run(report)
