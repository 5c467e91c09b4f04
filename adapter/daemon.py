"""The daemon: a cycle every interval, retries in between, run unattended under systemd.

- **Stop** (SIGTERM/SIGINT): the message being sent finishes and its outcome is recorded;
  messages claimed but not yet sent are handed back; then it signs out (9002). Nothing in flight
  is lost: whatever a hard kill interrupts is recovered at the next start.
- **Reload** (SIGHUP, ``systemctl reload``): between two cycles the configuration file is read
  and wired again; a file that does not validate (or names what cannot be had: a region, a
  credential, an address to listen on) is refused with the reason logged, and the one in use is
  kept.
- **systemd** (``Type=notify``): ``READY=1`` once recovered and listening, a one-line ``STATUS=``
  after every cycle, and ``WATCHDOG=1`` only while the cycle makes progress
  (:mod:`adapter.monitor.systemd`, :mod:`adapter.monitor.heartbeat`).
- **Monitoring**: the HTTP endpoint (:mod:`adapter.monitor.http`) and alerts that start and
  clear (:mod:`adapter.monitor.alerts`), evaluated after every cycle and retry pass.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType

from sqlalchemy import select

from adapter.app import Adapter, build_adapter
from adapter.config import Settings, load_settings, split_listen
from adapter.errors import AdapterError, DeliveryError
from adapter.flow.report import CycleReport
from adapter.logs import configure_logging
from adapter.monitor import systemd
from adapter.monitor.alerts import KINDS, AlertBook, evaluate, state_path
from adapter.monitor.daily import DailyWriter
from adapter.monitor.health import Health, Observed, Runtime, age_text
from adapter.monitor.http import MonitorServer
from adapter.monitor.metrics import StateCollector, alerts_open, cycle_observed, registry_for
from adapter.monitor.senders import SmtpSender, WebhookSender, source_of
from adapter.reconcile.local import Period
from adapter.spool import outbox
from adapter.state import schema
from adapter.state.store import utcnow

logger = logging.getLogger(__name__)

#: the names the built-in alert channels are registered under on the plugin host
WEBHOOK_PLUGIN, SMTP_PLUGIN = "alert-webhook", "alert-smtp"


@contextmanager
def on_signals(stop: Callable[[], None], reload: Callable[[], None] | None = None) -> Iterator[None]:
    """Call ``stop`` on SIGTERM/SIGINT and ``reload`` on SIGHUP while inside; the previous
    handlers are restored.

    Signal handlers can only be installed from the main thread; elsewhere (tests driving the
    daemon from a worker thread) this does nothing and the caller stops it through its event.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stopping(signum: int, _frame: FrameType | None) -> None:
        logger.info(
            "received %s, stopping after the current send", signal.Signals(signum).name,
            extra={"action": "stop_requested"},
        )
        stop()

    def reloading(signum: int, _frame: FrameType | None) -> None:
        logger.info("received SIGHUP, reloading the configuration after the current cycle",
                    extra={"action": "reload_requested"})
        if reload is not None:
            reload()

    handlers: dict[signal.Signals, Callable[[int, FrameType | None], None]] = {
        signal.SIGTERM: stopping, signal.SIGINT: stopping}
    if reload is not None:
        handlers[signal.SIGHUP] = reloading
    previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class Daemon:
    """Runs the cycle of one wired :class:`Adapter` on its schedule; ``stop`` (or SIGTERM)
    ends it after the current send, ``request_reload`` (or SIGHUP) reads ``config_path`` again
    before the next cycle."""

    def __init__(self, adapter: Adapter, config_path: Path | None = None,
                 build: Callable[[Settings], Adapter] | None = None) -> None:
        self.adapter = adapter
        self.config_path = config_path
        self.stop_event = adapter.cycle.stop_event
        self._build = build or (lambda settings: build_adapter(settings, stop_event=self.stop_event))
        #: set to end a wait early (a stop or a reload)
        self._wake = threading.Event()
        self._reload = threading.Event()
        #: kind -> when it was last synced or refused (a missing kind is due)
        self.catalogs_synced_at: dict[str, datetime] = {}
        self.runtime = Runtime(watchdog_seconds=systemd.watchdog_seconds())
        self.heartbeat = self.runtime.heartbeat
        self.health = Health(_observed(adapter), self.runtime)
        self.alerts = AlertBook(state_path(adapter.settings), self._send_alert)
        #: the daily health summary, written at the first cycle after [monitor] daily_summary_at
        self.daily = DailyWriter()
        self.monitor: MonitorServer | None = None
        self.watchdog: systemd.Watchdog | None = None
        _wire_senders(adapter)

    @property
    def interval(self) -> timedelta:
        return timedelta(minutes=self.adapter.settings.schedule.interval_minutes)

    @property
    def catalog_interval(self) -> timedelta:
        return timedelta(hours=self.adapter.settings.catalog.interval_hours)

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload.set()
        self._wake.set()

    def _recover(self) -> None:
        """Messages a daemon that stopped left in flight. Only those whose lease ran out: another
        daemon sharing the database may be sending the others right now, and taking one from
        it would have it asked about (and resent) while the centre still works on it."""
        outbox.recover_in_flight(self.adapter.store, only_expired=True,
                                 inquire_after=self.adapter.cycle.send.settings.inquire_after_seconds)

    def run_once(self) -> CycleReport:
        self._recover()
        self._note_parked()
        report = self._cycle()
        self.evaluate_alerts()
        return report

    def run_forever(self) -> CycleReport:
        """Cycles until stopped; returns the sum of what they did."""
        total = CycleReport()
        self._recover()
        self.heartbeat.watch(self.adapter.store.engine)
        self.monitor = self._start_monitor(self.adapter.settings)
        if self.runtime.watchdog_seconds is not None:
            self.watchdog = systemd.Watchdog(self.runtime.watchdog_seconds, self.heartbeat).start()
        self._note_parked()
        systemd.notify("READY=1", systemd.status_line(
            "started" + (f"; monitor at {self.monitor.url}" if self.monitor else "")))
        try:
            with on_signals(self.stop, self.request_reload):
                self._loop(total)
        finally:
            systemd.notify("STOPPING=1", systemd.status_line("stopping: signing out"))
            if self.watchdog is not None:
                self.watchdog.stop()
            if self.monitor is not None:
                self.monitor.stop()
            self.heartbeat.unwatch(self.adapter.store.engine)
        self.adapter.client.sign_out()
        logger.info("stopped", extra={"action": "stopped"})
        return total

    def _loop(self, total: CycleReport) -> None:
        while not self.stop_event.is_set():
            next_cycle = utcnow() + self.interval
            report = self._cycle()
            total.add(report)
            self._after(report)
            while not self.stop_event.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self.reload()
                    next_cycle = min(next_cycle, utcnow() + self.interval)
                now = utcnow()
                if now >= next_cycle:
                    break
                due = self._next_send_at()
                if due is not None and due <= now:
                    self.heartbeat.beat("retry pass")
                    passed = self._send_only()
                    total.add(passed)
                    self.evaluate_alerts()
                    due = self._next_send_at()
                wake = min(next_cycle, due) if due and due > utcnow() else next_cycle
                self.heartbeat.idle()
                self._pause(max(0.05, (wake - utcnow()).total_seconds()))

    def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop or a reload comes (``stop_event`` may be set
        directly, by whoever shares it, so it is looked at every half second too)."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and not self._reload.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.wait(min(left, 0.5))
            self._wake.clear()

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
            self.heartbeat.beat(f"catalogue {kind}")
            try:
                self.adapter.catalog_sync.sync(kind)
            except DeliveryError as exc:
                logger.warning("catalogue %s not synced, trying again next cycle: %s", kind, exc,
                               extra={"action": "catalog_sync_deferred"})
                continue
            except AdapterError as exc:
                logger.error("catalogue %s not synced: %s", kind, exc, extra={"action": "catalog_sync_failed"})
            else:
                self.runtime.catalogs_current_at[kind] = utcnow()
            self.catalogs_synced_at[kind] = now

    def reconcile_if_due(self, now: datetime | None = None) -> None:
        """Yesterday after ``[reconcile] daily_at`` (local time), and the month before on the
        1st; each once (the stored runs say what was done). A mismatch raises an alert (cleared
        when a later reconciliation of its kind balances); a centre that does not answer is
        tried again at the next cycle."""
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
        ran = False
        for period in due:
            if self.stop_event.is_set() or self._reconciled(period):
                continue
            self.heartbeat.beat(f"reconciling {period}")
            try:
                self.adapter.reconciler.run(period)
            except AdapterError as exc:
                logger.warning("reconciliation of %s not done yet: %s", period, exc,
                               extra={"action": "reconcile_deferred"})
                continue
            ran = True
        if ran:
            self.evaluate_alerts(kinds=("reconcile_mismatch",))

    def _reconciled(self, period: Period) -> bool:
        run = schema.recon_run
        with self.adapter.store.begin() as conn:
            return conn.execute(select(run.c.id).where(
                run.c.kind == period.kind, run.c.start_date == str(period.start), run.c.end_date == str(period.end),
            )).first() is not None

    def _cycle(self) -> CycleReport:
        started = time.monotonic()
        self.heartbeat.beat("cycle")
        self.sync_catalogues_if_due()
        self.reconcile_if_due()
        self.daily.write_if_due(self.health.observed)
        self.heartbeat.beat("cycle")
        try:
            report = self.adapter.cycle.run()
        except AdapterError as exc:
            # One failed cycle (HIS unreachable, state store busy) must not end the daemon:
            # log it, count it, and try again at the next cycle.
            logger.error("cycle failed: %s", exc, extra={"action": "cycle_failed"})
            report = CycleReport(errors=[str(exc)])
        self.heartbeat.beat("cycle done")
        cycle_observed(time.monotonic() - started, not report.errors)
        logger.info(
            "cycle: %d extracted, %d parked, %d message(s) acked (%d lines), %d transient failure(s)",
            report.extracted, report.parked, report.messages_acked, report.lines_acked,
            report.transient_failures, extra={"action": "cycle_done"},
        )
        return report

    def _after(self, report: CycleReport) -> None:
        """After a cycle: alerts, then the one-line STATUS= for systemctl status."""
        self.evaluate_alerts()
        status = self._status_line(report)
        self.runtime.cycle_done(report.errors, status)
        systemd.notify(systemd.status_line(status))

    def _status_line(self, report: CycleReport) -> str:
        when = datetime.now().strftime("%H:%M")
        text = (f"{when} cycle: {report.extracted} extracted, {report.messages_acked} acked "
                f"({report.lines_acked} lines), {report.parked} parked, {report.transient_failures} transient")
        if report.errors:
            text += f"; FAILED: {report.errors[0]}"
        try:
            snapshot = self.health.snapshot()
        except AdapterError:
            return text + "; state store unreadable"
        unsent = sum(t.unsent_records for t in snapshot.transactions.values())
        waiting = [t.oldest_unsent_at for t in snapshot.transactions.values() if t.oldest_unsent_at]
        oldest = f", oldest {age_text((snapshot.taken_at - min(waiting)).total_seconds())}" if waiting else ""
        alerts = len(self.alerts.open)
        return text + f"; {unsent} unsent{oldest}" + (f"; {alerts} alert(s) open" if alerts else "")

    def _send_only(self) -> CycleReport:
        report = CycleReport()
        try:
            self.adapter.cycle.send_due(report)
        except AdapterError as exc:
            logger.error("retry pass failed: %s", exc, extra={"action": "retry_failed"})
            report.errors.append(str(exc))
        return report

    # -- alerts ------------------------------------------------------------------------------
    def evaluate_alerts(self, kinds: tuple[str, ...] | None = None) -> None:
        """Start and clear alerts from the state now (``kinds``: only those)."""
        adapter = self.adapter
        evaluate(self.alerts, lambda: self.health.snapshot(fresh=True), adapter.settings, adapter.region,
                 self.runtime, kinds)
        alerts_open(self.alerts.counts(), KINDS)

    def _note_parked(self) -> None:
        """The parked count before a cycle, so records the cycle parks count as a rise."""
        try:
            snapshot = self.health.snapshot(fresh=True)
        except AdapterError:
            return
        self.alerts.parked_rise(snapshot.parked_records, self.adapter.settings.alerts.parked_window_minutes,
                                snapshot.taken_at)

    def _send_alert(self, kind: str, message: str, details: dict[str, object]) -> None:
        self.adapter.host.alert(kind, message, dict(details))

    # -- reload ------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Read the configuration file again and switch to it; False (and the reason logged)
        when it is refused, the one in use staying."""
        if self.config_path is None:
            logger.warning("reload requested, but the daemon was not started from a configuration file",
                           extra={"action": "reload_refused"})
            return False
        systemd.notify(systemd.reloading_line(), systemd.status_line("reloading the configuration"))
        old = self.adapter
        new: Adapter | None = None
        monitor = self.monitor
        try:
            settings = load_settings(self.config_path)
            new = self._build(settings)
            _wire_senders(new)
            if _listen_of(settings) != _listen_of(old.settings):
                monitor = self._start_monitor(settings, strict=True)
        except AdapterError as exc:
            if new is not None:
                new.close()
            logger.error("configuration %s refused, the one in use is kept: %s", self.config_path, exc,
                         extra={"action": "reload_refused"})
            systemd.notify("READY=1", systemd.status_line(f"reload refused ({_one_line(exc)}); running with "
                                                          "the configuration in use"))
            return False
        if monitor is not self.monitor and self.monitor is not None:
            self.monitor.stop()
        self.monitor = monitor
        self.heartbeat.unwatch(old.store.engine)
        self.adapter = new
        self.heartbeat.watch(new.store.engine)
        self.health.observe(_observed(new))
        self.alerts.path = state_path(settings)
        if settings.logging != old.settings.logging:
            verbose = logging.getLogger().level == logging.DEBUG
            configure_logging("DEBUG" if verbose else settings.logging.level, settings.logging.format,
                              settings.logging.file)
        old.close()
        logger.info("configuration reloaded from %s", self.config_path, extra={"action": "reloaded"})
        systemd.notify("READY=1", systemd.status_line("configuration reloaded"))
        return True

    def _start_monitor(self, settings: Settings, strict: bool = False) -> MonitorServer | None:
        """The HTTP endpoint ``[monitor] listen`` names (none when empty). An address already in
        use is logged and the daemon goes on uploading without it (at start; a reload that
        cannot bind the new address is refused instead)."""
        config = settings.monitor
        if not config.listen:
            return None
        host, port = split_listen(config.listen)
        token = config.token.resolve() if config.token is not None else None
        registry = registry_for(StateCollector(self.health.snapshot, self.heartbeat.age),
                                {"region": settings.centre.region, "fixmedins_code": settings.centre.fixmedins_code})
        try:
            server = MonitorServer(host, port, self.health, registry, token=token,
                                   alerts=lambda: list(self.alerts.open.values()),
                                   refresh_seconds=config.refresh_seconds)
        except AdapterError as exc:
            if strict:
                raise
            logger.error("monitor endpoint not started, uploading goes on without it: %s", exc,
                         extra={"action": "monitor_failed"})
            return None
        return server.start()


def _observed(adapter: Adapter) -> Observed:
    try:
        edition = adapter.edition
    except AdapterError:
        edition = None
    return Observed(adapter.store, adapter.settings, adapter.region, edition)


def _listen_of(settings: Settings) -> tuple[str, object]:
    monitor = settings.monitor
    return monitor.listen, monitor.token


def _wire_senders(adapter: Adapter) -> None:
    """Register the configured webhook and mail channels on the adapter's plugin host (their
    secrets resolved now: one that cannot be is refused at start, like every credential)."""
    config, centre, host = adapter.settings.alerts, adapter.settings.centre, adapter.host
    source = source_of(centre.fixmedins_code, centre.fixmedins_name)
    for name, sender in (
        (WEBHOOK_PLUGIN, WebhookSender(config.webhook, config.webhook.token.resolve() if config.webhook.token else None,
                                       source) if config.webhook else None),
        (SMTP_PLUGIN, SmtpSender(config.smtp, config.smtp.password.resolve() if config.smtp.password else None,
                                 source) if config.smtp else None),
    ):
        if sender is not None and host.pm.get_plugin(name) is None:
            host.register(sender, name=name, version="builtin", origin=f"adapter.monitor.senders ([alerts.{name[6:]}])")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]
