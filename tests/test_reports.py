"""The reports people read, read the way they read them: every HTML report rendered by headless
Chromium at 1,000 px (the screenshot kept under build/screenshots/ as a CI artefact; no page
wider than the window, a wide table scrolls in its own box) and printed on A4 landscape; every
workbook read back with openpyxl (numbers stored as numbers with their format, dates as dates,
the header frozen, an autofilter, totals as SUM formulas); and the transmission compliance
report over a state database built by real cycles against the simulated centre, with late
uploads planted in it, discharges left unsent by a centre that answers 503, and the lines the
checks parked."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import select, update

from adapter.cli import main
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.sample_his import add_policy_cases, generate_sample_his
from adapter.reports import transmission
from adapter.spec.tables import load_edition
from adapter.state import schema
from tests.conftest import config_text, import_sample_mapping
from tests.helpers import run_until_done
from tests.test_reconcile import NOVEMBER, settled  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[1]
#: the CI artefact folder of the screenshots (and the printed PDFs)
SHOTS = ROOT / "build" / "screenshots"
WIDTH, HEIGHT = 1000, 1400
BEIJING = timezone(timedelta(hours=8), "CST")


# -- Chromium -----------------------------------------------------------------------------------
def _chromium() -> str:
    """Debian's chromium: skipped where it is not installed, a failure under CI=true."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; CI must take the report screenshots (.ci/run installs Debian's "
                    "chromium package)")
    pytest.skip("chromium is not installed (apt-get install chromium): the report screenshots are not taken")


def _browse(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         f"--window-size={WIDTH},{HEIGHT}", *args, page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )


def _pixels(png: bytes) -> bytes:
    """The PNG's decompressed scanlines (its IDAT chunks)."""
    data, offset = b"", 8
    while offset < len(png):
        length, kind = struct.unpack(">I4s", png[offset:offset + 8])
        if kind == b"IDAT":
            data += png[offset + 8:offset + 8 + length]
        offset += 12 + length
    return zlib.decompress(data)


