"""Extract (watermark), map (目录对照 import, unmapped), validate (rules), status."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select

from adapter.cli import main
from adapter.errors import MappingImportError
from adapter.flow.report import CycleReport
from adapter.mapping.importer import read_mapping_csv
from adapter.mapping.store import MappingRow, MappingStore
from adapter.monitor.status import queue_status
from adapter.records import FeeLine, MappedFeeLine, MappingKind
from adapter.rehearsal.sample_his import fee_lines
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.validate.fields import check_record, normalise
from adapter.validate.rules import BUILTIN_RULES
from tests.conftest import import_sample_mapping, region_profile
from tests.helpers import lines_by_status, run_until_done


def test_extract_resumes_from_watermark_without_skips_or_repeats(make_adapter, sample_his, centre, state_url):
    settings_kwargs = dict(
        his_url=sample_his.url, state_url=state_url, centre_url=centre.url, schedule="batch_size = 7"
    )
    adapter = make_adapter(**settings_kwargs)
    report = CycleReport()
    adapter.cycle.extract.run(report)
    assert report.extracted == sample_his.lines
    assert adapter.cycle.extract.watermark("2301") == str(sample_his.lines)
    # New HIS rows arrive; a fresh adapter on the same state store takes only those.
    engine = create_engine(sample_his.url)
    with engine.begin() as conn:
        conn.execute(insert(fee_lines), [
            {"visit_id": 1, "feedetl_sn": f"NEW{i}", "item_code": "ZL0001", "qty": "1",
             "unit_price": "45.00", "amount": "45.00", "charged_at": "2026-11-21 09:00:00",
             "dept_code": "NK01", "doctor_code": "YS000"} for i in range(3)
        ])
    engine.dispose()
    again = make_adapter(**settings_kwargs)
    second = CycleReport()
    again.cycle.extract.run(second)
    assert second.extracted == 3 and second.duplicates_skipped == 0
    with again.store.begin() as conn:
        keys = [row.business_key for row in conn.execute(select(schema.record.c.business_key))]
    assert len(keys) == len(set(keys)) == sample_his.lines + 3


def test_unmapped_lines_are_listed_and_recover_after_import(make_adapter, sample_his, centre, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path/'s.db'}", centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    missing = MappingStore(adapter.store).unmapped()
    assert {(m.kind, m.his_code) for m in missing} <= {(MappingKind.ITEM, "YP0999"), (MappingKind.ITEM, "ZL0999")}
    waiting = sum(m.waiting_lines for m in missing)
    assert waiting == sample_his.unmapped_lines > 0

    result = CliRunner().invoke(
        main, ["mapping", "unmapped", "--json", "--config", str(_write_config(tmp_path, adapter))]
    )
    assert result.exit_code == 0, result.output
    assert sum(item["waiting_lines"] for item in json.loads(result.stdout)) == waiting

    MappingStore(adapter.store).upsert([
        MappingRow(MappingKind.ITEM, "YP0999", "XJ01CAA040E001010101919", "新药"),
        MappingRow(MappingKind.ITEM, "ZL0999", "250101015000000", "检查"),
    ])
    run_until_done(adapter)
    assert MappingStore(adapter.store).unmapped() == []
    assert not [r for r in lines_by_status(adapter).get("parked", []) if r.park_kind == "unmapped"]
    assert len(centre.ledger.fee_lines) == len(lines_by_status(adapter)["sent"])


def _write_config(tmp_path, adapter):
    from tests.conftest import config_text

    path = tmp_path / "adapter.toml"
    path.write_text(config_text(his_url=adapter.settings.his.url, state_url=adapter.settings.state.url,
                                centre_url=adapter.settings.centre.base_url), encoding="utf-8")
    return path


def test_mapping_csv_gb18030_with_chinese_headers(tmp_path):
    path = tmp_path / "对照.csv"
    path.write_bytes("类别,医院编码,医保编码,医保名称\n项目,YP0001,XJ01CAA040E001010101919,阿莫西林\n医生,YS001,D431199000101,\n".encode("gb18030"))
    rows = read_mapping_csv(path)
    assert rows == [
        MappingRow(MappingKind.ITEM, "YP0001", "XJ01CAA040E001010101919", "阿莫西林"),
        MappingRow(MappingKind.DOCTOR, "YS001", "D431199000101", ""),
    ]


def test_mapping_csv_problems_name_line_and_column(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("kind,his_code,national_code\nitem,A1,X\nthing,A2,Y\nitem,,Z\nitem,A1,W\n", encoding="utf-8")
    with pytest.raises(MappingImportError) as info:
        read_mapping_csv(path)
    text = str(info.value)
    assert f"{path}:3: column kind: 'thing'" in text
    assert f"{path}:4: column his_code is empty" in text
    assert f"{path}:5: item A1 is mapped again (first on line 2)" in text
    with pytest.raises(MappingImportError, match="missing column"):
        (tmp_path / "h.csv").write_text("code,national\n", encoding="utf-8")
        read_mapping_csv(tmp_path / "h.csv")


def _mapped(**changes) -> MappedFeeLine:
    line = dict(
        source_key="1", mdtrt_id="431199000000001", psn_no="43123456789012345678", feedetl_sn="0000010001",
        fee_ocur_time=datetime(2026, 11, 1, 9, 0), his_item_code="YP0001", his_item_name="阿莫西林",
        cnt=Decimal("2"), pric=Decimal("0.86"), det_item_fee_sumamt=Decimal("1.72"), his_dept_code="NK01",
        his_dept_name="心血管内科", his_doctor_code="YS000", his_doctor_name="王伟",
    )
    mapped = dict(med_list_codg="XJ01CAA040E001010101919", bilg_dept_codg="A03.04", bilg_dr_codg="D431199000100")
    for key, value in changes.items():
        (mapped if key in mapped else line)[key] = value
    return MappedFeeLine(line=FeeLine(**line), **mapped)


def _problems(mapped: MappedFeeLine) -> dict[str, list[str]]:
    found = {rule.id: list(rule.check(mapped)) for rule in BUILTIN_RULES}
    return {k: v for k, v in found.items() if v}


@pytest.mark.parametrize(
    ("changes", "rule", "words"),
    [
        ({}, None, None),
        ({"det_item_fee_sumamt": Decimal("1.74")}, "amount-matches", "is not quantity 2 x price 0.86"),
        ({"det_item_fee_sumamt": Decimal("1.73")}, None, None),  # within 0.01
        ({"med_list_codg": "XJ01CAA040E00101010191"}, "code-formats", "wrong format (22 characters)"),
        ({"med_list_codg": "C0201010010000100001"}, None, None),
        ({"med_list_codg": "001102000000100-110200002.10"}, None, None),
        ({"bilg_dr_codg": "YS000"}, "code-formats", "not a national 医保医师 code"),
        ({"cnt": Decimal("-2"), "det_item_fee_sumamt": Decimal("-1.72")}, "refund-reference",
         "does not name the original"),
        ({"cnt": Decimal("-2"), "det_item_fee_sumamt": Decimal("-1.72"), "init_feedetl_sn": "0000010000"}, None, None),
    ],
)
def test_builtin_rules(changes, rule, words):
    problems = _problems(_mapped(**changes))
    if rule is None:
        assert problems == {}
    else:
        assert list(problems) == [rule]
        assert words in problems[rule][0]


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({}, None),
        ({"psn_no": ""}, "psn_no is required but empty"),
        ({"feedetl_sn": "x" * 31}, "feedetl_sn is 31 characters, at most 30 allowed"),
        ({"cnt": "1.00001", "det_item_fee_sumamt": "0.86"}, "cnt 1.00001 has more than 4 decimal places"),
        ({"cnt": "2.0000000"}, None),  # extra zeros are not extra decimals
    ],
)
def test_2301_field_table(changes, words):
    # Presence, lengths and decimals of a fee line are the 2301 field table of the national
    # plugin (they were rules over the line before there was one flow).
    spec = region_profile("nhsa").transactions["2301"]
    row = {
        "mdtrt_id": "431199000000001", "psn_no": "43123456789012345678", "feedetl_sn": "0000010001",
        "fee_ocur_time": "2026-11-01 09:00:00", "his_item_code": "YP0001", "cnt": "2", "pric": "0.86",
        "det_item_fee_sumamt": "1.72", "his_dept_code": "NK01", "his_dept_name": "心血管内科",
        "his_doctor_code": "YS000", "his_doctor_name": "王伟", "med_type": "21", **changes,
    }
    record = normalise(spec, row)
    record["med_list_codg"] = "XJ01CAA040E001010101919"
    problems = check_record(spec, record)
    if words is None:
        assert problems == []
    else:
        assert len(problems) == 1 and words in problems[0]


def test_status_reports_states_parked_reasons_and_watermark(make_adapter, sample_his, centre, sqlite_state_url):
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    state = queue_status(adapter.store)
    assert state.lines[RecordStatus.SENT.value] == len(centre.ledger.fee_lines)
    assert state.messages["acked"] > 0 and state.messages["pending"] == 0
    assert state.oldest_unsent_age_seconds is None
    assert state.last_successful_upload is not None
    assert state.watermarks == {"his.2301": str(sample_his.lines)}
    kinds = {item["kind"] for item in state.parked_reasons}
    assert kinds == {ParkKind.UNMAPPED.value, ParkKind.INVALID.value, ParkKind.MALFORMED.value}
    assert sum(item["lines"] for item in state.parked_reasons) == state.lines["parked"]


def test_refund_waits_while_its_original_is_parked(make_adapter, sample_his, centre, sqlite_state_url):
    """Both ways the original can be parked: in the same batch as the refund, or earlier."""
    engine = create_engine(sample_his.url)
    with engine.begin() as conn:
        refund = conn.execute(
            select(fee_lines).where(fee_lines.c.init_feedetl_sn.is_not(None)).order_by(fee_lines.c.line_id)
        ).first()
        # Spoil the refunded original (amount no longer quantity x price): it is parked.
        conn.execute(
            fee_lines.update()
            .where(fee_lines.c.feedetl_sn == refund.init_feedetl_sn, fee_lines.c.visit_id == refund.visit_id)
            .values(amount="99999.99")
        )
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)

    by_sn = {row.feedetl_sn: row for row in lines_by_status(adapter)[RecordStatus.PARKED.value]}
    held = by_sn[refund.feedetl_sn]
    assert held.park_kind == ParkKind.INVALID.value
    assert held.park_reason == f"refund of line {refund.init_feedetl_sn}, which is parked; resolve that line first"

    # A second refund of the same original arrives later: the original is parked in the ledger.
    with engine.begin() as conn:
        conn.execute(insert(fee_lines).values(
            visit_id=refund.visit_id, feedetl_sn="9000000001", init_feedetl_sn=refund.init_feedetl_sn,
            order_no=refund.order_no, item_code=refund.item_code, qty=refund.qty,
            unit_price=refund.unit_price, amount=refund.amount, charged_at=refund.charged_at,
            dept_code=refund.dept_code, doctor_code=refund.doctor_code,
        ))
    engine.dispose()
    run_until_done(adapter)
    late = {row.feedetl_sn: row for row in lines_by_status(adapter)[RecordStatus.PARKED.value]}["9000000001"]
    assert late.park_reason == held.park_reason
    assert all(key[1] != "9000000001" for key in centre.ledger.fee_lines)


def test_backoff_after_thousands_of_failures_is_the_cap_not_an_overflow():
    from adapter.spool.retry import backoff_seconds

    assert backoff_seconds(5000, base=2.0, cap=600.0, rng=lambda: 1.0) == 600.0
    assert backoff_seconds(1, base=2.0, cap=600.0, rng=lambda: 0.0) == 1.0
