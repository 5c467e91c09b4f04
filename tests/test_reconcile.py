"""Reconciliation end to end: settlements reach the simulated centre (4101), 3201 per
clearing agency x insurance type x clearing type, and where it does not balance the 3202
drill-down names exactly the settlements and amounts the centre lost, altered or added."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapter.reconcile.local import Period
from adapter.rehearsal.centre.faults import FaultPlan
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done

NOVEMBER = Period.month(2026, 11)


def settled_at_the_counter(centre, sample_his) -> None:
    """The sample's settlements were made with the centre at the counter (2304, the HIS's): the
    settlement lists the adapter uploads are theirs, and they enter the centre's ledger with
    their lists (this edition's 4101 no longer carries the settlement's money)."""
    from adapter.rehearsal.sample_his import counter_settlements

    centre.ledger.settled_at_counter(counter_settlements(sample_his.url))
UPLOAD = 'transactions = ["2401", "2301", "2402", "4101"]'


@pytest.fixture
def settled(make_adapter, centre, sample_his, tmp_path):
    settled_at_the_counter(centre, sample_his)
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=UPLOAD)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    assert len(centre.ledger.settlements) == sample_his.settlements > 2
    return adapter


def test_balanced_month(settled, centre):
    run = settled.reconciler.run(NOVEMBER)
    assert run.balanced and run.pairs and all(p.stmt_rslt == "0" for p in run.pairs)
    assert sum(int(p.local["count"]) for p in run.pairs) == len(centre.ledger.settlements)
    assert centre.ledger.requests["3202"] == 0  # no drill-down when everything balances


def test_each_kind_of_difference_is_named(settled, centre):
    ids = sorted(centre.ledger.settlements)
    lost, altered, flipped = ids[0], ids[1], ids[2]
    centre.lose_settlement(lost)
    old = centre.ledger.settlements[altered]["fund_pay_sumamt"]
    centre.alter_settlement(altered, fund_pay_sumamt=old + Decimal("12.30"))
    centre.alter_settlement(flipped, refd_setl_flag="1")
    extra = dict(centre.ledger.settlements[ids[3]], setl_id="S-CENTRE-ONLY", msgid="H43111100255202611010000000001")
    centre.add_settlement(extra)
    centre.faults = FaultPlan(result_encoding="gbk")  # some regions write result.txt in GBK

    run = settled.reconciler.run(NOVEMBER)

    assert not run.balanced
    found = {(d.setl_id, d.kind, d.field_name) for p in run.pairs for d in p.differences}
    assert found == {
        (lost, "only_hospital", ""), (altered, "amount", "fund_pay_sumamt"), (flipped, "refund_flag", "refd_setl_flag"),
        ("S-CENTRE-ONLY", "only_centre", ""),
    }
    amount = next(d for p in run.pairs for d in p.differences if d.kind == "amount")
    assert Decimal(amount.delta) == Decimal("12.30")
    # each difference points at the message that carried the settlement list
    assert all(d.our_msgid.startswith("H") for p in run.pairs for d in p.differences if d.setl_id != "S-CENTRE-ONLY")
    only_centre = next(d for p in run.pairs for d in p.differences if d.kind == "only_centre")
    assert only_centre.centre_msgid == "H43111100255202611010000000001"
    assert {p.stmt_rslt for p in run.pairs} - {"0"}  # 3201 said which pairs differ


def test_reports_and_history_through_the_cli(settled, centre, tmp_path):
    from click.testing import CliRunner
    from openpyxl import load_workbook

    from adapter.cli import main
    from adapter.cli.common import EXIT_SOMETHING_FAILED
    from tests.conftest import config_text

    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=settled.settings.his.url, state_url=settled.settings.state.url,
                                  centre_url=centre.url, his_extra=UPLOAD), encoding="utf-8")
    runner = CliRunner()
    balanced = runner.invoke(main, ["reconcile", "--month", "2026-11", "--config", str(config)])
    assert balanced.exit_code == 0, balanced.output
    assert "reconciliation 2026-11-01 – 2026-11-30" in balanced.output and "balanced" in balanced.output

    lost = sorted(centre.ledger.settlements)[0]
    centre.lose_settlement(lost)
    files = {kind: tmp_path / f"recon.{kind}" for kind in ("csv", "xlsx", "html")}
    result = runner.invoke(main, ["reconcile", "--from", "2026-11-01", "--to", "2026-11-30", "--config", str(config),
                                  *(f"--{k}={p}" for k, p in files.items())])
    assert result.exit_code == EXIT_SOMETHING_FAILED, result.output
    assert f"{lost}" in result.output and "仅医院有" in result.output

    csv_text = files["csv"].read_text(encoding="utf-8-sig")
    assert "医疗费总额" in csv_text and lost in csv_text
    book = load_workbook(files["xlsx"])
    assert book.sheetnames == ["汇总", "每日", "差异明细", "说明 About"]
    assert [c.value for c in book["差异明细"][1]][:5] == ["险种", "险种名称", "清算类别", "清算类别名称", "结算ID"]
    assert book["差异明细"].max_row == 3  # header, the one difference, totals
    assert book["差异明细"]["E2"].value == lost and book["差异明细"]["A3"].value == "合计 Total"
    about = {row[0].value: row[2].value for row in book["说明 About"].iter_rows(min_row=2)}
    assert about["医院"] == "测试医院" and about["医院编码"] == "H43111100255"
    page = files["html"].read_text(encoding="utf-8")
    assert "<svg" in page and "<script" not in page and lost in page and "测试医院" in page
    # codes carry their labels from the region's edition: a column of their own in CSV and XLSX, beside the
    # code in HTML
    assert all("职工基本医疗保险" in text and "住院" in text for text in (csv_text, page))
    assert book["差异明细"]["B2"].value == "职工基本医疗保险" and book["差异明细"]["D2"].value == "住院"

    history = runner.invoke(main, ["reconcile", "history", "--config", str(config)])
    lines = [line for line in history.output.splitlines() if line.strip()]
    assert len(lines) == 2 and "NOT balanced" in lines[1] and "1 difference(s)" in lines[1]
    wrong = runner.invoke(main, ["reconcile", "--date", "2026-11-01", "--month", "2026-11", "--config", str(config)])
    assert wrong.exit_code == 2 and "exactly one of" in wrong.output


def test_daemon_reconciles_yesterday_and_the_month_once_and_alerts_on_a_mismatch(
    make_adapter, centre, sample_his, tmp_path
):
    from datetime import datetime

    from sqlalchemy import func, select

    from adapter.daemon import Daemon
    from adapter.plugin import hookimpl
    from adapter.state import schema

    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=UPLOAD + '\n[reconcile]\ndaily_at = "02:30"\n')
    import_sample_mapping(adapter, sample_his)
    settled_at_the_counter(centre, sample_his)
    run_until_done(adapter)
    alerts = []

    class Pager:
        @hookimpl
        def adapter_alert(self, kind, message, details):
            alerts.append((kind, message, details))

    adapter.host.register(Pager(), name="pager", version="1", origin="test")
    centre.lose_settlement(sorted(centre.ledger.settlements)[0])
    daemon = Daemon(adapter)

    daemon.reconcile_if_due(now=datetime(2026, 12, 1, 2, 0))  # before daily_at: nothing
    daemon.reconcile_if_due(now=datetime(2026, 12, 1, 3, 0))
    daemon.reconcile_if_due(now=datetime(2026, 12, 1, 4, 0))  # already done: not again

    with adapter.store.begin() as conn:
        kinds = dict(
            conn.execute(select(schema.recon_run.c.kind, func.count()).group_by(schema.recon_run.c.kind)).all()
        )
    assert kinds == {"day": 1, "month": 1}
    assert [a[0] for a in alerts] == ["reconcile_mismatch"]
    assert "2026-11-01 – 2026-11-30 does not balance: 1 difference(s)" in alerts[0][1]


def test_result_codes_and_duplicates_are_read_as_the_regions_write_them():
    from adapter.reconcile.run import classify, normalise_result
    from adapter.records import Settlement

    assert [normalise_result(v) for v in ("0", 0, "000000", " 1 ", "3")] == ["0", "0", "0", "1", "3"]
    twice = Settlement("S1", "M1", "P1", "310", "21", "2026-11-02 10:00:00", Decimal("100"), Decimal("70"),
                       Decimal("10"), Decimal("20"))
    row = {"psn_no": "P2", "mdtrt_id": "M2", "setl_id": "S2", "msgid": "", "stmt_rslt": "1", "refd_setl_flag": "0",
           "memo": "", "medfee_sumamt": "5", "fund_pay_sumamt": "5", "acct_pay": "0"}
    found = classify([twice, twice], [row, row], {})
    assert [(d.setl_id, d.kind) for d in found] == [("S1", "duplicate"), ("S2", "duplicate")]
    assert "2 times in the HIS" in found[0].detail and "2 times at the centre" in found[1].detail


def _his_settlements(sample_his) -> dict[str, dict]:
    from sqlalchemy import create_engine, select

    from adapter.rehearsal.sample_his import settlements

    engine = create_engine(sample_his.url)
    with engine.connect() as conn:
        rows = {r.setl_id: dict(r._mapping) for r in conn.execute(select(settlements))}
    engine.dispose()
    return rows


def _statements(centre, infno: str) -> list[dict]:
    return [data for sent, data in centre.ledger.statements if sent == infno]


def test_other_pooling_area_balances_under_its_own_clearing_agency(settled, centre, sample_his):
    from adapter.rehearsal.sample_his import OTHER_AREA_OPTINS

    his = _his_settlements(sample_his)
    elsewhere = sorted(s for s, row in his.items() if row["setl_optins"] == OTHER_AREA_OPTINS)
    assert elsewhere and len(elsewhere) == sample_his.other_area_settlements < len(his)
    assert all(row["setl_optins"] is None for s, row in his.items() if s not in elsewhere)  # the configured default

    run = settled.reconciler.run(NOVEMBER)

    assert run.balanced
    assert {p.setl_optins for p in run.pairs} == {"431199", OTHER_AREA_OPTINS}
    assert sum(int(p.local["count"]) for p in run.pairs if p.setl_optins == OTHER_AREA_OPTINS) == len(elsewhere)
    # one 3201 per clearing agency x insurance type x clearing type, each naming its agency
    sent = [(d["setl_optins"], d["insutype"], d["clr_type"]) for d in _statements(centre, "3201")]
    assert len(sent) == len(set(sent)) == len(run.pairs) == centre.ledger.requests["3201"]
    assert set(sent) == {(p.setl_optins, p.insutype, p.clr_type) for p in run.pairs}

    centre.lose_settlement(elsewhere[0])  # only the other area's agency stops balancing
    lost = settled.reconciler.run(NOVEMBER)
    assert {p.setl_optins for p in lost.pairs if not p.balanced} == {OTHER_AREA_OPTINS}
    assert [d["setl_optins"] for d in _statements(centre, "3202")] == [OTHER_AREA_OPTINS]
    assert [(d.setl_id, d.kind) for p in lost.pairs for d in p.differences] == [(elsewhere[0], "only_hospital")]


def test_3201_and_3202_send_fixmedins_refd_setl_flag_and_the_published_formats(settled, centre, sample_his):
    from sqlalchemy import create_engine, update

    from adapter.rehearsal.centre.checks import Refusal
    from adapter.rehearsal.centre.ledger import CentreLedger
    from adapter.rehearsal.centre.reconcile import details, totals
    from adapter.rehearsal.sample_his import settlements

    refund = sorted(centre.ledger.settlements)[-1]
    engine = create_engine(sample_his.url)
    with engine.begin() as conn:  # the HIS marks one settlement a refund settlement
        conn.execute(update(settlements).where(settlements.c.setl_id == refund).values(refd_setl_flag="1"))
    engine.dispose()
    centre.alter_settlement(refund, refd_setl_flag="1")
    centre.lose_settlement(sorted(centre.ledger.settlements)[0])  # so that 3202 is called too

    settled.reconciler.run(NOVEMBER)

    row = _his_settlements(sample_his)[refund]
    group = (row["setl_optins"] or "431199", row["insutype"], row["clr_type"])
    assert len(_statements(centre, "3201")) > 1
    for data in _statements(centre, "3201"):
        assert data["fixmedins_refd_setl_flag"] == ("1" if (data["setl_optins"], data["insutype"],
                                                            data["clr_type"]) == group else "0")
    assert _statements(centre, "3202") and all(d["fixmedins_refd_setl_flag"] in ("0", "1")
                                               for d in _statements(centre, "3202"))
    for data in _statements(centre, "3201") + _statements(centre, "3202"):
        amounts = [data[k] for k in ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "cash_payamt") if k in data]
        assert amounts and all(Decimal(str(a)).as_tuple().exponent == -2 for a in amounts)  # 数值型 16,2
        assert isinstance(data["fixmedins_setl_cnt"], int)  # 数值型 10
        assert data["stmt_begndate"] == "2026-11-01" and data["stmt_enddate"] == "2026-11-30"

    # the centre refuses a 3201 or 3202 without the flag, or with a value outside 6.83, naming the field
    document = {"mdtrtarea_admvs": "431199", "input": {"data": dict(_statements(centre, "3201")[0])}}
    del document["input"]["data"]["fixmedins_refd_setl_flag"]
    with pytest.raises(Refusal, match=r"对总账\[fixmedins_refd_setl_flag\]\(定点医药机构退费结算标志\)不能为空"):
        totals(document, CentreLedger(), FaultPlan())
    document["input"]["data"]["fixmedins_refd_setl_flag"] = "2"
    with pytest.raises(Refusal, match=r"\[fixmedins_refd_setl_flag\].*取值\[2\]"):
        totals(document, CentreLedger(), FaultPlan())
    drill = {"mdtrtarea_admvs": "431199", "input": {"data": dict(_statements(centre, "3202")[0])}}
    del drill["input"]["data"]["fixmedins_refd_setl_flag"]
    with pytest.raises(Refusal, match=r"对明细账\[fixmedins_refd_setl_flag\]"):
        details(drill, CentreLedger(), FaultPlan())


def test_3202_msgid_is_the_settlements_not_the_adapters_4101(settled, centre, sample_his):
    his = _his_settlements(sample_his)
    assert all(len(row["msgid"]) == 30 for row in his.values())
    for setl_id, row in his.items():  # what the centre holds: the msgid of each settlement transaction
        centre.alter_settlement(setl_id, msgid=row["msgid"])
    local = sorted(s for s, row in his.items() if row["setl_optins"] is None)
    lost, altered, twice = local[0], local[1], local[2]
    centre.lose_settlement(lost)
    centre.alter_settlement(altered, medfee_sumamt=centre.ledger.settlements[altered]["medfee_sumamt"] + 1)
    # the centre holds two details for one settlement: result.txt names them by msgid only
    centre.add_settlement(dict(centre.ledger.settlements[twice], setl_id="S-SECOND-DETAIL"))

    run = settled.reconciler.run(NOVEMBER)

    found = {(d.setl_id, d.kind): d for p in run.pairs for d in p.differences}
    assert set(found) == {(lost, "only_hospital"), (altered, "amount"), (twice, "duplicate")}
    amount = found[(altered, "amount")]
    assert amount.centre_msgid == amount.setl_msgid == his[altered]["msgid"]
    assert amount.our_msgid.startswith("H") and amount.our_msgid != his[altered]["msgid"]  # the 4101, as well
    only_hospital = found[(lost, "only_hospital")]
    assert only_hospital.setl_msgid == his[lost]["msgid"] and only_hospital.centre_msgid == ""
    duplicate = found[(twice, "duplicate")]
    assert duplicate.centre_msgid == his[twice]["msgid"] and f"msgid {his[twice]['msgid']}" in duplicate.detail
    assert duplicate.mdtrt_id == centre.ledger.settlements[twice]["mdtrt_id"]  # from the HIS: the centre left it empty


def test_each_difference_is_listed_once_under_the_pair_it_belongs_to(make_adapter, centre, tmp_path):
    """One of each kind of difference; the one only the centre has is of the other insurance
    type than the rest of its clearing type's: each appears once, in the run and in every
    report, under its own pair."""
    from lxml import html as lxml_html
    from openpyxl import load_workbook

    from adapter.reconcile import report
    from adapter.rehearsal.sample_his import generate_sample_his
    from adapter.reports.layout import Hospital

    sample_his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=24, lines_per_visit=4, seed=11,
                                     unmapped_share=0, invalid_share=0, malformed_share=0)
    settled_at_the_counter(centre, sample_his)
    settled = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=UPLOAD)
    import_sample_mapping(settled, sample_his)
    run_until_done(settled)
    his = _his_settlements(sample_his)
    for setl_id, row in his.items():  # the centre holds each settlement's msgid
        centre.alter_settlement(setl_id, msgid=row["msgid"])
    local = sorted(s for s, row in his.items() if row["setl_optins"] is None)
    employees = [s for s in local if his[s]["insutype"] == "310"]
    residents = [s for s in local if his[s]["insutype"] == "390"]
    assert len(employees) >= 4 and residents and {his[s]["clr_type"] for s in local} == {"21"}
    lost, altered, flipped, twice = employees[:4]
    centre.lose_settlement(lost)
    centre.alter_settlement(altered, medfee_sumamt=centre.ledger.settlements[altered]["medfee_sumamt"] + 1)
    centre.alter_settlement(flipped, refd_setl_flag="1")
    centre.add_settlement(dict(centre.ledger.settlements[twice], setl_id="S-SECOND-DETAIL"))  # named by msgid only
    # a settlement only the centre has, of a resident's stay: 390, where the HIS has one fewer
    centre.add_settlement(dict(centre.ledger.settlements[residents[0]], setl_id="S-CENTRE-ONLY",
                               msgid="H43111100255202611010000000009"))

    run = settled.reconciler.run(NOVEMBER)

    placed = [(p.insutype, d.setl_id, d.kind) for p in run.pairs for d in p.differences]
    assert sorted(placed) == sorted([
        ("310", lost, "only_hospital"), ("310", altered, "amount"), ("310", flipped, "refund_flag"),
        ("310", twice, "duplicate"), ("390", "S-CENTRE-ONLY", "only_centre"),
    ])
    only_centre = next(d for p in run.pairs for d in p.differences if d.kind == "only_centre")
    assert only_centre.insutype == "390" and "names no insurance type" not in only_centre.detail
    assert {p.insutype: p.balanced for p in run.pairs if p.setl_optins == "431199"} == {"310": False, "390": False}
    # ... and once in every report
    csv_rows = report.as_csv(run, settled.edition.label).split("\r\n\r\n", 1)[1].strip().splitlines()
    assert len(csv_rows) == 1 + 5
    assert [line.split(",")[:3] for line in csv_rows if "S-CENTRE-ONLY" in line] == [["390", "21", "S-CENTRE-ONLY"]]
    book_path = tmp_path / "recon.xlsx"
    book_path.write_bytes(report.as_xlsx(run, settled.edition.label))
    sheet = load_workbook(book_path)["差异明细"]
    assert sheet.max_row == 1 + 5 + 1  # header, the differences, totals
    assert sorted(sheet.cell(row, 5).value for row in range(2, 7)) == sorted(d for _, d, _ in placed)
    page = lxml_html.fromstring(report.as_html(run, settled.edition.label, Hospital("H43111100255", "测试医院")))
    rows = page.xpath('//table[@id="differences"]/tbody/tr')
    assert len(rows) == 5
    assert [r.xpath("string(td[1])").split()[0] for r in rows if "S-CENTRE-ONLY" in r.text_content()] == ["390"]
    counts = {r.xpath("string(td[2])").split()[0]: int(r.xpath("string(td[10])")) for r in
              page.xpath('//table[@id="pairs"]/tbody/tr') if "431199" in r.xpath("string(td[1])")}
    assert counts == {"310": 4, "390": 1}


def test_a_difference_the_centre_names_no_type_for_goes_once_to_the_unexplained_pair():
    from adapter.reconcile.run import Difference, PairResult, place
    from adapter.records import Settlement

    def pair(insutype: str, result: str) -> PairResult:
        return PairResult("431199", insutype, "21", {}, result, "")

    mine = [Settlement("S1", "M1", "P1", "310", "21", "2026-11-02 10:00:00", Decimal("100"), Decimal("70"),
                       Decimal("10"), Decimal("20"))]
    amount = Difference("S1", "amount", "medfee_sumamt differs", "310")
    stranger = Difference("", "only_centre", "only at the centre", mdtrt_id="M9", psn_no="P9")
    pairs = [pair("310", "1"), pair("390", "1"), pair("391", "0")]
    assert place(pairs, [amount, stranger], mine) == []
    assert [(p.insutype, [d.kind for d in p.differences]) for p in pairs] == [
        ("310", ["amount"]), ("390", ["only_centre"]), ("391", [])]
    # the same person's settlement names it
    known = Difference("", "only_centre", "only at the centre", psn_no="P1")
    pairs = [pair("310", "1"), pair("390", "1")]
    place(pairs, [known], mine)
    assert [len(p.differences) for p in pairs] == [1, 0] and known.insutype == "310"
    # nothing tells: the first pair that does not balance, once, saying so
    unknown = Difference("", "only_centre", "only at the centre")
    pairs = [pair("310", "1"), pair("390", "1")]
    place(pairs, [unknown], [])
    assert [len(p.differences) for p in pairs] == [1, 0] and "listed under the first of 310, 390" in unknown.detail
    # an insurance type the HIS has no group of: one group of its own per type
    extra = [Difference("S8", "only_centre", "x", "320"), Difference("S9", "only_centre", "y", "320")]
    pairs = [pair("310", "1")]
    added = place(pairs, extra, [])
    assert [(p.insutype, len(p.differences)) for p in added] == [("320", 2)]