def look_at(page: Path, name: str, tmp_path: Path) -> Path:
    """Screenshot ``page`` at 1,000 x 1,400 into build/screenshots/NAME.png and print it to
    NAME.pdf; check the picture is the window's size and not blank, that nothing makes the page
    wider than the window, and that it prints on A4 landscape."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot, pdf = SHOTS / f"{name}.png", SHOTS / f"{name}.pdf"
    for stale in (shot, pdf):
        stale.unlink(missing_ok=True)
    profile = tmp_path / "chromium-profile"
    _browse(page, profile, f"--screenshot={shot}")
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (WIDTH, HEIGHT)
    assert len(png) > 30_000 and len(set(_pixels(png))) > 20, f"{shot} looks blank"
    # the page's own width at 1,000 px: wide tables scroll inside their box instead
    probe = page.with_name(f"{page.stem}-probe.html")
    probe.write_text(page.read_text(encoding="utf-8").replace(
        "</body>", '<script>document.body.dataset.width = document.documentElement.scrollWidth</script></body>'),
        encoding="utf-8")
    dom = _browse(probe, profile, "--dump-dom").stdout
    width = re.search(r'data-width="(\d+)"', dom)
    assert width and int(width.group(1)) <= WIDTH, f"{name} is wider than {WIDTH} px: {width and width.group(1)}"
    _browse(page, profile, "--no-pdf-header-footer", f"--print-to-pdf={pdf}")
    boxes = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert boxes and all(abs(float(w) - 841.9) < 2 and abs(float(h) - 595.3) < 2 for w, h in boxes), boxes
    return shot


# -- workbooks ------------------------------------------------------------------------------------
def _column(sheet, header: str) -> list:
    """The data cells (no header, no totals) of the column headed ``header``."""
    heads = [c.value for c in sheet[1]]
    index = heads.index(header) + 1
    last = sheet.max_row - (1 if str(sheet.cell(sheet.max_row, 1).value or "").startswith("合计") else 0)
    return [sheet.cell(row, index) for row in range(2, last + 1)]


def check_sheet(sheet, *, money: tuple[str, ...] = (), counts: tuple[str, ...] = (), dates: tuple[str, ...] = (),
                summed: tuple[str, ...] = ()) -> None:
    """A finance-grade sheet: frozen header with English comments, autofilter, typed cells,
    number formats, and (where ``summed`` names columns) a totals row of SUM formulas."""
    assert sheet.freeze_panes == "A2", sheet.title
    assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:"), sheet.title
    assert all(isinstance(c.value, str) and c.comment is not None and c.comment.text for c in sheet[1]), sheet.title
    assert all(sheet.column_dimensions[c.column_letter].width for c in sheet[1])
    assert sheet.page_setup.orientation == "landscape" and int(sheet.page_setup.paperSize) == int(sheet.PAPERSIZE_A4)
    for header in money:
        cells = [c for c in _column(sheet, header) if c.value is not None]
        assert cells and all(type(c.value) in (int, float) and c.number_format == "#,##0.00" for c in cells), header
    for header in counts:
        cells = _column(sheet, header)
        assert cells and all(type(c.value) is int and c.number_format == "#,##0" for c in cells), header
    for header in dates:
        cells = [c for c in _column(sheet, header) if c.value is not None]
        assert cells and all(isinstance(c.value, datetime) and c.is_date for c in cells), header
    last = list(sheet[sheet.max_row])
    assert any(c.value == "合计 Total" for c in last) is bool(summed), sheet.title
    heads = [c.value for c in sheet[1]]
    for header in summed:
        total = last[heads.index(header)]
        assert re.fullmatch(rf"=SUM\((?P<c>[A-Z]+)2:(?P=c){sheet.max_row - 1}\)", str(total.value)), header
        assert total.number_format == ("#,##0.00" if header in money else "#,##0" if header in counts
                                       else total.number_format), header


# -- reconciliation -------------------------------------------------------------------------------
def test_reconciliation_workbook_and_page(settled, centre, tmp_path):  # noqa: F811 - the fixture
    from adapter.reconcile import report
    from adapter.reports.layout import Hospital

    ids = sorted(centre.ledger.settlements)
    centre.lose_settlement(ids[0])
    centre.alter_settlement(ids[1], fund_pay_sumamt=centre.ledger.settlements[ids[1]]["fund_pay_sumamt"] + 1)
    run = settled.reconciler.run(NOVEMBER)
    hospital = Hospital("H43111100255", "测试医院")

    book_path = tmp_path / "recon.xlsx"
    book_path.write_bytes(report.as_xlsx(run, settled.edition.label, hospital, "431199"))
    book = load_workbook(book_path)
    assert book.sheetnames == ["汇总", "每日", "差异明细", "说明 About"]
    pairs = book["汇总"]
    amounts = ("医疗费总额", "基金支付总额", "个人账户支付", "现金支付")
    check_sheet(pairs, money=amounts, counts=("结算笔数", "差异"), summed=(*amounts, "结算笔数", "差异"))
    assert [c.value for c in pairs[1]][:4] == ["结算经办机构", "结算经办机构名称", "险种", "险种名称"]
    assert pairs["A1"].comment.text.startswith("Clearing agency")
    assert {c.value for c in _column(pairs, "险种名称")} <= {"职工基本医疗保险", "城乡居民基本医疗保险"}
    medfee = sum(Decimal(p.local["medfee_sumamt"]) for p in run.pairs)
    assert Decimal(str(sum(c.value for c in _column(pairs, "医疗费总额")))).quantize(Decimal("0.01")) == medfee
    check_sheet(book["每日"], money=("医疗费总额", "基金支付总额"), counts=("结算笔数",), dates=("日期",),
                summed=("医疗费总额", "基金支付总额", "结算笔数"))
    diffs = book["差异明细"]
    check_sheet(diffs, money=("医院", "差额(中心-医院)"), summed=("差额(中心-医院)",))
    assert sorted(c.value for c in _column(diffs, "差异类型名称")) == ["仅医院有", "金额不一致"]
    about = {row[0].value: row[2].value for row in book["说明 About"].iter_rows(min_row=2)}
    assert about["医院"] == "测试医院" and about["医院编码"] == "H43111100255"
    assert about["开始日期"] == datetime(2026, 11, 1) and about["结束日期"] == datetime(2026, 11, 30)
    assert isinstance(about["生成时间"], datetime) and about["版本"].startswith("yibao-adapter ")
    assert about["对账结果"].startswith("不平")

    page = tmp_path / "reconciliation.html"
    page.write_text(report.as_html(run, settled.edition.label, hospital, "431199"), encoding="utf-8")
    text = page.read_text(encoding="utf-8")
    assert "<script" not in text and "测试医院" in text and "H43111100255" in text and "2026-11-01 – 2026-11-30" in text
    assert "@page" in text and "A4 landscape" in text and "@media print" in text
    assert "职工基本医疗保险" in text and "金额不一致" in text and "yibao-adapter " in text
    assert re.search(r"生成时间.*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (\w+ )?UTC[+-]\d\d:\d\d", text, re.S)
    look_at(page, "reconciliation", tmp_path)


def test_report_html_escapes_what_it_shows():
    from adapter.html_page import _environment, render
    from adapter.reports.layout import Coded, Column, Hospital, Table, masthead

    head = masthead("报表", "Report", Hospital("H1", "<b>医院</b>"), date(2026, 11, 1), date(2026, 11, 1))
    page = render("base.html", head)
    assert "&lt;b&gt;医院&lt;/b&gt;" in page and "<b>医院" not in page and "yibao-adapter" in page
    table = Table("t", "t", "表", "Table", (Column("名称", "Name"), Column("代码", "Code", "code"),
                                            Column("金额", "Amount", "money", total=True)),
                  [["<script>alert(1)</script>", Coded("310", "<i>"), Decimal("1234567.5")],
                   ["&", Coded("390"), Decimal("-2")]])
    html = _environment().from_string('{% from "tables.html" import table %}{{ table(t) }}').render(t=table)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&amp;" in html
    assert '310 <span class="label">&lt;i&gt;</span>' in html
    assert "1,234,567.50" in html and "1,234,565.50" in html  # the total, in <tfoot>


def test_a_long_table_is_cut_on_the_page_but_totalled_whole():
    from adapter.html_page import _environment
    from adapter.reports.layout import Column, Table

    table = Table("t", "t", "表", "Table", (Column("名称", "Name"), Column("金额", "Amount", "money", total=True)),
                  [[str(n), Decimal(n)] for n in range(10)], page_limit=3)
    html = _environment().from_string('{% from "tables.html" import table %}{{ table(t) }}').render(t=table)
    assert html.count("<tr>") == 1 + 3 + 1 and "前 3 行，共 10 行" in html and ">45.00<" in html


# -- self-inspection ------------------------------------------------------------------------------
def test_self_inspection_workbook_and_page(tmp_path, make_centre):
    from adapter.app import build_adapter
    from adapter.config import load_settings
    from adapter.policy.report import RULE_NAMES

    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=6, lines_per_visit=6, seed=5,
                              unmapped_share=0, invalid_share=0, malformed_share=0)
    add_policy_cases(his.url)
    centre = make_centre("jiangxi")
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url=centre.url, region="jiangxi"), encoding="utf-8")
    adapter = build_adapter(load_settings(config))
    try:
        import_sample_mapping(adapter, his)
        run_until_done(adapter)
    finally:
        adapter.close()
    runner = CliRunner()
    base = ["rules", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--config", str(config),
            "--annual-fund-payments", "1000000"]

    book_path = tmp_path / "rules.xlsx"
    result = runner.invoke(main, [*base, "--format", "xlsx", "--out", str(book_path)])
    assert result.exit_code == 0, result.output
    book = load_workbook(book_path)
    assert book.sheetnames[0] == "汇总 Summary"
    by_rule = book["按规则 By rule"]
    check_sheet(by_rule, money=("涉及金额",), counts=("发现数", "已拦截"), summed=("涉及金额", "发现数", "已拦截"))
    assert [c.value for c in by_rule[1]][:3] == ["规则", "规则名称", "说明"]  # not `key, findings`
    names = {c.value: by_rule.cell(c.row, 2).value for c in _column(by_rule, "规则")}
    assert len(names) >= 3 and names["duplicate-charge"] == "重复收费"
    assert names["excluded-cause"] == "基金不予支付的伤害"
    assert names == {rule: RULE_NAMES[rule] for rule in names}  # every built-in rule by its Chinese name
    check_sheet(book["按科室 By department"], money=("涉及金额",), counts=("发现数",), summed=("涉及金额",))
    check_sheet(book["指标 Indicators"])
    assert all(c.number_format == "0.00%" and type(c.value) is float for c in _column(book["指标 Indicators"], "数值"))
    findings = book["明细 Findings"]
    check_sheet(findings, money=("金额",), dates=("费用时间",), summed=("金额",))
    assert {c.value for c in _column(findings, "严重程度名称")} <= {"拦截 block", "提示 warn"}
    summary = {row[0].value: row[2].value for row in book["汇总 Summary"].iter_rows(min_row=2)}
    assert summary["医院"] == "测试医院" and summary["统筹区域"] == "jiangxi"

    page = tmp_path / "self-inspection.html"
    assert runner.invoke(main, [*base, "--format", "html", "--out", str(page)]).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "医保自查报告" in text and "重复收费" in text and "按科室" in text
    assert "仅为估算" in text and "ESTIMATE ONLY" in text and "测试医院" in text
    look_at(page, "self-inspection", tmp_path)


# -- transmission compliance ----------------------------------------------------------------------
#: the column of each transaction's HIS time in the sample HIS's queries
HIS_TIME = {"2401": "begntime", "2301": "fee_ocur_time", "2402": "endtime"}


@pytest.fixture
def beijing_time(monkeypatch):
    """The machine's local time is Beijing time, as beside a HIS in China."""
    monkeypatch.setenv("TZ", "Asia/Shanghai")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _ledger(store) -> list:
    record = schema.record
    with store.begin() as conn:
        return conn.execute(select(record.c.id, record.c.infno, record.c.status, record.c.message_id,
                                   record.c.raw, record.c.park_kind)).all()


