"""The daily health summary, driven by an injected clock over a state database built by real
cycles against the simulated centre: admissions and fee lines acknowledged, discharges left
unsent by a centre answering 503 (failed attempts), records the checks parked, a catalogue
switched in and one never downloaded. It is written once a day at the first cycle after
``[monitor] daily_summary_at``, not at every cycle, as one INFO line in the log and a row of the
state store; its counts are those of the 24 hours before that time; the status page served by
a daemon started afresh on the same state database shows it."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select, update

from adapter.daemon import Daemon
from adapter.monitor.daily import DailySummary, DailyWriter, latest, window
from adapter.monitor.health import Observed
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import RecordStatus
from adapter.state import schema
from adapter.state.store import utcnow
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done
from tests.test_metrics import free_port, get
from tests.test_reports import look_at


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


class Clock:
    """The local time the summary sees; moved by the test."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def day_of_uploads(make_adapter, centre, sample_his, tmp_path):
    """A state database after a day of real cycles; returns (adapter, the summary time). The
    summary is due at the next minute, so its 24 hours hold everything the cycles did; one
    acknowledgement is moved two days back, out of them."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    schedule = '[catalog]\nkinds = ["1301", "1305"]\n\n[monitor]\nlisten = ""\n'
    first = make_adapter(his_url=sample_his.url, state_url=state, centre_url=centre.url, schedule=schedule,
                         his_extra='transactions = ["2401", "2301"]')
    import_sample_mapping(first, sample_his)
    run_until_done(first)
    first.catalog_sync.sync("1301")
    message = schema.message
    with first.store.begin() as conn:
        old = conn.execute(select(message.c.id).where(message.c.infno == "2301", message.c.acked_at.is_not(None))
                           .order_by(message.c.id)).scalars().first()
        conn.execute(update(message).where(message.c.id == old).values(
            acked_at=_utc(datetime.now().astimezone() - timedelta(days=2))))
    centre.faults = FaultPlan(error_rate=1.0)
    second = make_adapter(his_url=sample_his.url, state_url=state, centre_url=centre.url, schedule=schedule,
                          his_extra='transactions = ["2401", "2301", "2402"]')
    second.cycle.run()
    centre.faults = FaultPlan()
    # the time of day is the minute after all of that (and after now)
    soon = datetime.now().astimezone().replace(second=0, microsecond=0) + timedelta(minutes=1)
    return make_adapter(his_url=sample_his.url, state_url=state, centre_url=centre.url,
                        schedule=f'{schedule}daily_summary_at = "{soon:%H:%M}"',
                        his_extra='transactions = ["2401", "2301", "2402"]'), soon


def _expected(adapter, start: datetime, end: datetime) -> dict[str, Counter[str]]:
    """The day's counts read from the whole tables (not the summary's queries)."""
    lo, hi = _utc(start), _utc(end)
    counts: dict[str, Counter[str]] = {"uploads": Counter(), "records": Counter(), "failures": Counter(),
                                        "parked": Counter()}
    with adapter.store.begin() as conn:
        for row in conn.execute(select(schema.message)).all():
            if row.acked_at is not None and lo <= row.acked_at < hi:
                counts["uploads"][row.infno] += 1
                counts["records"][row.infno] += row.line_count
        for row in conn.execute(select(schema.attempt)).all():
            if row.finished_at is not None and lo <= row.finished_at < hi and row.outcome not in (None, "ok"):
                counts["failures"][row.infno] += 1
        for row in conn.execute(select(schema.record.c.infno, schema.record.c.status,
                                       schema.record.c.updated_at)).all():
            if row.status == RecordStatus.PARKED.value and lo <= row.updated_at < hi:
                counts["parked"][row.infno] += 1
    return counts


def test_written_once_a_day_with_the_days_counts(day_of_uploads, caplog):
    adapter, soon = day_of_uploads
    daemon = Daemon(adapter)
    daemon.catalogs_synced_at = {"1301": utcnow(), "1305": utcnow()}  # 1305 stays never downloaded
    clock = Clock(soon - timedelta(minutes=5))
    daemon.daily.clock = clock
    caplog.set_level(logging.INFO, logger="adapter.monitor.daily")

    daemon.run_once()  # before the time of day: nothing yet
    assert latest(adapter.store) is None and not [r for r in caplog.records if r.name == "adapter.monitor.daily"]

    # written by itself here, so that nothing runs between it and the tables read below
    clock.now = soon + timedelta(seconds=30)
    summary = daemon.daily.write_if_due(daemon.health.observed)
    assert summary is not None and summary.day == soon.date() and latest(adapter.store) == summary
    assert summary.end == soon and summary.start == soon - timedelta(days=1)
    expected = _expected(adapter, summary.start, summary.end)
    by_infno = {t.infno: t for t in summary.transactions}
    for name, counted in expected.items():
        assert {i: getattr(t, name) for i, t in by_infno.items() if getattr(t, name)} == dict(counted), name
    # the cycles uploaded admissions and fee lines; the one moved two days back is not counted
    with adapter.store.begin() as conn:
        acked_2301 = conn.execute(select(schema.message.c.id).where(
            schema.message.c.infno == "2301", schema.message.c.acked_at.is_not(None))).all()
    assert by_infno["2301"].uploads == len(acked_2301) - 1 and by_infno["2401"].uploads > 0
    # the 503s: discharges unsent, their attempts failed; the checks' parked records
    assert by_infno["2402"].failures > 0 and by_infno["2402"].unsent > 0
    assert summary.total("parked") > 0 and summary.oldest_unsent is not None
    assert summary.oldest_unsent.oldest_unsent_at == min(
        t.oldest_unsent_at for t in summary.transactions if t.oldest_unsent_at)
    assert summary.signed_in_at is not None and summary.sign_in_problem == ""
    catalogs = {c.kind: c for c in summary.catalogs}
    assert catalogs["1301"].ver and catalogs["1301"].activated_at is not None and catalogs["1305"].ver is None

    lines = [r for r in caplog.records if getattr(r, "action", "") == "daily_summary"]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO and "\n" not in lines[0].getMessage()
    text = lines[0].getMessage()
    assert text.startswith(f"daily summary {summary.start:%Y-%m-%d %H:%M} – {summary.end:%Y-%m-%d %H:%M}: ")
    assert f"uploaded {summary.total('uploads')} message(s)" in text and f"2402 {by_infno['2402'].failures}" in text
    assert f"unsent {summary.total('unsent')}, oldest " in text and "signed in" in text
    assert "1305 none" in text and f"1301 {catalogs['1301'].ver}" in text
    assert lines[0].summary["day"] == soon.date().isoformat()  # the counts, for the JSON log

    # later cycles of the same day, and of the next day before the time, write nothing more
    for later in (timedelta(minutes=20), timedelta(hours=10), timedelta(days=1, minutes=-1)):
        clock.now = soon + later
        daemon.run_once()
    assert len([r for r in caplog.records if getattr(r, "action", "") == "daily_summary"]) == 1
    with adapter.store.begin() as conn:
        assert conn.execute(select(schema.daily_summary.c.day)).scalars().all() == [soon.date().isoformat()]

    # the next day's first cycle after the time writes it, once
    clock.now = soon + timedelta(days=1, minutes=1)
    daemon.run_once()
    daemon.run_once()
    with adapter.store.begin() as conn:
        days = conn.execute(select(schema.daily_summary.c.day).order_by(schema.daily_summary.c.day)).scalars().all()
    assert days == [soon.date().isoformat(), (soon + timedelta(days=1)).date().isoformat()]
    newest = latest(adapter.store)
    assert newest is not None and newest.day == (soon + timedelta(days=1)).date()
    assert len([r for r in caplog.records if getattr(r, "action", "") == "daily_summary"]) == 2


def test_the_status_page_shows_the_latest_summary_after_a_restart(day_of_uploads, make_adapter, centre,
                                                                   sample_his, tmp_path):
    adapter, soon = day_of_uploads
    writer = DailyWriter(clock=Clock(soon + timedelta(minutes=1)))
    summary = writer.write_if_due(Observed(adapter.store, adapter.settings, adapter.region, adapter.edition))
    assert summary is not None and summary.total("uploads") > 0 and summary.total("failures") > 0
    # a daemon started afresh on the same state database
    port = free_port()
    restarted = make_adapter(his_url=sample_his.url, state_url=adapter.settings.state.url, centre_url=centre.url,
                             schedule=f'[monitor]\nlisten = "127.0.0.1:{port}"')
    daemon = Daemon(restarted)
    daemon.monitor = daemon._start_monitor(restarted.settings)
    try:
        status, _, page = get(f"http://127.0.0.1:{port}/")
    finally:
        assert daemon.monitor is not None
        daemon.monitor.stop()
    assert status == 200
    assert "每日汇总" in page and "Daily summary" in page and 'id="daily"' in page
    assert f"{summary.start:%Y-%m-%d %H:%M} – {summary.end:%Y-%m-%d %H:%M}" in page
    row = next(t for t in summary.transactions if t.infno == "2402")
    assert f'<td class="wrap name"><div>2402 <span class="label">{row.name}</span></div></td>' in page
    assert f'<td class="count">{summary.total("uploads"):,}</td>' in page  # the totals row
    assert "已签到 signed in since" in page and "1305 尚无生效版本 no active version" in page
    shown = tmp_path / "status-daily.html"
    shown.write_text(page, encoding="utf-8")
    look_at(shown, "status-page-daily-summary", tmp_path)


def test_the_configured_time_of_day_and_the_window(make_adapter, centre, sample_his, state_url):
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           schedule='[monitor]\nlisten = ""\ndaily_summary_at = "07:30"')
    observed = Observed(adapter.store, adapter.settings, adapter.region, adapter.edition)
    zone = datetime(2026, 12, 1, 3, 0).astimezone().tzinfo
    clock = Clock(datetime(2026, 12, 1, 3, 0, tzinfo=zone))
    writer, other = DailyWriter(clock=clock), DailyWriter(clock=clock)
    assert writer.write_if_due(observed) is None and latest(adapter.store) is None
    clock.now = datetime(2026, 12, 1, 7, 31, tzinfo=zone)
    summary = writer.write_if_due(observed)
    assert summary is not None and summary.day.isoformat() == "2026-12-01"
    assert (summary.start, summary.end) == (datetime(2026, 11, 30, 7, 30, tzinfo=zone),
                                            datetime(2026, 12, 1, 7, 30, tzinfo=zone))
    # a second daemon on the same spool does not write it again
    assert other.write_if_due(observed) is None and writer.write_if_due(observed) is None
    # and once either knows the day is written, its later cycles that day ask the store nothing
    asked: list[str] = []
    event.listen(adapter.store.engine, "before_cursor_execute", lambda *args: asked.append(args[2]))
    assert writer.write_if_due(observed) is None and other.write_if_due(observed) is None
    assert asked == []
    stored = latest(adapter.store)
    assert stored == summary and DailySummary.from_json(summary.to_json()) == summary
    assert window(datetime(2026, 12, 1, 0, 0, tzinfo=zone), "00:00") == (
        datetime(2026, 12, 1).date(), datetime(2026, 11, 30, tzinfo=zone), datetime(2026, 12, 1, tzinfo=zone))
    assert window(datetime(2026, 12, 1, 23, 59, tzinfo=zone), "23:59") is not None
    assert window(datetime(2026, 12, 1, 23, 58, tzinfo=zone), "23:59") is None


def test_a_wrong_time_of_day_is_a_configuration_error(make_settings):
    from adapter.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[monitor\] daily_summary_at"):
        make_settings(his_url="sqlite://", state_url="sqlite://", centre_url="http://127.0.0.1:9",
                      schedule='[monitor]\ndaily_summary_at = "24:00"')
