"""The daemon: a cycle every interval, retries in between, graceful stop on SIGTERM/SIGINT.

On a stop signal the message being sent finishes and its outcome is recorded; messages claimed
but not yet sent are handed back. Nothing in flight is lost: whatever a hard kill interrupts is
recovered at the next start.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import FrameType

from sqlalchemy import select

from adapter.app import Adapter
from adapter.errors import AdapterError, DeliveryError
from adapter.flow.report import CycleReport
from adapter.reconcile.local import Period
from adapter.spool import outbox
from adapter.state import schema
from adapter.state.store import utcnow

logger = logging.getLogger(__name__)


@contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGTERM/SIGINT while inside; previous handlers are restored.

    Signal handlers can only be installed from the main thread; elsewhere (tests driving the
    daemon from a worker thread) this does nothing and the caller stops it through its event.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "received %s, stopping after the current send", signal.Signals(signum).name,
            extra={"action": "stop_requested"},
        )
        callback()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def sd_notify(state: str) -> None:
    """Tell systemd (Type=notify) about our state; a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(state.encode("ascii"), address)
    except OSError as exc:
        logger.warning("cannot notify systemd: %s", exc)


class Daemon:
    """Runs the cycle of one wired :class:`Adapter` on its schedule; ``stop`` (or SIGTERM)
    ends it after the current send."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.stop_event = adapter.cycle.stop_event
        self.interval = timedelta(minutes=adapter.settings.schedule.interval_minutes)
        self.catalog_interval = timedelta(hours=adapter.settings.catalog.interval_hours)
        #: kind -> when it was last synced or refused (a missing kind is due)
        self.catalogs_synced_at: dict[str, datetime] = {}

    def stop(self) -> None:
        self.stop_event.set()

    def run_once(self) -> CycleReport:
        outbox.recover_in_flight(self.adapter.store)
        return self._cycle()

    def run_forever(self) -> CycleReport:
        """Cycles until stopped; returns the sum of what they did."""
        total = CycleReport()
        outbox.recover_in_flight(self.adapter.store)
        sd_notify("READY=1")
        with on_stop(self.stop):
            while not self.stop_event.is_set():
                next_cycle = utcnow() + self.interval
                total.add(self._cycle())
                while not self.stop_event.is_set():
                    now = utcnow()
                    if now >= next_cycle:
                        break
                    due = self._next_send_at()
                    wake = min(next_cycle, due) if due and due > now else next_cycle
                    if due is not None and due <= now:
                        total.add(self._send_only())
                        # Nothing more due right now: wait for the next event.
                        due = self._next_send_at()
                        wake = min(next_cycle, due) if due and due > utcnow() else next_cycle
                    sd_notify("WATCHDOG=1")
                    self.stop_event.wait(max(0.05, (wake - utcnow()).total_seconds()))
        sd_notify("STOPPING=1")
        self.adapter.client.sign_out()
        logger.info("stopped", extra={"action": "stopped"})
        return total

    def _next_send_at(self) -> datetime | None:
        """When something is due, but never before a pause the send stage imposed."""
        due = outbox.next_due_at(self.adapter.store)
        paused = self.adapter.cycle.paused_until
        if due is not None and paused is not None:
            return max(due, paused)
        return due

    def sync_catalogues_if_due(self) -> None:
        """Download the configured catalogues every ``[catalog] interval_hours``. A refused file
        is logged with its reason (the version in use stays) and tried again after the interval;
        a kind the centre could not be reached for is tried again at the next cycle."""
        now = utcnow()
        for kind in self.adapter.settings.catalog.kinds:
            synced = self.catalogs_synced_at.get(kind)
            if self.stop_event.is_set() or (synced is not None and now < synced + self.catalog_interval):
                continue
            try:
                self.adapter.catalog_sync.sync(kind)
            except DeliveryError as exc:
                logger.warning("catalogue %s not synced, trying again next cycle: %s", kind, exc,
                               extra={"action": "catalog_sync_deferred"})
                continue
            except AdapterError as exc:
                logger.error("catalogue %s not synced: %s", kind, exc, extra={"action": "catalog_sync_failed"})
            self.catalogs_synced_at[kind] = now

    def reconcile_if_due(self, now: datetime | None = None) -> None:
        """Yesterday after ``[reconcile] daily_at`` (local time), and the month before on the
        1st; each once (the stored runs say what was done). A mismatch raises an alert; a
        centre that does not answer is tried again at the next cycle."""
        config = self.adapter.settings.reconcile
        if not config.daily_at:
            return
        now = now or datetime.now()
        hour, minute = (int(part) for part in config.daily_at.split(":"))
        if (now.hour, now.minute) < (hour, minute):
            return
        yesterday = now.date() - timedelta(days=1)
        due = [Period.day(yesterday)]
        if config.month_end and now.day == 1:
            due.append(Period.month(yesterday.year, yesterday.month))
        for period in due:
            if self.stop_event.is_set() or self._reconciled(period):
                continue
            try:
                run = self.adapter.reconciler.run(period)
            except AdapterError as exc:
                logger.warning("reconciliation of %s not done yet: %s", period, exc,
                               extra={"action": "reconcile_deferred"})
                continue
            if not run.balanced:
                differences = sum(len(p.differences) for p in run.pairs)
                self.adapter.host.alert(
                    "reconcile_mismatch",
                    f"reconciliation of {period} does not balance: {differences} difference(s); see "
                    f"`yibao-adapter reconcile history` (run {run.id})",
                    {"run": run.id, "period": str(period), "pairs": [
                        {"insutype": p.insutype, "clr_type": p.clr_type, "stmt_rslt": p.stmt_rslt}
                        for p in run.pairs if not p.balanced]},
                )

    def _reconciled(self, period: Period) -> bool:
        run = schema.recon_run
        with self.adapter.store.begin() as conn:
            return conn.execute(select(run.c.id).where(
                run.c.kind == period.kind, run.c.start_date == str(period.start), run.c.end_date == str(period.end),
            )).first() is not None

    def _cycle(self) -> CycleReport:
        self.sync_catalogues_if_due()
        self.reconcile_if_due()
        try:
            report = self.adapter.cycle.run()
        except AdapterError as exc:
            # One failed cycle (HIS unreachable, state store busy) must not end the daemon:
            # log it, count it, and try again at the next cycle.
            logger.error("cycle failed: %s", exc, extra={"action": "cycle_failed"})
            report = CycleReport(errors=[str(exc)])
        logger.info(
            "cycle: %d extracted, %d parked, %d message(s) acked (%d lines), %d transient failure(s)",
            report.extracted, report.parked, report.messages_acked, report.lines_acked,
            report.transient_failures, extra={"action": "cycle_done"},
        )
        return report

    def _send_only(self) -> CycleReport:
        report = CycleReport()
        try:
            self.adapter.cycle.send_due(report)
        except AdapterError as exc:
            logger.error("retry pass failed: %s", exc, extra={"action": "retry_failed"})
            report.errors.append(str(exc))
        return report