def _his_time(row) -> datetime:
    return datetime.fromisoformat(json.loads(row.raw)[HIS_TIME[row.infno]]).replace(tzinfo=BEIJING)


@pytest.fixture
def uploads(make_adapter, centre, sample_his, tmp_path, beijing_time):
    """Admissions and fee lines uploaded by real cycles, each acknowledgement then planted an
    hour after the HIS produced its message's latest record, but one admission's 27 hours
    after (3 hours late); discharges extracted while the centre answers 503 (unsent)."""
    state = f"sqlite:///{tmp_path / 'state.db'}"
    first = make_adapter(his_url=sample_his.url, state_url=state, centre_url=centre.url,
                         his_extra='transactions = ["2401", "2301"]')
    import_sample_mapping(first, sample_his)
    run_until_done(first)
    sent = [r for r in _ledger(first.store) if r.status == "sent"]
    latest: dict[int, datetime] = {}
    for row in sent:
        latest[row.message_id] = max(latest.get(row.message_id, _his_time(row)), _his_time(row))
    late = min(r.message_id for r in sent if r.infno == "2401")
    acks = {m: t + (timedelta(hours=27) if m == late else timedelta(hours=1)) for m, t in latest.items()}
    with first.store.begin() as conn:
        for message_id, acked in acks.items():
            conn.execute(update(schema.message).where(schema.message.c.id == message_id).values(acked_at=_utc(acked)))
    centre.faults = FaultPlan(error_rate=1.0)
    second = make_adapter(his_url=sample_his.url, state_url=state, centre_url=centre.url,
                          his_extra='transactions = ["2401", "2301", "2402"]')
    second.cycle.run()
    return second, acks, late


