"""Progress of long work (adapter.progress): throttled by time (an injected clock here, so nothing
is timed), a log line when not on a terminal, rich bars on one, and the state-store row that
``status`` (text and JSON) and the status page read while a backfill runs in the daemon; the
catalogue import (with and without ``--data-cnt``), the mapping import and a month's
reconciliation show it too."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
import threading
from datetime import timedelta
from typing import Any

import pytest
from adapter_nhsa.catalogues import WESTERN_AND_PATENT_DRUGS as DRUGS
from click.testing import CliRunner
from rich.console import Console

from adapter.cli import main
from adapter.daemon import Daemon
from adapter.errors import SourceError
from adapter.his import SqlSource
from adapter.progress import SILENT, LogSink, Reporter, StoreSink, TerminalSink, describe, duration_text
from adapter.rehearsal.sample_catalogues import CatalogRow, drug_codes, write_catalog
from adapter.rehearsal.sample_his import generate_sample_his
from adapter.rehearsal.sample_queries import FEE_LINES
from adapter.state.progress import ProgressRow, read_progress, write_progress
from adapter.state.store import StateStore, utcnow
from tests.conftest import config_text, import_sample_mapping
from tests.test_metrics import Running, free_port, get
from tests.test_reconcile import UPLOAD, settled_at_the_counter

#: every batch reports (the tests need no waiting and no timed asserts)
EVERY_BATCH = "\n[progress]\nevery_seconds = 0\n"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Seen:
    """A sink that keeps what it was told."""

    def __init__(self, delay: float, interval: float) -> None:
        self.delay, self.interval = delay, interval
        self.updates: list[ProgressRow] = []
        self.finished: list[tuple[ProgressRow, bool]] = []

    def update(self, row: ProgressRow) -> None:
        self.updates.append(row)

    def finish(self, row: ProgressRow, failed: bool) -> None:
        self.finished.append((row, failed))


def test_advancing_is_throttled_by_the_clock_and_what_is_left_is_counted_once_when_the_work_proves_long():
    clock, sink = Clock(), Seen(delay=5, interval=5)
    counted: list[int] = []

    def remaining() -> int:
        counted.append(1)
        return 900

    with Reporter([sink], clock=clock).start("extract", "2301", remaining=remaining) as task:
        for _ in range(4):  # 4 s: shorter than the delay, nothing is shown and nothing counted
            clock.now += 1
            task.advance(25)
        assert sink.updates == [] and counted == []
        clock.now += 1  # 5 s
        task.advance(25)
        assert [row.done for row in sink.updates] == [125] and counted == [1]
        first = sink.updates[0]
        assert first.total == 125 + 900 and first.estimated and first.rate == 25.0
        clock.now += 4.9
        task.advance(100)  # within the interval: not shown
        clock.now += 0.1
        task.advance(100)
        assert [row.done for row in sink.updates] == [125, 325] and counted == [1]
        assert sink.updates[1].updated_at - sink.updates[1].started_at == timedelta(seconds=10)
    assert len(sink.finished) == 1 and sink.finished[0][0].done == 325 and not sink.finished[0][1]
    assert sink.finished[0][0].finished_at is not None

    short = Seen(delay=5, interval=5)
    with Reporter([short], clock=clock).start("check") as task:
        task.advance(10)
    assert short.updates == [] and short.finished == []  # short work: never shown, so never finished

    failing = Seen(delay=0, interval=0)
    with pytest.raises(RuntimeError), Reporter([failing], clock=clock).start("send", unit="messages") as task:
        task.advance()
        raise RuntimeError("the centre went away")
    assert failing.finished[0][1] is True  # ended by an exception

    def refused() -> int:
        raise SourceError("the HIS refused the count")

    uncounted = Seen(delay=0, interval=0)
    with Reporter([uncounted], clock=clock).start("extract", "2302", remaining=refused) as task:
        task.advance(5)  # the work goes on, without a total
    assert [(row.done, row.total) for row in uncounted.updates] == [(5, None)]

    with SILENT.start("build") as task:  # the stages' default: nothing anywhere
        task.advance(10**6)
    assert task.done == 10**6


def test_the_log_line_says_done_total_rate_and_time_left(caplog):
    caplog.set_level(logging.INFO, logger="adapter.progress")
    clock = Clock()
    with Reporter([LogSink(5)], clock=clock).start("extract", "2301", remaining=lambda: 885_000) as task:
        clock.now += 50
        task.advance(115_000)  # 2,300 rows/s, 885,000 left: 385 s
    lines = [record.getMessage() for record in caplog.records]
    assert lines == ["extract 2301: 115,000 of ~1,000,000 rows, 2,300 rows/s, about 6 min left",
                     "extract 2301: done, 115,000 rows in 50 s, 2,300 rows/s"]
    assert caplog.records[0].levelno == logging.INFO and caplog.records[0].action == "progress"
    assert (caplog.records[0].stage, caplog.records[0].infno, caplog.records[0].total) == ("extract", "2301", 1_000_000)

    caplog.clear()
    with Reporter([LogSink(0)], clock=clock).start("send", unit="messages") as task:  # no total known
        clock.now += 20
        task.advance(40)
        clock.now += 100
        task.advance(400)
    assert [record.getMessage() for record in caplog.records] == [
        "send: 40 messages so far, 2.0 messages/s, total not known",
        "send: 440 messages so far, 3.7 messages/s, total not known",
        "send: done, 440 messages in 2 min, 3.7 messages/s"]
    assert [duration_text(s) for s in (0.2, 40, 359, 3600, 7800)] == ["1 s", "40 s", "6 min", "1 h", "2 h 10 min"]


def test_bars_on_a_terminal_with_log_lines_above_them():
    out = io.StringIO()
    clock = Clock()
    sink = TerminalSink(Console(file=out, force_terminal=True, width=150, color_system=None))
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    stderr = sys.stderr
    root.addHandler(handler)
    try:
        with Reporter([sink], clock=clock).start("extract", "2301", total=300) as task:
            clock.now += 1
            task.advance(100)
            assert handler.stream is not stderr  # rich's stand-in while the bars are drawn
            logging.getLogger("adapter.test").warning("a log line while the bar is drawn")
            clock.now += 1
            task.advance(200)
    finally:
        root.removeHandler(handler)
    assert handler.stream is stderr
    shown = out.getvalue()
    assert "extract 2301" in shown and "100 of 300 rows, 100 rows/s" in shown
    assert "done, 300 rows in 2 s, 150 rows/s" in shown  # the bar's last state stays on screen
    assert "a log line while the bar is drawn" in shown


def test_status_shows_work_in_progress_and_says_when_it_has_gone_quiet(tmp_path, centre, sample_his):
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=sample_his.url, state_url=state_url, centre_url=centre.url),
                      encoding="utf-8")
    store = StateStore(state_url)
    now = utcnow()
    try:
        write_progress(store, ProgressRow("extract", "2301", "rows", 120_000, 1_000_000, True,
                                          now - timedelta(seconds=60), now))
        write_progress(store, ProgressRow("catalog", "1301", "rows", 500, None, False,
                                          now - timedelta(hours=1), now - timedelta(minutes=20)))
        write_progress(store, ProgressRow("check", "", "records", 10, 10, False, now, now, finished_at=now))
    finally:
        store.close()
    runner = CliRunner()
    text = runner.invoke(main, ["status", "--config", str(config)])
    shown = runner.invoke(main, ["status", "--json", "--config", str(config)])

    assert "in progress (long work: a backfill, an import, a reconciliation):" in text.output
    line = next(line for line in text.output.splitlines() if "extract 2301" in line)
    assert re.search(r"extract 2301: 120,000 of ~1,000,000 rows, 2,000 rows/s, about 7 min left; ends about "
                     r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d .*\(started .*, last word \d+ s ago\)", line), line
    quiet = next(line for line in text.output.splitlines() if "catalog 1301" in line)
    assert "catalog 1301: 500 rows so far" in quiet and "no word for 20 m" in quiet and "may have stopped" in quiet
    assert not any(line.strip().startswith("check") for line in text.output.splitlines())  # finished: not listed
    document = json.loads(shown.stdout)
    work = {item["label"]: item for item in document["progress"]}
    assert set(work) == {"extract 2301", "catalog 1301"}
    extract = work["extract 2301"]
    assert (extract["done"], extract["total"], extract["estimated"], extract["stale"]) == (120_000, 1_000_000, True,
                                                                                          False)
    assert extract["rate_per_second"] == 2000.0 and extract["seconds_left"] == 440
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", extract["ends_at"])
    assert work["catalog 1301"]["stale"] is True and work["catalog 1301"]["ends_at"] is None


class PausingSource(SqlSource):
    """The real HIS query, which holds the extract before one of its reads until the test has
    looked at the adapter from outside."""

    def __init__(self, url: str, query: str, watermark_column: str, pause_before: int) -> None:
        super().__init__(url, query, watermark_column)
        self.reads = 0
        self.pause_before = pause_before
        self.paused, self.resume = threading.Event(), threading.Event()

    def read_after(self, watermark: str, limit: int) -> list[dict[str, Any]]:
        self.reads += 1
        if self.reads == self.pause_before:
            self.paused.set()
            assert self.resume.wait(120), "the test never let the extract go on"
        return super().read_after(watermark, limit)


def test_a_running_backfill_is_shown_by_status_and_the_status_page(make_adapter, centre, tmp_path):
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=30, lines_per_visit=20, seed=5)
    port = free_port()
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    schedule = f'batch_size = 50\ninterval_minutes = 30\n\n[monitor]\nlisten = "127.0.0.1:{port}"\n{EVERY_BATCH}'
    adapter = make_adapter(his_url=his.url, state_url=state_url, centre_url=centre.url, schedule=schedule)
    import_sample_mapping(adapter, his)
    source = PausingSource(his.url, FEE_LINES, "line_id", pause_before=4)
    adapter.cycle.extract.sources["2301"] = source
    rows = len(source.read_after("0", 10**6))
    source.reads = 0
    assert rows > 300
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=his.url, state_url=state_url, centre_url=centre.url, schedule=schedule),
                      encoding="utf-8")
    runner = CliRunner()
    daemon = Daemon(adapter)
    with Running(daemon) as running:
        assert source.paused.wait(60), "the extract never came to its fourth batch"
        try:  # three batches of 50 are in the ledger; the extract waits
            shown = runner.invoke(main, ["status", "--json", "--config", str(config)])
            text = runner.invoke(main, ["status", "--config", str(config)])
            status, _, page = get(f"http://127.0.0.1:{port}/")
        finally:
            source.resume.set()
        running.wait_cycles(1)
    source.close()
    after = runner.invoke(main, ["status", "--json", "--config", str(config)])

    work = json.loads(shown.stdout)["progress"]
    assert [(w["stage"], w["infno"], w["done"], w["total"], w["estimated"]) for w in work] == [
        ("extract", "2301", 150, rows, True)]  # counted in the HIS after the first batch: 50 + what was left
    assert work[0]["ends_at"] is not None and not work[0]["stale"]
    assert f"extract 2301: 150 of ~{rows:,} rows" in text.output and "; ends about " in text.output
    assert status == 200 and "进行中的长任务" in page and "Long work in progress" in page
    assert re.search(rf'<td class="code">抽取 extract 2301</td><td class="count">150 / ~{rows:,} rows</td>', page)

    assert json.loads(after.stdout)["progress"] == []  # the stages ended
    store = StateStore(state_url)
    try:
        ended = {row.stage: row for row in read_progress(store, running_only=False)}
    finally:
        store.close()
    assert set(ended) == {"extract", "check", "build", "send"}  # every stage of the cycle reported
    assert all(row.finished_at is not None for row in ended.values())
    assert ended["extract"].done == rows and 0 < ended["check"].done <= rows
    assert ended["send"].unit == "messages" and ended["send"].done > 0


def test_a_store_row_is_written_only_for_long_work_and_a_source_counts_only_when_allowed(state_url, sample_his):
    # on SQLite and PostgreSQL: the row is an upsert of each dialect
    store = StateStore(state_url)
    clock = Clock()
    try:
        progress = Reporter([StoreSink(store, 5)], clock=clock)
        with progress.start("build", unit="records") as task:
            task.advance(100)
        assert read_progress(store, running_only=False) == []  # short: no row at all
        with progress.start("build", unit="records") as task:
            clock.now += 6
            task.advance(100)
            assert [(r.done, r.running) for r in read_progress(store)] == [(100, True)]
        assert [(r.done, r.running) for r in read_progress(store, running_only=False)] == [(100, False)]
        with progress.start("build", unit="records") as task:  # the next long run replaces the row
            clock.now += 6
            task.advance(7)
        assert [(r.done, r.running) for r in read_progress(store, running_only=False)] == [(7, False)]
    finally:
        store.close()
    counting = SqlSource(sample_his.url, FEE_LINES, "line_id")
    silent = SqlSource(sample_his.url, FEE_LINES, "line_id", countable=False)
    try:
        assert counting.count_after("0") == len(counting.read_after("0", 10**6)) > 0
        assert silent.count_after("0") is None  # [progress] count_his_backlog = false
    finally:
        counting.close()
        silent.close()


def _cli_config(tmp_path, centre, his_url: str, extra: str = "") -> str:
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=his_url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url=centre.url, his_extra=extra, schedule=EVERY_BATCH), encoding="utf-8")
    return str(config)


def test_a_catalogue_import_logs_its_progress_with_and_without_data_cnt(tmp_path, centre, sample_his):
    config = _cli_config(tmp_path, centre, sample_his.url)
    rows = 3000  # a little over 3 MB unpacked: the total is guessed after the first megabyte
    catalogue = tmp_path / "1301_full.txt.zip"
    write_catalog(catalogue, DRUGS, [CatalogRow(code, f"药品{n}", "1") for n, code in enumerate(drug_codes(rows))])
    runner = CliRunner()

    guessed = runner.invoke(main, ["catalog", "import", str(catalogue), "--kind", "1301", "--config", config])
    declared = runner.invoke(main, ["catalog", "import", str(catalogue), "--kind", "1301", "--data-cnt", str(rows),
                                    "--config", config])

    assert guessed.exit_code == 0 and declared.exit_code == 0, guessed.output + declared.output
    lines = [line for line in guessed.output.splitlines() if "adapter.progress" in line]
    assert len(lines) == 4 and all(" INFO " in line for line in lines)
    estimate = re.search(r"catalog 1301: 1,000 of ~([\d,]+) rows, [\d,.]+ rows/s", lines[0])
    assert estimate and abs(int(estimate.group(1).replace(",", "")) - rows) < rows * 0.1, lines[0]
    assert re.search(r"catalog 1301: done, 3,000 rows in \d+ s", lines[-1])
    assert re.search(r"catalog 1301: 2,000 of 3,000 rows, [\d,.]+ rows/s, (about \d+ s left|nearly done)",
                     declared.output)
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        [row] = read_progress(store, running_only=False)
    finally:
        store.close()
    assert (row.label, row.done, row.total, row.running) == ("catalog 1301", rows, rows, False)


def test_a_mapping_import_logs_its_progress(tmp_path, centre, sample_his):
    config = _cli_config(tmp_path, centre, sample_his.url)
    csv = tmp_path / "mapping.csv"
    csv.write_text("kind,his_code,national_code\n" + "".join(f"item,H{n:05d},N{n:05d}\n" for n in range(5000)),
                   encoding="utf-8")

    result = CliRunner().invoke(main, ["mapping", "import", str(csv), "--config", config])

    assert result.exit_code == 0, result.output
    assert "imported 5000 mapping row(s)" in result.output
    assert re.search(r"mapping import: 2,000 of 5,000 rows, [\d,.]+ rows/s", result.output)
    assert re.search(r"mapping import: done, 5,000 rows in \d+ s", result.output)


def test_a_reconciliation_logs_its_progress(make_adapter, centre, sample_his, tmp_path):
    settled_at_the_counter(centre, sample_his)
    config = _cli_config(tmp_path, centre, sample_his.url, UPLOAD)
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=UPLOAD)
    import_sample_mapping(adapter, sample_his)
    from tests.helpers import run_until_done

    run_until_done(adapter)
    centre.lose_settlement(sorted(centre.ledger.settlements)[0])  # one pair does not balance: a 3202 too

    result = CliRunner().invoke(main, ["reconcile", "--month", "2026-11", "--config", config])

    assert "NOT balanced" in result.output, result.output
    assert re.search(rf"reconcile HIS: done, {sample_his.settlements} settlements in", result.output)
    assert re.search(r"reconcile 3201: 1 of \d+ pairs, ", result.output)
    assert re.search(r"reconcile 3201: done, \d+ pairs in", result.output)
    assert re.search(r"reconcile 3202: 1 of 1 drill-downs, [\d,.]+ drill-downs/s, nearly done", result.output)


def test_describe_reads_like_the_log():
    start = utcnow()
    row = ProgressRow("extract", "2301", "rows", 120_000, 1_000_000, True, start, start + timedelta(seconds=60))
    assert describe(row) == "extract 2301: 120,000 of ~1,000,000 rows, 2,000 rows/s, about 7 min left"
    assert row.ends_at == start + timedelta(seconds=60 + 440)
    done = ProgressRow("build", "", "records", 10, 10, False, start, start + timedelta(seconds=2))
    assert describe(done) == "build: 10 of 10 records, 5.0 records/s, nearly done"


def test_the_page_with_work_in_progress_fits_the_window(make_adapter, centre, sample_his, tmp_path):
    from tests.test_reports import SHOTS, WIDTH, _browse, _pixels

    port = free_port()
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, schedule=f'[monitor]\nlisten = "127.0.0.1:{port}"')
    now = utcnow()
    write_progress(adapter.store, ProgressRow("extract", "2301", "rows", 1_234_567, 9_876_543, True,
                                              now - timedelta(minutes=9), now - timedelta(seconds=2)))
    write_progress(adapter.store, ProgressRow("catalog", "1301", "rows", 40_000, None, False,
                                              now - timedelta(hours=2), now - timedelta(hours=1)))
    daemon = Daemon(adapter)
    daemon.monitor = daemon._start_monitor(adapter.settings)
    try:
        assert daemon.monitor is not None
        status, _, page = get(f"http://127.0.0.1:{port}/")
    finally:
        daemon.monitor.stop()
    assert status == 200
    assert '<td class="code">抽取 extract 2301</td><td class="count">1,234,567 / ~9,876,543 rows</td>' in page
    assert '<tr class="bad">\n<td class="code">目录 catalogue 1301</td>' in page  # quiet for an hour
    assert '<td class="count">2,295 rows/s</td><td class="hours">1 h 3 min</td>' in page  # 8,641,976 left
    assert "总数未知 total not known" in page

    saved = tmp_path / "status-progress.html"
    saved.write_text(page, encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / "status-page-progress.png"
    shot.unlink(missing_ok=True)
    _browse(saved, profile, f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(set(_pixels(png))) > 20, f"{shot} looks blank"
    probe = tmp_path / "status-progress-probe.html"
    probe.write_text(page.replace(
        "</body>", '<script>document.body.dataset.width = document.documentElement.scrollWidth</script></body>'),
        encoding="utf-8")
    width = re.search(r'data-width="(\d+)"', _browse(probe, profile, "--dump-dom").stdout)
    assert width and int(width.group(1)) <= WIDTH, width and width.group(1)  # wide tables scroll in their box
