"""Policy rules in the cycle: stays that break them, from a real HIS database, are stopped
(block) or sent and reported (warn) with findings stored; the report and the rule list."""

from __future__ import annotations

import json
from collections import Counter

from click.testing import CliRunner
from sqlalchemy import select

from adapter.cli import main
from adapter.rehearsal.sample_his import add_policy_cases, generate_sample_his
from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import config_text, import_sample_mapping
from tests.helpers import lines_by_status, run_until_done


def _findings(adapter):
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.finding)).all()


def test_rule_breaking_stays_are_stopped_or_reported(make_adapter, centre, tmp_path):
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=4, lines_per_visit=6, seed=3,
                              unmapped_share=0, invalid_share=0, malformed_share=0)
    cases = add_policy_cases(his.url)
    adapter = make_adapter(his_url=his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
                           his_extra='transactions = ["2201", "2203", "2204", "2301"]')
    import_sample_mapping(adapter, his)

    run_until_done(adapter)

    findings = _findings(adapter)
    by_rule = Counter(f.rule_id for f in findings if f.rule_id in cases.expected)
    assert by_rule == Counter(cases.expected)
    stopped = [r for r in lines_by_status(adapter)[RecordStatus.PARKED.value] if r.park_kind == "invalid"]
    assert len(stopped) == cases.blocked
    reasons = " ".join(r.park_reason for r in stopped)
    assert "[duplicate-charge]" in reasons and "[over-standard-price]" in reasons and "[excluded-cause]" in reasons
    held = {(line.mdtrt_id, line.feedetl_sn) for line in centre.ledger.fee_lines.values()}
    assert not {r.feedetl_sn for r in stopped} & {sn for _, sn in held}
    # warn findings went to the centre and are reported
    warned = [f for f in findings if f.rule_id in ("dispensing-days", "split-hospitalisation")
              and not f.stay_key.startswith("MZ")]
    assert {f.outcome for f in warned} == {"reported"}
    assert {f.feedetl_sn for f in warned} <= {sn for _, sn in held}
    dispensing = next(f for f in warned if f.rule_id == "dispensing-days" and f.stay_key.startswith("431199"))
    assert "dispensed for 20 days; at most 15 for discharge medication" in dispensing.message
    assert json.loads(dispensing.evidence)["limit"] == 15
    # Outpatient charge batches are checked too (2204): warned, and sent.
    outpatient = [f for f in findings if f.stay_key.startswith("MZ")]
    assert Counter(f.rule_id for f in outpatient) == Counter(
        {"dispensing-days": 6, "drugs-per-prescription": 1, "same-day-outpatient-visits": 1})
    assert all("at most 7 for acute illness J18.900" in f.message for f in outpatient if f.rule_id == "dispensing-days")
    assert len(centre.ledger.registrations) == his.outpatient_visits + 2


def test_rules_list_shows_regional_numbers(tmp_path, centre, sample_his):
    def listed(region: str) -> dict:
        config = tmp_path / f"{region}.toml"
        config.write_text(config_text(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 's.db'}",
                                      centre_url=centre.url, region=region), encoding="utf-8")
        result = CliRunner().invoke(main, ["rules", "list", "--json", "--config", str(config)])
        assert result.exit_code == 0, result.output
        return {rule["id"]: rule for rule in json.loads(result.stdout)}

    national, zhejiang, hunan = listed("nhsa"), listed("zhejiang"), listed("hunan")
    assert national["dispensing-days"]["params"]["acute_days"] == 7
    assert zhejiang["dispensing-days"]["params"]["acute_days"] == 3
    assert zhejiang["dispensing-days"]["params"]["general_days"] == 7
    assert hunan["dispensing-days"]["params"]["chronic_days"] == 7
    assert "000 §5-四" in zhejiang["dispensing-days"]["origin"]
    assert national["duplicate-charge"]["severity"] == "block" and national["duplicate-charge"]["enabled"]


def test_self_inspection_report_in_every_format(tmp_path, make_centre):
    from decimal import Decimal

    from openpyxl import load_workbook

    from adapter.app import build_adapter
    from adapter.config import load_settings

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
    base = ["rules", "report", "--from", "2026-11-01", "--to", "2026-11-30", "--config", str(config)]

    as_json = runner.invoke(main, [*base, "--format", "json", "--annual-fund-payments", "1000000"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.stdout)
    rules = {g["key"]: g for g in data["by_rule"]}
    assert rules["duplicate-charge"]["blocked"] == 1 and Decimal(rules["duplicate-charge"]["amount"]) == Decimal("0.86")
    assert rules["excluded-cause"]["findings"] == 2
    assert Decimal(data["amount"]) == sum(Decimal(g["amount"]) for g in data["by_rule"])
    indicators = {i["name"].split(" (")[0]: i for i in data["indicators"]}
    assert indicators["costs outside the insurance scope / total"]["ok"] is True  # the sample is at 3%
    assert Decimal(indicators["patients' own share / total"]["value"]) == Decimal("0.3000")
    exposure = data["exposure"]
    assert exposure["label"].startswith("ESTIMATE ONLY") and exposure["band"].startswith("0–1×")

    csv_out = runner.invoke(main, [*base, "--format", "csv"])
    assert csv_out.stdout.splitlines()[0].startswith("fee_time,rule,rule_description,severity,outcome")
    assert len(csv_out.stdout.splitlines()) == 1 + len(data["findings"])

    page = tmp_path / "report.html"
    assert runner.invoke(main, [*base, "--format", "html", "--out", str(page)]).exit_code == 0
    text = page.read_text(encoding="utf-8")
    assert '<h2>按科室 <span class="en">By department</span></h2>' in text and "<script" not in text
    assert "duplicate-charge" in text

    book_path = tmp_path / "report.xlsx"
    assert runner.invoke(main, [*base, "--format", "xlsx", "--out", str(book_path)]).exit_code == 0
    book = load_workbook(book_path)
    assert {"汇总 Summary", "按规则 By rule", "按科室 By department", "按医生 By doctor", "指标 Indicators",
            "明细 Findings"} <= set(book.sheetnames)
    assert book["明细 Findings"].max_row == 1 + len(data["findings"]) + 1  # header, findings, totals


def test_check_config_names_a_wrong_rule_parameter(tmp_path, centre, sample_his):
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 's.db'}",
                                  centre_url=centre.url) + '\n[rules."dispensing-days"]\nacute = 3\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1
    assert "rule dispensing-days has no parameter 'acute'" in result.output