def test_transmission_counts_every_record_once_and_traces_the_late_and_missing(uploads):
    adapter, acks, late = uploads
    names = {i: t.name for i, t in load_edition(adapter.region.interface_edition).transactions.items()}
    report = transmission.build_report(adapter.store, date(2026, 11, 1), date(2026, 11, 30), region=adapter.region,
                                       names=names, zone=BEIJING)

    ledger = [r for r in _ledger(adapter.store) if date(2026, 11, 1) <= _his_time(r).date() <= date(2026, 11, 30)]
    produced: Counter[str] = Counter()
    for count in report.counts:
        produced[count.infno] += count.produced
        assert count.produced == count.on_time + count.late + count.unsent + count.parked + count.withdrawn
    assert produced == Counter(r.infno for r in ledger)
    assert report.total("late") == 1 and report.total("withdrawn") == 0
    assert report.total("on_time") == sum(1 for r in ledger if r.status == "sent") - 1
    parked = [r for r in ledger if r.status == "parked"]
    assert parked and report.total("parked") == len(parked)
    discharges = [r for r in ledger if r.infno == "2402"]
    assert discharges and report.total("unsent") == report.total("overdue") == len(discharges)
    assert report.names["2401"] == "入院办理" and report.deadlines["2301"] == timedelta(hours=24)
    assert report.clocks == {"2301": "fee_ocur_time", "2401": "begntime", "2402": "endtime"}

    # the late admission: by exactly how much, when, and through which message and attempts
    (item,) = [i for i in report.items if i.state == "late"]
    assert item.infno == "2401" and item.message_id == late and item.late_by == timedelta(hours=3)
    assert item.uploaded_at == acks[late] and item.due_at == item.produced_at + timedelta(hours=24)
    with adapter.store.begin() as conn:
        msgid = conn.execute(select(schema.message.c.last_msgid).where(schema.message.c.id == late)).scalar_one()
    assert item.msgid == msgid and [a.msgid for a in item.attempts][-1] == msgid
    assert item.attempts[-1].outcome == "ok" and item.attempts[-1].infcode == "0"
    # the unsent discharges: overdue, each in its message, with the attempts the centre answered 503
    unsent = [i for i in report.items if i.state == "unsent"]
    assert {i.infno for i in unsent} == {"2402"} and all(i.late_by and i.late_by > timedelta(days=1) for i in unsent)
    assert all(i.message_id is not None and i.status == "queued" for i in unsent)
    tried = [i for i in unsent if i.attempts]
    assert tried and all({a.http_status for a in i.attempts} == {503} and i.msgid == i.attempts[-1].msgid
                         for i in tried)
    # the parked lines, with why
    kinds = Counter(i.park_kind for i in report.items if i.state == "parked")
    assert kinds == Counter(r.park_kind for r in parked)
    assert all(i.park_reason for i in report.items if i.state == "parked")
    # the longest stretch of November without an acknowledgement, and each day's
    lo, hi = datetime(2026, 11, 1, tzinfo=BEIJING), datetime(2026, 12, 1, tzinfo=BEIJING)
    marks = [lo, *sorted(a for a in acks.values() if lo <= a < hi), hi]
    start, end = max(itertools.pairwise(marks), key=lambda pair: pair[1] - pair[0])
    assert report.longest_gap is not None and (report.longest_gap.start, report.longest_gap.end) == (start, end)
    assert len(report.day_gaps) == 30 and report.day_gaps[date(2026, 11, 30)] is not None
    quiet = report.day_gaps[date(2026, 11, 30)]
    assert quiet.length <= timedelta(days=1) and quiet.end == hi


