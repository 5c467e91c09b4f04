"""The global budget view (``report budget``): settlements planted with known amounts give, month
by month and per insurance type, the exact advance (94% of the fund payments up to the month's
budget), reserve, amount above the budget, 双通道 deductions and expected transfer, the figures to
date, the straight-line projection and the overspend shared under the region's rule (the default
and a region's own); then the command over a sample HIS (whose settlements name a few 双通道
deductions), its workbook read back with openpyxl and its page rendered by headless Chromium."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import create_engine, text

from adapter.cli import main
from adapter.config import parse_settings
from adapter.errors import ConfigError, SourceError
from adapter.plugin.api import OverspendBand, OverspendSharing
from adapter.plugin.budget import DEFAULT_ADVANCE_SHARE, DEFAULT_SHARING
from adapter.rehearsal.sample_his import generate_sample_his
from adapter.reports import budget
from adapter.reports.layout import Hospital
from tests.conftest import config_text, region_profile
from tests.test_reports import _column, check_sheet, look_at

D = Decimal
LABELS = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险", "510": "生育保险"}
#: 310 has 100,000.00 a month; 390 50,000.00, but 40,000.00 in February
BUDGETS = {m: {"310": D("100000.00"), "390": D("40000.00") if m == 2 else D("50000.00")} for m in range(1, 13)}


def _s(setl_id: str, insutype: str, when: str, fund: str, dual: str = "0") -> budget.BudgetSettlement:
    return budget.BudgetSettlement(setl_id, f"M{setl_id}", insutype, when, D(fund), D(dual))


#: a first quarter: 310 under its budget in January (with a 双通道 deduction), over it in
#: February (a refund among them), on it in March; 390 over from February; a 生育 settlement
#: outside the budget; one of April and one of the year before, both left out
QUARTER = [
    _s("A1", "310", "2026-01-05 09:00:00", "60000.00"),
    _s("A2", "310", "2026-01-20 10:30:00", "30000.00", dual="1200.00"),
    _s("A3", "310", "2026-02-03 08:00:00", "120000.00"),
    _s("A4", "310", "2026-02-10 08:00:00", "-5000.00"),
    _s("A5", "310", "2026-03-31 23:59:59", "100000.00"),
    _s("B1", "390", "2026-01-15 12:00:00", "45000.00"),
    _s("B2", "390", "2026-02-15 12:00:00", "50000.00"),
    _s("B3", "390", "2026-03-01 00:00:00", "70000.00", dual="2500.50"),
    _s("C1", "510", "2026-01-09 12:00:00", "3000.00"),
    _s("X1", "310", "2026-04-01 00:00:00", "999999.00"),
    _s("X2", "310", "2025-12-31 23:59:59", "999999.00"),
]


def _quarter(**kwargs) -> budget.BudgetReport:
    options = {"as_of": date(2026, 3, 31), "advance_share": DEFAULT_ADVANCE_SHARE, "sharing": DEFAULT_SHARING,
               "region": "nhsa", "labels": LABELS, **kwargs}
    return budget.build_report(2026, BUDGETS, QUARTER, **options)


def _line(report: budget.BudgetReport, month: int, insutype: str) -> budget.MonthLine:
    return next(line for line in report.lines if line.month == month and line.insutype == insutype)


def _year(report: budget.BudgetReport, insutype: str) -> budget.YearLine:
    return next(y for y in report.year_lines if y.insutype == insutype)


def test_each_month_advance_reserve_double_channel_and_transfer():
    report = _quarter()
    expected = {  # (month, insutype): spending, advance, reserve, over budget, 双通道, transfer, settlements
        (1, "310"): ("90000.00", "84600.00", "5400.00", "0.00", "1200.00", "83400.00", 2),
        (2, "310"): ("115000.00", "94000.00", "6000.00", "15000.00", "0.00", "94000.00", 2),
        (3, "310"): ("100000.00", "94000.00", "6000.00", "0.00", "0.00", "94000.00", 1),
        (1, "390"): ("45000.00", "42300.00", "2700.00", "0.00", "0.00", "42300.00", 1),
        (2, "390"): ("50000.00", "37600.00", "2400.00", "10000.00", "0.00", "37600.00", 1),
        (3, "390"): ("70000.00", "47000.00", "3000.00", "20000.00", "2500.50", "44499.50", 1),
    }
    for (month, insutype), (spent, advance, reserve, over, dual, transfer, count) in expected.items():
        line = _line(report, month, insutype)
        assert (line.spending, line.advance, line.reserve, line.over_budget, line.dual_channel, line.transfer,
                line.settlements) == (D(spent), D(advance), D(reserve), D(over), D(dual), D(transfer), count), (
            month, insutype)
        assert line.advance + line.reserve + line.over_budget == line.spending
    assert _line(report, 2, "390").budget == D("40000.00") and _line(report, 3, "390").budget == D("50000.00")
    # the months after the report's day have their budget and nothing else
    april = _line(report, 4, "310")
    assert april.budget == D("100000.00") and april.spending is None and april.position is None
    assert [(line.month, line.insutype) for line in report.lines] == [
        (m, i) for m in range(1, 13) for i in ("310", "390")]
    # 生育 has no budget: listed apart, not counted in the budget's figures
    assert report.unbudgeted == [budget.Unbudgeted("510", 1, D("3000.00"), D("0.00"))]
    assert [(s.setl_id, s.dual_channel) for s in report.dual_channel] == [("A2", D("1200.00")), ("B3", D("2500.50"))]


def test_to_date_projection_and_overspend_shared_under_the_default_rule():
    report = _quarter()
    assert report.months == 3
    employees = _year(report, "310").position
    assert (employees.budget_to_date, employees.spending_to_date, employees.variance) == (
        D("300000.00"), D("305000.00"), D("5000.00"))
    # 305,000 in 3 months -> 1,220,000 for the year, 20,000 (1.67%) above 1,200,000: shared 50/50
    assert (employees.annual_budget, employees.projected, employees.position) == (
        D("1200000.00"), D("1220000.00"), D("20000.00"))
    assert employees.position_share == D("0.0167") and employees.usage == D("1.0167")
    assert (employees.shares.fund, employees.shares.hospital) == (D("10000.00"), D("10000.00"))
    # 165,000 -> 660,000 against 590,000: 70,000 over (11.86%); 10% of the budget (59,000) is
    # shared 50/50, the 11,000 beyond is the hospital's alone
    residents = _year(report, "390").position
    assert (residents.annual_budget, residents.budget_to_date, residents.projected, residents.position) == (
        D("590000.00"), D("140000.00"), D("660000.00"), D("70000.00"))
    assert (residents.shares.fund, residents.shares.hospital) == (D("29500.00"), D("40500.00"))
    assert _year(report, "390").advance == D("126900.00") and _year(report, "390").reserve == D("8100.00")
    assert report.total("position") == D("90000.00") and report.total("hospital_share") == D("50500.00")
    assert report.total("dual_channel") == D("3700.50") and report.total("transfer") == D("395799.50")
    # month by month: the position at each month's end, projected from the months up to it
    january = _line(report, 1, "310").position
    assert january is not None and (january.months, january.budget_to_date, january.spending_to_date) == (
        1, D("100000.00"), D("90000.00"))
    assert (january.projected, january.position, january.shares.hospital) == (
        D("1080000.00"), D("-120000.00"), D("0.00"))
    february = _line(report, 2, "390").position
    assert february is not None and (february.budget_to_date, february.spending_to_date, february.projected) == (
        D("90000.00"), D("95000.00"), D("570000.00"))


def test_part_of_a_month_counts_by_its_days():
    report = _quarter(as_of=date(2026, 3, 15))
    assert report.months == 2 + D(15) / D(31)
    employees = _year(report, "310").position
    # the budget to date takes March's budget for its 15 days of 31; A5 (31 March) is not counted yet
    assert employees.budget_to_date == D("248387.10") and employees.spending_to_date == D("205000.00")
    assert employees.projected == (D("205000.00") / report.months * 12).quantize(D("0.01"))
    assert _line(report, 3, "310").settlements == 0 and _line(report, 3, "390").settlements == 1
    # before the year: nothing to date, no projection
    early = _quarter(as_of=date(2025, 12, 31))
    assert early.months == 0 and all(line.spending is None for line in early.lines)
    assert _year(early, "310").position.projected is None and early.total("position") == 0


def test_a_region_declares_its_advance_share_and_sharing_rule():
    national = region_profile("nhsa")
    assert national.budget_advance_share == D("0.94") and national.budget_sharing is DEFAULT_SHARING
    assert "默认 default" in national.budget_sharing.source
    own = OverspendSharing((OverspendBand(D("0.05"), D("0.7")), OverspendBand(D("0.15"), D("0.3")),
                            OverspendBand(None, D("0"))), source="某市医保局总额预算方案 §5")
    region = dataclasses.replace(national, budget_advance_share=D("0.90"), budget_sharing=own)
    report = _quarter(advance_share=region.budget_advance_share, sharing=region.budget_sharing)
    assert _line(report, 1, "310").advance == D("81000.00") and _line(report, 1, "310").reserve == D("9000.00")
    # 390: 70,000 over 590,000: 29,500 (5%) at 70% + 40,500 (up to 15% = 88,500) at 30%
    residents = _year(report, "390").position.shares
    assert (residents.fund, residents.hospital) == (D("32800.00"), D("37200.00"))
    assert own.describe() == ("超支5%以内基金70%、医院30%；15%以内基金30%、医院70%；15%以上基金0%、医院100% "
                              "(overspend up to 5%: fund 70%, hospital 30%; up to 15%: fund 30%, hospital 70%; "
                              "beyond 15%: fund 0%, hospital 100%)")
    page = budget.as_html(report, Hospital("H43111100255", "测试医院"))
    assert "某市医保局总额预算方案 §5" in page and "应预拨(90%)" in page and "预留(10%)" in page
    for bad in ((OverspendBand(D("0.1"), D("0.5")),), (OverspendBand(None, D("0.5")), OverspendBand(None, D("0")))):
        with pytest.raises(ValueError, match="open-ended"):
            OverspendSharing(bad, source="x")
    with pytest.raises(ValueError, match="between 0 and 1"):
        OverspendBand(None, D("1.5"))
    with pytest.raises(ValueError, match="rise"):
        OverspendSharing((OverspendBand(D("0.2"), D("0.5")), OverspendBand(D("0.1"), D("0.5")),
                          OverspendBand(None, D(0))), source="x")


def test_the_budget_configuration():
    base = config_text(his_url="sqlite://", state_url="sqlite://", centre_url="http://127.0.0.1:9")
    settings = parse_settings(base + '\n[budget.monthly]\n"310" = 1200000.50\n"390" = "800000"\n'
                              '[budget.months."2026-02"]\n"310" = 1000000\n')
    assert settings.budget.for_month(2026, 1) == {"310": D("1200000.50"), "390": D("800000")}
    assert settings.budget.for_month(2026, 2) == {"310": D("1000000"), "390": D("800000")}
    assert settings.budget.for_month(2027, 2) == {"310": D("1200000.50"), "390": D("800000")}
    for wrong, said in (('[budget.monthly]\n"310" = -1', "greater than or equal to 0"),
                        ('[budget.monthly]\n"310" = 1.005', "2 decimal places"),
                        ('[budget.monthly]\n"31" = 1', "[budget] monthly.31"),
                        ('[budget.months."2026-13"]\n"310" = 1', "YYYY-MM"),
                        ('[budget]\nyearly = 1', "unknown key")):
        with pytest.raises(ConfigError) as info:
            parse_settings(base + "\n" + wrong + "\n")
        assert said in "\n".join(info.value.problems), (wrong, info.value.problems)


def test_settlement_rows_are_read_with_the_regions_fund_payment():
    row = {"setl_id": "S1", "mdtrt_id": "V1", "psn_no": "P", "insutype": "310", "clr_type": "21",
           "setl_time": datetime(2026, 3, 1, 8, 30), "medfee_sumamt": "100.00", "fund_pay_sumamt": "70.00",
           "acct_pay": "10", "psn_cash_pay": "20"}
    item = budget.settlement_of(row, 1, mdtrt_ids={"V1": "431199000001"})
    assert (item.mdtrt_id, item.setl_time, item.fund_pay, item.dual_channel) == (
        "431199000001", "2026-03-01 08:30:00", D("70.00"), D(0))
    assert budget.settlement_of({**row, "dual_channel_amt": 12.5}, 1).dual_channel == D("12.5")
    assert budget.settlement_of(row, 1, fund_of=lambda s: s.fund_pay_sumamt - s.acct_pay).fund_pay == D("60.00")
    with pytest.raises(SourceError, match=r"row 3 .* dual_channel_amt 'x' is not an amount"):
        budget.settlement_of({**row, "dual_channel_amt": "x"}, 3)
    with pytest.raises(SourceError, match=r"row 2 .* no column 'fund_pay_sumamt'"):
        budget.settlement_of({k: v for k, v in row.items() if k != "fund_pay_sumamt"}, 2)


# -- the command, over a sample HIS ---------------------------------------------------------------
@pytest.fixture
def his(tmp_path: Path):
    """A sample HIS whose November settlements name a few 双通道 deductions."""
    sample = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=30, lines_per_visit=6, seed=3)
    engine = create_engine(sample.url)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(
            "SELECT insutype, setl_time, fund_pay_sumamt, dual_channel_amt FROM settlements"))]
    engine.dispose()
    assert rows and any(r["dual_channel_amt"] for r in rows) and {r["insutype"] for r in rows} == {"310", "390"}
    assert all(r["setl_time"].startswith("2026-11") for r in rows)
    return sample, rows


def _config(tmp_path: Path, his_url: str, budget_toml: str) -> Path:
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=his_url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url="http://127.0.0.1:9") + budget_toml, encoding="utf-8")
    return config


def test_budget_report_through_the_cli(his, tmp_path):
    sample, rows = his
    config = _config(tmp_path, sample.url, '\n[budget.monthly]\n"310" = 800.00\n"390" = 500.00\n'
                                           '[budget.months."2026-11"]\n"390" = 600.00\n')
    runner = CliRunner()
    base = ["report", "budget", "--year", "2026", "--as-of", "2026-11-30", "--config", str(config)]

    spent = {i: sum((D(str(r["fund_pay_sumamt"])) for r in rows if r["insutype"] == i), D(0)) for i in ("310", "390")}
    dual = {i: sum((D(str(r["dual_channel_amt"])) for r in rows if r["insutype"] == i and r["dual_channel_amt"]),
                   D(0)) for i in ("310", "390")}
    as_json = runner.invoke(main, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    november = {line["insutype"]: line for line in data["lines"] if line["month"] == "2026-11"}
    for insutype, month_budget in (("310", D("800.00")), ("390", D("600.00"))):
        line = november[insutype]
        assert D(str(line["spending"])) == spent[insutype] and D(str(line["budget"])) == month_budget
        assert D(str(line["advance"])) == (min(spent[insutype], month_budget) * D("0.94")).quantize(D("0.01"))
        assert D(str(line["dual_channel"])) == dual[insutype]
        assert D(str(line["transfer"])) == D(str(line["advance"])) - dual[insutype]
    assert data["months"] == 11 and data["advance_share"] == 0.94 and data["labels"]["310"] == "职工基本医疗保险"
    assert len(data["dual_channel"]) == sum(1 for r in rows if r["dual_channel_amt"])

    csv_out = runner.invoke(main, [*base, "--format", "csv"])
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("月份 Month,险种 Insurance type,险种名称 Insurance type (label),结算笔数 Settlements")
    assert any(line.startswith("2026-11,310,职工基本医疗保险,") for line in lines)

    book_path = tmp_path / "budget.xlsx"
    result = runner.invoke(main, [*base, "--format", "xlsx", "--out", str(book_path)])
    assert result.exit_code == 0 and "wrote" in result.output, result.output
    book = load_workbook(book_path)
    assert book.sheetnames == ["按月", "按月按险种", "累计与预测", "年度汇总", "双通道扣款", "说明 About"]
    flows = ("月度预算", "基金支付", "应预拨(94%)", "预留(6%)", "超预算未拨付", "双通道扣款", "应到账")
    check_sheet(book["按月"], money=flows, summed=flows)
    per = book["按月按险种"]
    check_sheet(per, money=flows, summed=(*flows, "结算笔数", "双通道笔数"))
    assert [c.value for c in per[1]][:4] == ["月份", "险种", "险种名称", "结算笔数"]
    header = [c.value for c in per[1]]
    november_row = next(c.row for c in _column(per, "月份") if c.value == "2026-11"
                        and per.cell(c.row, 2).value == "310")
    assert per.cell(november_row, header.index("基金支付") + 1).value == float(spent["310"])
    assert per.cell(november_row, header.index("结算笔数") + 1).value == sum(1 for r in rows if r["insutype"] == "310")
    assert sum(c.value for c in _column(per, "月度预算")) == 800 * 12 + 500 * 11 + 600
    check_sheet(book["累计与预测"], money=("累计预算", "累计基金支付", "预计全年支付"))
    year = book["年度汇总"]
    check_sheet(year, money=("年度预算", "预计全年支付", "基金分担", "医院承担"), counts=("结算笔数",),
                summed=("年度预算", "累计基金支付", "预计年终超支(+)/结余(-)", "结算笔数"))
    assert all(c.number_format == "0.00%" and type(c.value) is float for c in _column(year, "预算使用率"))
    check_sheet(book["双通道扣款"], money=("双通道扣款",), dates=("结算时间",), summed=("双通道扣款",))
    assert sum(c.value for c in _column(book["双通道扣款"], "双通道扣款")) == pytest.approx(float(sum(dual.values())))
    about = {row[0].value: row[2].value for row in book["说明 About"].iter_rows(min_row=2)}
    assert about["医院"] == "测试医院" and about["开始日期"] == datetime(2026, 1, 1)
    assert about["统计截至"] == "2026-11-30" and about["预拨比例"] == "94%" and "默认 default" in about["分担依据"]

    page = tmp_path / "budget.html"
    assert runner.invoke(main, [*base, "--out", str(page)]).exit_code == 0
    content = page.read_text(encoding="utf-8")
    assert "医保总额预算执行情况" in content and "Global budget" in content and "测试医院" in content
    assert "H43111100255" in content and "双通道扣款" in content and "<script" not in content
    assert "职工基本医疗保险" in content and "@media print" in content and "2026-01-01 – 2026-12-31" in content
    assert f"{spent['310']:,.2f}" in content  # amounts with thousands separators, right-aligned
    assert 'class="money"' in content
    look_at(page, "budget", tmp_path)


def test_budget_report_refuses_what_it_cannot_do(his, tmp_path):
    sample, _ = his
    runner = CliRunner()
    bare = _config(tmp_path, sample.url, "")
    no_budget = runner.invoke(main, ["report", "budget", "--year", "2026", "--config", str(bare)])
    assert no_budget.exit_code == 1 and "[budget]" in no_budget.output
    config = _config(tmp_path, sample.url, '\n[budget.monthly]\n"310" = 800.00\n')
    no_out = runner.invoke(main, ["report", "budget", "--year", "2026", "--format", "xlsx", "--config", str(config)])
    assert no_out.exit_code == 1 and "--out" in no_out.output
    wrong = runner.invoke(main, ["report", "budget", "--year", "2026", "--as-of", "2026-13-01", "--config",
                                 str(config)])
    assert wrong.exit_code == 2 and "--as-of" in wrong.output
    # 390 has no budget here: its settlements are listed apart
    listed = runner.invoke(main, ["report", "budget", "--year", "2026", "--as-of", "2026-12-31", "--format", "json",
                                  "--config", str(config)])
    data = json.loads(listed.stdout)
    assert [u["insutype"] for u in data["unbudgeted"]] == ["390"] and data["months"] == 12
