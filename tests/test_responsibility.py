"""Who answers for what is at stake: the self-inspection findings and the reconciliation
differences carry the ordering doctor, the billing department and the operator the HIS names
for each line (or settlement), and group by each of them, in HTML, XLSX, CSV and JSON, with
the amounts exact. The findings are made by the real extract and check stages over a HIS
database whose lines two doctors of two departments ordered and two nurses entered (one line
entered by nobody the HIS names); the differences by a real reconciliation against the
simulated centre. And the demo's sample HIS holds a case for every built-in rule."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from lxml import html as lxml_html
from openpyxl import load_workbook
from sqlalchemy import create_engine, insert, select

from adapter.cli import main
from adapter.flow.report import CycleReport
from adapter.mapping.store import MappingRow, MappingStore
from adapter.policy.builtin import BUILTIN_POLICY_RULES
from adapter.records import MappingKind
from adapter.rehearsal import sample_his as his_schema
from adapter.rehearsal.sample_his import create_schema, generate_sample_his, sample_mapping_rows
from adapter.rehearsal.sample_queries import FEE_LINES, SETTLEMENTS
from adapter.reports.responsibility import UNKNOWN
from adapter.state import schema
from tests.conftest import config_text, import_sample_mapping
from tests.test_reconcile import NOVEMBER, UPLOAD, settled  # noqa: F401 - the fixture
from tests.test_reports import _column, check_sheet, look_at

T = datetime(2026, 11, 12, 9, 0, 0)
NEXT_DAY = datetime(2026, 11, 13, 9, 0, 0)
#: what the planted lines must come to, per party: (findings, stopped, amount at stake)
BY_DOCTOR = {"YS000": (2, 2, Decimal("5.86")), "YS010": (2, 1, Decimal("57.00"))}
BY_DEPARTMENT = {"NK01": (2, 2, Decimal("5.86")), "NK02": (2, 1, Decimal("57.00"))}
BY_OPERATOR = {"HS000": (2, 1, Decimal("45.86")), "HS010": (1, 1, Decimal("12.00")), "": (1, 1, Decimal("5.00"))}
NAMES = {"YS000": "王一", "YS010": "李二", "NK01": "心血管内科", "NK02": "呼吸内科", "HS000": "周雪",
         "HS010": "郑琳"}
TOTAL = Decimal("62.86")


def _planted_his(url: str) -> None:
    """Two stays. Stay A (心血管内科, doctor 王一): amoxicillin charged twice at one time by nurse
    周雪 (duplicate, 0.86), a blood count at 25.00 over its standard 20.00, entered with no
    operator (5.00 over). Stay B (呼吸内科, doctor 李二): an infusion charged twice by nurse 郑琳
    (duplicate, 12.00), and on the next day nothing but the bed, entered by 周雪 (挂床, 45.00)."""
    create_schema(url)
    engine = create_engine(url)
    items = {code: (name, category, price) for code, name, category, price, _ in his_schema._ITEMS}
    with engine.begin() as conn:
        conn.execute(insert(his_schema.departments), [{"dept_code": c, "dept_name": NAMES[c]}
                                                      for c in ("NK01", "NK02")])
        conn.execute(insert(his_schema.doctors), [{"doctor_code": "YS000", "doctor_name": "王一", "dept_code": "NK01"},
                                                  {"doctor_code": "YS010", "doctor_name": "李二", "dept_code": "NK02"}])
        conn.execute(insert(his_schema.operators), [{"operator_code": c, "operator_name": NAMES[c]}
                                                    for c in ("HS000", "HS010")])
        conn.execute(insert(his_schema.charge_items), [
            {"item_code": code, "item_name": name, "category": category, "unit_price": Decimal(price)}
            for code, (name, category, price) in items.items()])
        for visit, (dept, doctor) in enumerate((("NK01", "YS000"), ("NK02", "YS010")), start=1):
            conn.execute(insert(his_schema.patients), {"patient_id": visit, "patient_name": "测试", "psn_no":
                                                       f"43{visit:018d}", "insuplc_admdvs": "431199"})
            conn.execute(insert(his_schema.inpatient_visits), {
                "visit_id": visit, "patient_id": visit, "mdtrt_id": f"431199{visit:09d}", "med_type": "21",
                "insutype": "310", "admitted_at": "2026-11-12 08:00:00", "dept_code": dept, "doctor_code": doctor,
                "main_diag_code": "J18.900", "main_diag_name": "肺炎"})

        def line(visit: int, n: int, item: str, at: datetime, operator: str | None, price: str | None = None) -> dict:
            unit = price or items[item][2]
            dept, doctor = (("NK01", "YS000"), ("NK02", "YS010"))[visit - 1]
            return {"visit_id": visit, "feedetl_sn": f"{visit}{n:04d}", "item_code": item, "qty": "1",
                    "unit_price": unit, "amount": unit, "charged_at": f"{at:%Y-%m-%d %H:%M:%S}", "dept_code": dept,
                    "doctor_code": doctor, "operator_code": operator}

        conn.execute(insert(his_schema.fee_lines), [
            line(1, 1, "YP0001", T, "HS000"), line(1, 2, "YP0001", T, "HS000"),
            line(1, 3, "ZL0004", T.replace(hour=10), None, price="25.00"),
            line(2, 1, "ZL0001", T, "HS010"), line(2, 2, "ZL0003", T, "HS010"), line(2, 3, "ZL0003", T, "HS010"),
            line(2, 4, "ZL0001", NEXT_DAY, "HS000"),
        ])
    engine.dispose()


def _checked(make_adapter, tmp_path: Path, his_url: str, state_url: str | None = None, **config: str):
    """The HIS read and checked by the real stages (extract, check: the policy rules run and
    store their findings); nothing is sent. Returns the adapter and its configuration file."""
    adapter = make_adapter(his_url=his_url, state_url=state_url or f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url="http://127.0.0.1:9", **config)
    MappingStore(adapter.store).upsert(MappingRow(MappingKind(kind), code, national, name)
                                       for kind, code, national, name in sample_mapping_rows())
    for _ in range(10):
        report = CycleReport()
        adapter.cycle.extract.run(report)
        adapter.cycle.check.run(report)
        if not report.extracted:
            break
    path = tmp_path / "adapter.toml"
    path.write_text(config_text(his_url=his_url, state_url=adapter.settings.state.url,
                                centre_url="http://127.0.0.1:9", **config), encoding="utf-8")
    return adapter, path


def _plant(make_adapter, tmp_path: Path, state_url: str | None = None) -> Path:
    url = f"sqlite:///{tmp_path / 'his.db'}"
    _planted_his(url)
    adapter, config = _checked(make_adapter, tmp_path, url, state_url)
    with adapter.store.begin() as conn:
        found = Counter(conn.execute(select(schema.finding.c.rule_id)).scalars())
    assert found == {"duplicate-charge": 2, "over-standard-price": 1, "bed-hanging": 1}
    return config


@pytest.fixture
def planted(make_adapter, tmp_path):
    return _plant(make_adapter, tmp_path)


def _report(config: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["rules", "report", "--from", "2026-11-01", "--to", "2026-11-30",
                                       "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize(("by", "expected"), [("doctor", BY_DOCTOR), ("department", BY_DEPARTMENT),
                                              ("operator", BY_OPERATOR)])
def test_findings_grouped_by_each_party_in_every_format(planted, tmp_path, by, expected):
    data = json.loads(_report(planted, "--by", by, "--format", "json"))
    assert data["by"] == by and data["findings"] == 4 and Decimal(data["amount"]) == TOTAL
    groups = {g["code"]: g for g in data["groups"]}
    assert {code: (g["findings"], g["blocked"], Decimal(g["amount"])) for code, g in groups.items()} == expected
    assert all(g["name"] == NAMES.get(code, "") for code, g in groups.items())
    assert [g["code"] for g in data["groups"]] == sorted(expected, key=lambda c: (not c, -expected[c][2]))
    assert sum(Decimal(g["share"]) for g in data["groups"]) == pytest.approx(Decimal(1), abs=Decimal("0.0003"))

    rows = list(csv.DictReader(io.StringIO(_report(planted, "--by", by, "--format", "csv"))))
    assert {r["code"]: (int(r["findings"]), int(r["blocked"]), Decimal(r["amount"])) for r in rows} == expected
    assert {r["by"] for r in rows} == {by}

    page = tmp_path / f"by-{by}.html"
    _report(planted, "--by", by, "--format", "html", "--out", str(page))
    doc = lxml_html.fromstring(page.read_text(encoding="utf-8"))
    body = doc.xpath(f'//table[@id="by-{by}"]/tbody/tr')
    shown = {"" if UNKNOWN in r.xpath("string(td[1])") else r.xpath("string(td[1])").split()[0]: r for r in body}
    assert set(shown) == set(expected) and len(body) == len(expected)
    for code, (count, stopped, amount) in expected.items():
        cells = [" ".join(td.text_content().split()) for td in shown[code].xpath("td")]
        assert cells[1:4] == [str(count), str(stopped), f"{amount:,.2f}"]
        assert (NAMES[code] in cells[0]) if code else (UNKNOWN in cells[0])
    assert doc.xpath(f'string(//table[@id="by-{by}"]/tfoot/tr/td[4])') == f"{TOTAL:,.2f}"
    # the findings follow, each party's together, the party first
    order = [" ".join(r.xpath("string(td[1])").split()) for r in doc.xpath('//table[@id="findings"]/tbody/tr')]
    assert len(order) == 4 and order == sorted(order, key=order.index)  # contiguous runs
    look_at(page, f"self-inspection-by-{by}", tmp_path)

    book_path = tmp_path / f"by-{by}.xlsx"
    _report(planted, "--by", by, "--format", "xlsx", "--out", str(book_path))
    book = load_workbook(book_path)
    zh = {"doctor": "医生", "department": "科室", "operator": "经办人"}[by]
    assert book.sheetnames == ["汇总 Summary", f"按{zh} By {by}", "明细 Findings"]
    sheet = book[f"按{zh} By {by}"]
    check_sheet(sheet, money=("涉及金额",), counts=("发现数", "已拦截"), summed=("发现数", "已拦截", "涉及金额"))
    codes = [c.value or "" for c in _column(sheet, zh)]
    amounts = [c.value for c in _column(sheet, "涉及金额")]
    assert dict(zip(codes, amounts, strict=True)) == {c: float(a) for c, (_, _, a) in expected.items()}
    assert all(c.number_format == "0.00%" and type(c.value) is float for c in _column(sheet, "占金额"))
    assert {c.value for c in _column(sheet, f"{zh}名称")} == {NAMES.get(c, UNKNOWN) for c in expected}
    summary = {row[0].value: row[2].value for row in book["汇总 Summary"].iter_rows(min_row=2)}
    assert summary["分组"] == f"按{zh} by {by}" and summary["涉及金额"] == f"{TOTAL:,.2f} 元 yuan"


def test_the_whole_report_names_who_answers_for_each_finding(make_adapter, tmp_path, state_url):
    planted = _plant(make_adapter, tmp_path, state_url)  # the ledger's HIS rows read back, sealed or not, on both
    data = json.loads(_report(planted, "--format", "json"))
    lines = {(f["rule"], f["feedetl_sn"]): f for f in data["findings"]}
    bed = lines[("bed-hanging", "20004")]
    assert (bed["doctor_code"], bed["doctor"], bed["dept_code"], bed["dept"], bed["operator_code"], bed["operator"]) \
        == ("YS010", "李二", "NK02", "呼吸内科", "HS000", "周雪")
    assert lines[("over-standard-price", "10003")]["operator_code"] == ""
    assert {g["key"]: g["findings"] for g in data["by_operator"]} == {"HS000": 2, "HS010": 1, "": 1}
    assert {g["key"]: g["name"] for g in data["by_doctor"]} == {"YS000": "王一", "YS010": "李二"}

    rows = list(csv.DictReader(io.StringIO(_report(planted, "--format", "csv"))))
    assert list(rows[0])[:5] == ["fee_time", "rule", "rule_description", "severity", "outcome"]
    assert {(r["feedetl_sn"], r["operator_code"], r["operator"]) for r in rows if r["rule"] == "duplicate-charge"} \
        == {("10002", "HS000", "周雪"), ("20003", "HS010", "郑琳")}

    book_path = tmp_path / "rules.xlsx"
    _report(planted, "--format", "xlsx", "--out", str(book_path))
    book = load_workbook(book_path)
    assert "按经办人 By operator" in book.sheetnames
    findings = book["明细 Findings"]
    check_sheet(findings, money=("金额",), dates=("费用时间",), summed=("金额",))
    operators = [c.value for c in _column(findings, "经办人名称")]
    assert Counter(operators) == {"周雪": 2, "郑琳": 1, None: 1}
    by_dept = book["按科室 By department"]
    assert [c.value for c in by_dept[1]][:2] == ["科室", "科室名称"]
    assert {c.value: by_dept.cell(c.row, 2).value for c in _column(by_dept, "科室")} == {
        "NK01": "心血管内科", "NK02": "呼吸内科"}


def test_a_fee_query_without_the_operator_still_reads_and_groups_as_not_supplied(make_adapter, tmp_path):
    url = f"sqlite:///{tmp_path / 'his.db'}"
    _planted_his(url)
    query = (FEE_LINES.replace("AS dscg_time,\n", "AS dscg_time\n")
             .replace("       f.operator_code      AS opter,\n       op.operator_name     AS opter_name\n", ""))
    assert "opter" not in query
    _, config = _checked(make_adapter, tmp_path, url, his_extra=f"fee_query = '''{query}'''")
    whole = json.loads(_report(config, "--format", "json"))
    assert len(whole["findings"]) == 4 and whole["by_operator"] == []
    assert {g["key"] for g in whole["by_doctor"]} == {"YS000", "YS010"}  # the doctors are still there
    grouped = json.loads(_report(config, "--by", "operator", "--format", "json"))
    assert [(g["code"], g["name"], g["findings"], Decimal(g["amount"])) for g in grouped["groups"]] == [
        ("", "", 4, TOTAL)]
    book_path = tmp_path / "rules.xlsx"
    _report(config, "--format", "xlsx", "--out", str(book_path))
    assert "按经办人 By operator" not in load_workbook(book_path).sheetnames


# -- reconciliation -------------------------------------------------------------------------------
def _his_settlements(url: str) -> dict[str, dict]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = {row.setl_id: dict(row._mapping) for row in conn.execute(
            select(his_schema.settlements.c.setl_id, his_schema.settlements.c.operator_code,
                   his_schema.settlements.c.medfee_sumamt, his_schema.inpatient_visits.c.doctor_code)
            .join(his_schema.inpatient_visits,
                  his_schema.inpatient_visits.c.visit_id == his_schema.settlements.c.visit_id))}
    engine.dispose()
    return rows


def test_reconciliation_differences_carry_and_group_by_who_settled(settled, centre, tmp_path):  # noqa: F811
    from adapter.reconcile import report

    his = _his_settlements(settled.settings.his.url)
    by_cashier: dict[str, list[str]] = {}
    for setl_id in sorted(centre.ledger.settlements):
        by_cashier.setdefault(his[setl_id]["operator_code"], []).append(setl_id)
    assert set(by_cashier) == {"SF001", "SF002"}
    lost, altered, other = by_cashier["SF001"][0], by_cashier["SF001"][1], by_cashier["SF002"][0]
    for setl_id in (lost, other):
        centre.lose_settlement(setl_id)
    old = centre.ledger.settlements[altered]["fund_pay_sumamt"]
    centre.alter_settlement(altered, fund_pay_sumamt=old + Decimal("12.30"))
    run = settled.reconciler.run(NOVEMBER)
    assert not run.balanced

    who = report.responsible_for(run, settled.settings.his.url, SETTLEMENTS)
    assert set(who) == {lost, altered, other}
    assert {s: w.operator.code for s, w in who.items()} == {lost: "SF001", altered: "SF001", other: "SF002"}
    assert all(w.doctor.code == his[s]["doctor_code"] and w.doctor.name and w.department.name for s, w in who.items())
    stake = {"SF001": Decimal(his[lost]["medfee_sumamt"]) + Decimal("12.30"),
             "SF002": Decimal(his[other]["medfee_sumamt"])}

    data = report.as_json(run, who, "operator")
    assert {g["code"]: (g["differences"], Decimal(g["amount"])) for g in data["groups"]} == {
        "SF001": (2, stake["SF001"]), "SF002": (1, stake["SF002"])}
    assert data["responsible"][lost]["operator"] == {"code": "SF001", "name": "朱敏"}

    text = report.as_csv(run, settled.edition.label, who, "operator")
    sections = text.split("\r\n\r\n")
    differences = list(csv.reader(io.StringIO(sections[1])))
    assert differences[0][-6:] == ["医生编码", "医生", "科室编码", "科室", "经办人编码", "经办人"]
    assert {row[2]: row[-2] for row in differences[1:]} == {lost: "SF001", altered: "SF001", other: "SF002"}
    grouped = list(csv.reader(io.StringIO(sections[2])))
    assert grouped[0][:4] == ["经办人编码", "经办人", "差异数", "涉及金额"]
    assert {row[0]: (int(row[2]), Decimal(row[3])) for row in grouped[1:]} == {
        "SF001": (2, stake["SF001"]), "SF002": (1, stake["SF002"])}

    book_path = tmp_path / "recon.xlsx"
    book_path.write_bytes(report.as_xlsx(run, settled.edition.label, None, "431199", who, "operator"))
    book = load_workbook(book_path)
    assert book.sheetnames == ["汇总", "每日", "差异明细", "按经办人 By operator", "说明 About"]
    sheet = book["按经办人 By operator"]
    check_sheet(sheet, money=("涉及金额",), counts=("差异数",), summed=("差异数", "涉及金额"))
    assert {c.value: sheet.cell(c.row, 4).value for c in _column(sheet, "经办人")} == {
        code: float(amount) for code, amount in stake.items()}
    diffs = book["差异明细"]
    assert {c.value: diffs.cell(c.row, [h.value for h in diffs[1]].index("经办人") + 1).value
            for c in _column(diffs, "结算ID")} == {lost: "SF001", altered: "SF001", other: "SF002"}

    page = tmp_path / "reconciliation-by-operator.html"
    page.write_text(report.as_html(run, settled.edition.label, None, "431199", who, "operator"), encoding="utf-8")
    doc = lxml_html.fromstring(page.read_text(encoding="utf-8"))
    rows = doc.xpath('//table[@id="differences-by-operator"]/tbody/tr')
    assert [r.xpath("string(td[1])").split()[0] for r in rows] == sorted(stake, key=lambda c: -stake[c])
    assert "朱敏" in rows[0].text_content() or "朱敏" in rows[1].text_content()
    look_at(page, "reconciliation-by-operator", tmp_path)

    # without the optional columns, the differences keep the layout they always had
    bare = report.responsible_for(run, settled.settings.his.url, SETTLEMENTS.replace(
        ",\n       v.doctor_code AS chfpdr_code, dr.doctor_name AS chfpdr_name, v.dept_code AS dscg_dept_codg,\n"
        "       d.dept_name AS dscg_dept_name, s.operator_code AS opter, op.operator_name AS opter_name", ""))
    assert bare == {}
    plain = load_workbook(io.BytesIO(report.as_xlsx(run, settled.edition.label, None, "431199", bare)))
    assert [c.value for c in plain["差异明细"][1]][-2:] == ["结算经办机构", "结算经办机构名称"]


def test_reconcile_by_operator_through_the_cli(settled, centre, tmp_path):  # noqa: F811
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=settled.settings.his.url, state_url=settled.settings.state.url,
                                  centre_url=centre.url, his_extra=UPLOAD), encoding="utf-8")
    lost = sorted(centre.ledger.settlements)[0]
    centre.lose_settlement(lost)
    page = tmp_path / "recon.html"
    result = CliRunner().invoke(main, ["reconcile", "--month", "2026-11", "--by", "doctor", "--json",
                                       f"--html={page}", "--config", str(config)])
    assert result.exit_code == 3, result.output
    data = json.loads(result.stdout)
    doctor = _his_settlements(settled.settings.his.url)[lost]["doctor_code"]
    assert data["by"] == "doctor" and [g["code"] for g in data["groups"]] == [doctor]
    assert data["responsible"][lost]["doctor"]["code"] == doctor
    assert 'id="differences-by-doctor"' in page.read_text(encoding="utf-8")


# -- the demo shows what the rules catch ----------------------------------------------------------
def test_the_demo_sample_breaks_every_built_in_rule_and_the_demo_reports_show_it(make_adapter, tmp_path):
    from adapter.rehearsal.demo import DEMO_REPORTS, DEMO_TRANSACTIONS, write_reports

    # the demo's sample, as `demo` builds it (its default visits and seed)
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=30, seed=7, with_rule_cases=True)
    plain = generate_sample_his(f"sqlite:///{tmp_path / 'plain.db'}", visits=30, seed=7)
    assert plain.rule_cases is None and his.rule_cases is not None
    assert (his.lines, his.visits, his.outpatient_visits, his.settlements) == (
        plain.lines, plain.visits, plain.outpatient_visits, plain.settlements)  # the cases come on top
    cases = his.rule_cases
    assert set(cases.expected) == {rule.id for rule in BUILTIN_POLICY_RULES}
    transactions = ", ".join(f'"{infno}"' for infno in DEMO_TRANSACTIONS)
    adapter = make_adapter(his_url=his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url="http://127.0.0.1:9", his_extra=f"transactions = [{transactions}]")
    import_sample_mapping(adapter, his)
    for _ in range(10):
        report = CycleReport()
        adapter.cycle.extract.run(report)
        adapter.cycle.check.run(report)
        if not report.extracted:
            break
    with adapter.store.begin() as conn:
        found = Counter(conn.execute(select(schema.finding.c.rule_id)).scalars())
        stopped = conn.execute(select(schema.record.c.park_reason).where(
            schema.record.c.park_kind == "invalid", schema.record.c.park_reason.like("[%"))).scalars().all()
    assert all(found[rule] >= count for rule, count in cases.expected.items()), found
    assert len([r for r in stopped if r.split("]")[0].strip("[") in found]) >= cases.blocked

    counts, written = write_reports(adapter, tmp_path)
    assert set(counts) >= {rule.id for rule in BUILTIN_POLICY_RULES} and all(counts.values())
    assert set(written) == set(DEMO_REPORTS) and all(path.stat().st_size > 1000 for path in written.values())
    page = written["self-inspection (HTML)"].read_text(encoding="utf-8")
    assert all(rule.id in page for rule in BUILTIN_POLICY_RULES)
    book = load_workbook(written["self-inspection (XLSX)"])
    assert {c.value for c in _column(book["按规则 By rule"], "规则")} == set(counts)
    assert "按经办人 By operator" in book.sheetnames
    assert "按医生" in written["self-inspection by doctor (HTML)"].read_text(encoding="utf-8")
    assert load_workbook(written["transmission compliance (XLSX)"]).sheetnames[0] == "按日"