def test_transmission_report_through_the_cli(uploads, tmp_path):
    adapter, _, _ = uploads
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=adapter.settings.his.url, state_url=adapter.settings.state.url,
                                  centre_url="http://127.0.0.1:9"), encoding="utf-8")
    runner = CliRunner()
    base = ["report", "transmission", "--from", "2026-11-01", "--to", "2026-11-30", "--config", str(config)]

    as_json = runner.invoke(main, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    assert data["totals"]["late"] == 1 and data["totals"]["unsent"] == data["totals"]["overdue"] > 0
    assert data["zone"] == "CST UTC+08:00" and data["deadlines"]["2401"] == 24 * 3600
    late = next(i for i in data["items"] if i["state"] == "late")
    assert late["late_by"] == 3 * 3600 and late["attempts"] and late["produced_at"].endswith("+08:00")

    csv_out = runner.invoke(main, [*base, "--format", "csv"])
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("日期 Day,交易 Transaction,交易名称 Transaction (label),时限(小时 hours)")
    assert any(line.startswith("2402,住院出院办理") or line.startswith("2402,") for line in lines)

    book_path = tmp_path / "transmission.xlsx"
    result = runner.invoke(main, [*base, "--format", "xlsx", "--output", str(book_path)])
    assert result.exit_code == 0 and "1 late" in result.output, result.output
    book = load_workbook(book_path)
    assert book.sheetnames == ["按日", "按日按交易", "迟报未报明细", "尝试", "说明 About"]
    states = ("产生", "按时上传", "迟报", "未上传", "挂起")
    check_sheet(book["按日"], counts=states, dates=("日期",), summed=states)
    per = book["按日按交易"]
    check_sheet(per, counts=("产生", "迟报"), dates=("日期",), summed=("产生", "迟报"))
    assert all(c.value == 24 and c.number_format == "#,##0.00" for c in _column(per, "时限(小时)"))
    items = book["迟报未报明细"]
    check_sheet(items, dates=("HIS时间", "截止", "读入时间"))
    states = [c.value for c in _column(items, "情况")]
    assert Counter(states)["late"] == 1 and {"late", "unsent", "parked"} == set(states)
    late_row = next(c.row for c in _column(items, "情况") if c.value == "late")
    header = [c.value for c in items[1]]
    assert items.cell(late_row, header.index("迟到/超时(小时)") + 1).value == 3.0
    check_sheet(book["尝试"], dates=("开始",))
    assert "yibao-adapter" in str(book.properties.creator)

    page = tmp_path / "transmission.html"
    assert runner.invoke(main, [*base, "--output", str(page)]).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert "医保数据上传及时性报告" in text and "入院办理" in text and "迟报" in text and "<script" not in text
    assert "HTTP 503" in text and "最长无上传" in text and "测试医院" in text
    look_at(page, "transmission", tmp_path)

    wrong = runner.invoke(main, [*base[:2], "--from", "2026-11-30", "--to", "2026-11-01", "--config", str(config)])
    assert wrong.exit_code == 2 and "--to is before --from" in wrong.output


def test_transmission_clock_of_each_national_transaction():
    from tests.conftest import region_profile

    region = region_profile("nhsa")
    clocks = {infno: transmission.clock_of(spec) for infno, spec in region.transactions.items()}
    assert clocks["2301"].field == "fee_ocur_time" and clocks["2204"].field == "feedetail.fee_ocur_time"
    assert clocks["2401"].field == "begntime" and clocks["2402"].field == "endtime"
    assert clocks["4101"].whole_day and "setl_end_date" in clocks["4101"].field
    assert clocks["3505"].field == "sel_retn_time" and clocks["3503"].field == "purc_retn_stoin_time"
    assert clocks["2302"].field == clocks["3507"].field == ""  # when the adapter read them
    # the latest of the times; a date counts from the end of its day
    batch = {"feedetail": [{"fee_ocur_time": "2026-11-03 09:00:00"}, {"fee_ocur_time": "2026-11-03 10:30:00"}]}
    assert transmission.produced_at(clocks["2204"], batch, BEIJING) == datetime(2026, 11, 3, 10, 30, tzinfo=BEIJING)
    listed = {"setl_begn_date": "2026-11-01", "setl_end_date": "2026-11-04"}
    assert transmission.produced_at(clocks["4101"], listed, BEIJING) == datetime(2026, 11, 5, tzinfo=BEIJING)
    assert transmission.produced_at(clocks["2301"], {"fee_ocur_time": "not a time"}, BEIJING) is None
    assert region.deadline_for("2301") == timedelta(hours=24)
