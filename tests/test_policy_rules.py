"""Each built-in policy rule on a stay that should trigger it and one that should not, and how
a region's rule set and the configuration change them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from adapter.errors import ConfigError
from adapter.plugin.policy import EarlierStay, Stay
from adapter.plugin.rules import Severity
from adapter.policy.builtin import BUILTIN_POLICY_RULES
from adapter.policy.engine import evaluate, resolve
from adapter.records import FeeLine, MappedFeeLine

T0 = datetime(2026, 11, 3, 9, 0, 0)


def line(sn: str, item: str = "YP0001", *, at: datetime = T0, cnt: str = "1", pric: str = "10",
         code: str = "XJ01CAA040E001010101919", **extra) -> MappedFeeLine:
    fee = FeeLine(
        source_key=sn, mdtrt_id="Z1", psn_no="P1", feedetl_sn=sn, fee_ocur_time=at, his_item_code=item,
        his_item_name="药", cnt=Decimal(cnt), pric=Decimal(pric), det_item_fee_sumamt=Decimal(cnt) * Decimal(pric),
        his_dept_code="NK01", his_dept_name="内科", his_doctor_code="YS001", his_doctor_name="王", **extra,
    )
    return MappedFeeLine(fee, code, "A03", "D431199000100")


def run(*lines: MappedFeeLine, earlier=(), region=None, config=None):
    active = resolve(BUILTIN_POLICY_RULES, "test", region or {}, config or {})
    return [(f.rule_id, f.line.line.feedetl_sn, f.amount) for f in evaluate(active, Stay("Z1", lines, earlier))]


def test_duplicate_charge():
    assert run(line("1"), line("2")) == [("duplicate-charge", "2", Decimal("10"))]
    assert run(line("1"), line("2", at=T0.replace(hour=10))) == []
    assert run(line("1"), line("2", at=T0.replace(minute=20)), config={"duplicate-charge": {"window_minutes": 30}}) \
        == [("duplicate-charge", "2", Decimal("10"))]
    # refunded in full: the second charge is the correction, not a duplicate
    assert run(line("1"), line("R", cnt="-1", init_feedetl_sn="1"), line("2")) == []


def test_over_standard_price():
    assert run(line("1", pric="12", cnt="2", his_std_price=Decimal("10"))) == [
        ("over-standard-price", "1", Decimal("4.00"))]
    assert run(line("1", pric="10", his_std_price=Decimal("10"))) == []


def test_refund_without_original_or_over_refund():
    assert run(line("R", cnt="-1", init_feedetl_sn="9")) == [("refund-exceeds-original", "R", Decimal("10"))]
    assert run(line("1", cnt="2"), line("R1", cnt="-1", init_feedetl_sn="1", at=T0.replace(hour=10)),
               line("R2", cnt="-2", init_feedetl_sn="1", at=T0.replace(hour=11))) == [
        ("refund-exceeds-original", "R2", Decimal("10.00"))]
    assert run(line("1", cnt="2"), line("R1", cnt="-2", init_feedetl_sn="1")) == []


@pytest.mark.parametrize(
    ("extra", "days", "hit"),
    [
        ({}, "7", False), ({}, "8", True),  # acute 7
        ({"main_diag_code": "I10.x00"}, "15", False), ({"main_diag_code": "I10.x00"}, "16", True),  # chronic 15
        ({"main_diag_code": "E11.900"}, "30", False), ({"main_diag_code": "C34.900"}, "31", True),  # specified 30
        ({"dscg_tkdrug_flag": "1"}, "15", False), ({"dscg_tkdrug_flag": "1", "main_diag_code": "E11.900"}, "16", True),
        ({"er_flag": "1"}, "4", True),
    ],
)
def test_dispensing_days_by_disease_class(extra, days, hit):
    found = run(line("1", prd_days=Decimal(days), his_item_category="drug", **extra))
    assert (found != []) is hit


def test_dispensing_days_with_a_regional_rule_set():
    township = {"dispensing-days": {"acute_days": 3, "chronic_days": 7, "source": "000 §10-六"}}
    assert run(line("1", prd_days=Decimal("4")), region=township) == [("dispensing-days", "1", Decimal("2.50"))]


def test_drugs_per_prescription():
    six = [line(str(n), f"YP000{n}", rxno="CF1", his_item_category="drug", at=T0.replace(minute=n)) for n in range(6)]
    assert run(*six) == [("drugs-per-prescription", "5", Decimal("10"))]
    assert run(*six[:5]) == []


def test_split_hospitalisation():
    earlier = [EarlierStay("Z0", None, datetime(2026, 11, 1, 10), "J18.900")]
    stay = line("1", adm_time=datetime(2026, 11, 8, 9), main_diag_code="J18.000")
    assert [r[0] for r in run(stay, earlier=earlier)] == ["split-hospitalisation"]
    late = line("1", adm_time=datetime(2026, 11, 20, 9), main_diag_code="J18.000")
    assert run(late, earlier=earlier) == []
    other = line("1", adm_time=datetime(2026, 11, 8, 9), main_diag_code="K35.800")
    assert run(other, earlier=earlier) == []


def test_bed_hanging():
    bed = dict(his_item_category="bed", item="ZL0001", code="001105000010000")
    care = line("2", "ZL0003", code="002000000030000", his_item_category="service")
    assert run(line("1", **bed), care) == []
    assert run(line("1", **bed), care, line("3", at=T0.replace(day=4), **bed)) == [
        ("bed-hanging", "3", Decimal("10"))]


def test_excluded_cause():
    assert [r[0] for r in run(line("1", injury_cause="traffic"))] == ["excluded-cause"]
    assert run(line("1", injury_cause="")) == []


def test_item_substitution():
    assert [r[0] for r in run(line("1", his_item_category="drug", code="001105000010000"))] == ["item-substitution"]
    assert run(line("1", his_item_category="drug")) == []


def test_settings_are_checked_and_applied():
    with pytest.raises(ConfigError, match="unknown rule"):
        resolve(BUILTIN_POLICY_RULES, "x", {"no-such-rule": {}}, {})
    with pytest.raises(ConfigError, match="has no parameter 'acute'"):
        resolve(BUILTIN_POLICY_RULES, "x", {}, {"dispensing-days": {"acute": 3}})
    active = {a.rule.id: a for a in resolve(BUILTIN_POLICY_RULES, "zhejiang",
                                            {"dispensing-days": {"acute_days": 3, "source": "000 §5-四"}},
                                            {"dispensing-days": {"severity": "block"},
                                             "bed-hanging": {"enabled": False}})}
    assert active["dispensing-days"].params["acute_days"] == 3
    assert active["dispensing-days"].severity is Severity.BLOCK
    assert active["bed-hanging"].enabled is False
    assert run(line("1", injury_cause="traffic"), config={"excluded-cause": {"enabled": False}}) == []


def test_refund_of_a_line_parked_here_is_left_to_wait():
    from adapter.plugin.policy import Stay as S
    active = resolve(BUILTIN_POLICY_RULES, "test", {}, {})
    refund = line("R", cnt="-1", init_feedetl_sn="9")
    assert evaluate(active, S("Z1", [refund], (), frozenset({"9", "R"}))) == []


def test_same_day_outpatient_visits():
    morning = EarlierStay("MZ1", datetime(2026, 11, 3, 8), None, "", outpatient=True)
    yesterday = EarlierStay("MZ0", datetime(2026, 11, 2, 8), None, "", outpatient=True)
    visit = line("1", med_type="11")
    assert [r[0] for r in run(visit, earlier=[morning])] == ["same-day-outpatient-visits"]
    assert run(visit, earlier=[yesterday]) == []
    assert run(line("1"), earlier=[morning]) == []  # an inpatient stay is not an outpatient visit


# -- the self-inspection report --------------------------------------------------------------------
def _planted_findings(tmp_path):
    """A state database holding findings of three rules (two stays, two departments)."""
    from adapter.state import schema
    from adapter.state.store import StateStore, utcnow

    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    rows = [("bed-hanging", "warn", "reported", "Z1", "1", "内科", "王医生", T0, "80.00"),
            ("duplicate-charge", "block", "parked", "Z1", "2", "内科", "王医生", T0.replace(hour=10), "1234.50"),
            ("duplicate-charge", "block", "parked", "Z2", "7", "外科", "李医生", T0.replace(day=5), "10.00"),
            ("plugin-rule", "warn", "late", "Z2", "8", "外科", "李医生", T0.replace(day=6), "5.5")]
    with store.begin() as conn:
        conn.execute(schema.finding.insert(), [
            {"rule_id": rule, "severity": severity, "outcome": outcome, "stay_key": stay, "feedetl_sn": sn,
             "his_item_code": "YP0001", "dept": dept, "doctor": doctor, "fee_time": at, "amount": amount,
             "message": f"fix <{rule}>", "evidence": "{}", "created_at": utcnow()}
            for rule, severity, outcome, stay, sn, dept, doctor, at, amount in rows])
    return store


def test_self_inspection_workbook_is_finance_grade(tmp_path):
    from datetime import date

    from openpyxl import load_workbook

    from adapter.policy.report import as_xlsx, build_report
    from adapter.reports.layout import Hospital

    store = _planted_findings(tmp_path)
    try:
        report = build_report(store, date(2026, 11, 1), date(2026, 11, 30), region="nhsa",
                              descriptions={a.id: a.description for a in BUILTIN_POLICY_RULES}
                              | {"plugin-rule": "a plugin's own rule"})
    finally:
        store.close()
    path = tmp_path / "rules.xlsx"
    path.write_bytes(as_xlsx(report, Hospital("H43111100255", "测试医院")))
    book = load_workbook(path)
    assert book.sheetnames == ["汇总 Summary", "按规则 By rule", "按科室 By department", "按医生 By doctor",
                               "指标 Indicators", "明细 Findings"]
    by_rule = book["按规则 By rule"]
    assert [c.value for c in by_rule[1]] == ["规则", "规则名称", "说明", "发现数", "已拦截", "涉及金额"]
    assert by_rule["D1"].comment.text == "Findings" and by_rule.freeze_panes == "A2"
    assert by_rule.auto_filter.ref == "A1:F4"
    assert [[c.value for c in row] for row in by_rule.iter_rows(min_row=2, max_row=4)] == [
        ["duplicate-charge", "重复收费", "the same item charged twice for the same stay at the same time", 2, 2,
         1244.5],
        ["bed-hanging", "挂床住院", "days with only bed charges and no treatment", 1, 0, 80.0],
        ["plugin-rule", "a plugin's own rule", "a plugin's own rule", 1, 0, 5.5],
    ]
    assert [c.value for c in by_rule[5]] == ["合计 Total", None, None, "=SUM(D2:D4)", "=SUM(E2:E4)", "=SUM(F2:F4)"]
    assert by_rule["F2"].number_format == by_rule["F5"].number_format == "#,##0.00"
    assert by_rule["D2"].number_format == "#,##0" and isinstance(by_rule["D2"].value, int)
    findings = book["明细 Findings"]
    assert findings.max_row == 1 + 4 + 1
    assert findings["A2"].value == T0 and findings["A2"].number_format == "yyyy-mm-dd hh:mm:ss"
    header = [c.value for c in findings[1]]
    assert header[:7] == ["费用时间", "规则", "规则名称", "严重程度", "严重程度名称", "处理", "处理名称"]
    assert [findings.cell(2, i).value for i in (4, 5, 6, 7)] == ["warn", "提示 warn", "reported",
                                                                "已上传并报告 sent and reported"]
    summary = {row[0].value: row[2].value for row in book["汇总 Summary"].iter_rows(min_row=2)}
    assert summary["发现数"] == "4" and summary["涉及金额"] == "1,330.00 元 yuan" and summary["医院"] == "测试医院"


def test_self_inspection_page_explains_every_rule_in_chinese_first(tmp_path):
    from datetime import date

    from lxml import html

    from adapter.policy.report import as_html, build_report
    from adapter.reports.layout import Hospital

    store = _planted_findings(tmp_path)
    try:
        report = build_report(store, date(2026, 11, 1), date(2026, 11, 30), region="nhsa",
                              descriptions={a.id: a.description for a in BUILTIN_POLICY_RULES})
    finally:
        store.close()
    page = as_html(report, Hospital("H43111100255", "测试医院"))
    doc = html.fromstring(page)
    assert doc.xpath("string(//h1)").split() == ["医保自查报告", "Self-inspection"]
    headings = [" ".join(h.text_content().split()) for h in doc.xpath("//h2")]
    assert headings[:3] == ["按规则 By rule", "按科室 By department", "按医生 By doctor"]
    rules = [" ".join(r.xpath("string(td[1])").split()) for r in doc.xpath('//table[@id="by-rule"]/tbody/tr')]
    assert rules == ["duplicate-charge 重复收费", "bed-hanging 挂床住院", "plugin-rule"]
    assert doc.xpath('string(//table[@id="by-rule"]/tfoot/tr/td[5])') == "1,330.00"
    assert doc.xpath('//table[@id="by-rule"]/tbody/tr[1]/td[5]/@class') == ["money"]
    assert "fix &lt;duplicate-charge&gt;" in page and "<script" not in page
    facts = " ".join(doc.xpath("string(//dl)").split())
    assert "测试医院" in facts and "H43111100255" in facts and "2026-11-01 – 2026-11-30" in facts
    assert "yibao-adapter" in facts and "UTC" in facts
