"""Rules of the published tables carried as data (issue 12): "0000" in a cancel deletes every
unsettled detail of a visit, so no HIS value of zeros is ever sent as a key; feedetl_sn is 1 to
15 digits and not 0; an empty number is 0 where the region's edition says so; infver as the
region's documents write it."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, insert, select

from adapter import jsonio
from adapter.plugin.api import FieldSpec, TransactionSpec, f
from adapter.rehearsal.sample_his import add_policy_cases, fee_cancels, fee_lines, generate_sample_his, outpatient_fees
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.validate.fields import check_record, fill_empty_numbers, normalise
from tests.conftest import import_sample_mapping, region_profile
from tests.helpers import run_until_done

NHSA = region_profile("nhsa").transactions


def _capture(adapter: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Every request body the adapter posts, parsed (amounts as Decimal), in order."""
    sent: list[dict[str, Any]] = []
    post = adapter.transport.post

    def capture(url: str, body: bytes, headers: Any) -> Any:
        sent.append({"text": body.decode("utf-8"), **jsonio.loads(body.decode("utf-8"))})
        return post(url, body, headers)

    monkeypatch.setattr(adapter.transport, "post", capture)
    return sent


def _records(adapter: Any, infno: str) -> list[Any]:
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record).where(schema.record.c.infno == infno)).all()


# -- 1. "0000" deletes everything: never sent as a key ------------------------------------------

def test_a_2302_cancel_of_0000_is_parked_and_never_reaches_the_centre(
        make_adapter, centre, sample_his, tmp_path, monkeypatch):
    engine = create_engine(sample_his.url)
    with engine.begin() as conn:
        visit, psn_no = next(conn.execute(select(fee_cancels.c.visit_no, fee_cancels.c.psn_no)
                                          .where(fee_cancels.c.infno == "2302")))
        conn.execute(insert(fee_cancels), [
            {"infno": "2302", "visit_no": visit, "psn_no": psn_no, "feedetl_sn": sn, "chrg_bchno": None,
             "cancelled_at": "2026-12-31 23:00:00"} for sn in ("0000", "00")
        ])
    engine.dispose()
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra='transactions = ["2301", "2302"]')
    import_sample_mapping(adapter, sample_his)
    sent = _capture(adapter, monkeypatch)

    run_until_done(adapter)

    zeros = [r for r in _records(adapter, "2302") if re.fullmatch(r"0+", r.business_key.split("|")[1])]
    assert len(zeros) == 2
    for record in zeros:
        assert (record.status, record.park_kind) == (RecordStatus.PARKED.value, ParkKind.INVALID.value)
        assert "feedetl_sn" in record.park_reason and "is reserved" in record.park_reason
        assert "传入“0000”时删除全部" in record.park_reason
        assert record.payload is None
    cancelled = [entry["feedetl_sn"] for body in sent if body["infno"] == "2302" for entry in body["input"]["data"]]
    assert cancelled and not [sn for sn in cancelled if re.fullmatch(r"0+", str(sn))]
    # the legitimate cancels went through; the visit keeps every other line it was sent
    assert centre.ledger.cancelled_lines["2302"] == len(cancelled) and not centre.ledger.rejected["2302"]
    uploaded = {r.business_key.split("|")[1] for r in _records(adapter, "2301")
                if r.status == RecordStatus.SENT.value and r.business_key.startswith(f"{visit}|")}
    held = {sn for (mdtrt_id, sn) in centre.ledger.fee_lines if mdtrt_id == visit}
    assert held and held == uploaded - set(cancelled)


def test_a_2205_cancel_of_0000_is_refused_by_the_field_check():
    problems = check_record(NHSA["2205"], normalise(NHSA["2205"], {"mdtrt_id": "MZ1", "chrg_bchno": "0000",
                                                                  "psn_no": "P1"}))
    assert len(problems) == 1
    assert problems[0].startswith("chrg_bchno '0000' is reserved: 2205 reads “0000” as delete every unsettled")
    assert check_record(NHSA["2205"], normalise(NHSA["2205"], {"mdtrt_id": "MZ1", "chrg_bchno": "MZ101",
                                                              "psn_no": "P1"})) == []


def _fee_line(**changes: Any) -> dict[str, Any]:
    return {
        "mdtrt_id": "431199000000001", "psn_no": "43123456789012345678", "feedetl_sn": "0000010001",
        "fee_ocur_time": "2026-11-01 09:00:00", "his_item_code": "YP0001", "cnt": "2", "pric": "0.86",
        "det_item_fee_sumamt": "1.72", "his_dept_code": "NK01", "his_dept_name": "心血管内科",
        "his_doctor_code": "YS000", "his_doctor_name": "王伟", "med_type": "21", **changes,
    }


def _problems_2301(**changes: Any) -> list[str]:
    spec = NHSA["2301"]
    record = normalise(spec, _fee_line(**changes))
    record["med_list_codg"] = "XJ01CAA040E001010101919"
    return check_record(spec, record)


def _batch(**changes: Any) -> dict[str, Any]:
    line = {
        "feedetl_sn": "1", "mdtrt_id": "MZ1", "psn_no": "P1", "chrg_bchno": "B1", "dise_codg": "",
        "rx_circ_flag": "0", "fee_ocur_time": "2026-11-01 09:00:00", "med_list_codg": "X1",
        "medins_list_codg": "YP0001", "det_item_fee_sumamt": "1.72", "cnt": "2", "pric": "0.86",
        "bilg_dept_codg": "A03", "bilg_dept_name": "内科", "bilg_dr_codg": "D1", "bilg_dr_name": "王伟",
        "hosp_appr_flag": "1", **changes,
    }
    return {"mdtrt_id": "MZ1", "chrg_bchno": line["chrg_bchno"], "feedetail": [line]}


def test_a_line_or_batch_numbered_0000_is_not_uploaded():
    # It could never be cancelled on its own: 2302 / 2205 would read its number as "delete all".
    problems = _problems_2301(feedetl_sn="0000")
    assert len(problems) == 1
    assert problems[0].startswith("feedetl_sn '0000' is reserved: a line numbered so could never be cancelled")
    batch = check_record(NHSA["2204"], normalise(NHSA["2204"], _batch(chrg_bchno="0000")))
    assert len(batch) == 1
    assert batch[0].startswith("feedetail[1].chrg_bchno '0000' is reserved: a batch numbered so could never")


# -- 2. feedetl_sn: 1 to 15 digits, not 0 ------------------------------------------------------

_FORM = "must be 1 to 15 digits, not 0 (只能传数字，不能传0，不能大于15位)"


@pytest.mark.parametrize(("feedetl_sn", "words"), [
    ("0000010001", None), ("1", None), ("9" * 15, None),
    ("A0001", _FORM), ("12-34", _FORM), (" 1 2", _FORM), ("1" * 16, _FORM),
    ("0", "is reserved"), ("00", "is reserved"),
    ("1" * 31, "is 31 characters, at most 30 allowed"),  # one problem per field: the length
])
def test_feedetl_sn_must_be_1_to_15_digits_and_not_0(feedetl_sn: str, words: str | None):
    problems = _problems_2301(feedetl_sn=feedetl_sn)
    if words is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith("feedetl_sn ") and words in problems[0]
    # 2204 lines follow the same rule (there 0 is refused by the form: 2205 cancels by batch)
    batch = check_record(NHSA["2204"], normalise(NHSA["2204"], _batch(feedetl_sn=feedetl_sn)))
    assert len(batch) == (0 if words is None else 1)
    if words == "is reserved":
        assert batch[0].endswith(_FORM)


def test_references_to_a_line_keep_the_form_it_was_uploaded_in():
    # init_feedetl_sn and 2302 feedetl_sn are 字符型 in the edition: they name a line the
    # centre holds, so only the reserved zeros are refused there.
    assert _problems_2301(feedetl_sn="0000010002", init_feedetl_sn="A0001", cnt="-2",
                          det_item_fee_sumamt="-1.72") == []
    cancel = normalise(NHSA["2302"], {"feedetl_sn": "A0001", "mdtrt_id": "M1", "psn_no": "P1"})
    assert check_record(NHSA["2302"], cancel) == []


def test_a_field_pattern_is_a_full_match_with_its_words_and_a_bad_one_fails_early():
    item = f("code", pattern=r"[A-Z]\d{2}", pattern_text="a letter and two digits")
    spec = TransactionSpec(infno="T", description="", node="data", fields=(item,), key=("code",), group_field="code")
    assert check_record(spec, {"code": "A12"}) == []
    assert check_record(spec, {"code": "A123"}) == ["code 'A123' must be a letter and two digits"]
    with pytest.raises(re.error):
        FieldSpec("code", pattern="[0-9")


def test_the_sample_his_numbers_its_lines_as_the_rule_asks(tmp_path):
    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=12, lines_per_visit=8, seed=7)
    add_policy_cases(his.url)
    rule = next(item for item in NHSA["2301"].fields if item.name == "feedetl_sn")
    engine = create_engine(his.url)
    with engine.connect() as conn:
        inpatient = conn.execute(
            select(fee_lines.c.visit_id, fee_lines.c.feedetl_sn, fee_lines.c.init_feedetl_sn)).all()
        outpatient = conn.execute(select(outpatient_fees.c.feedetl_sn)).scalars().all()
    engine.dispose()
    numbers = [row.feedetl_sn for row in inpatient] + list(outpatient)
    wrong = [sn for sn in numbers if not re.fullmatch(rule.pattern, sn) or re.fullmatch(rule.reserved, sn)]
    assert numbers and wrong == []
    # every refund names a line of its own stay
    own = {(row.visit_id, row.feedetl_sn) for row in inpatient}
    refunds = [(row.visit_id, row.init_feedetl_sn) for row in inpatient if row.init_feedetl_sn]
    assert refunds and set(refunds) <= own


# -- 3. empty numbers ---------------------------------------------------------------------------

def test_an_optional_number_left_empty_is_0_with_its_decimals_only_where_the_region_says_so():
    assert region_profile("hunan").empty_number == "zero"
    assert region_profile("nhsa").empty_number == "null"
    spec = NHSA["2204"]
    for empty in (None, "", "  "):
        zero = normalise(spec, _batch(prd_days=empty))
        fill_empty_numbers(spec, zero, "zero")
        assert zero["feedetail"][0]["prd_days"] == Decimal("0.00")
        assert '"prd_days":0.00' in jsonio.dumps(spec.input_for(zero))
        assert check_record(spec, zero) == []
        null = normalise(spec, _batch(prd_days=empty))
        fill_empty_numbers(spec, null, "null")
        assert null["feedetail"][0]["prd_days"] is None
        assert '"prd_days":null' in jsonio.dumps(spec.input_for(null))
    # a required number left empty is not made up: the record is parked
    missing = normalise(spec, _batch(cnt=""))
    fill_empty_numbers(spec, missing, "zero")
    assert "feedetail[1].cnt is required but empty" in check_record(spec, missing)


def test_a_hunan_message_carries_0_for_an_empty_number_and_the_editions_infver(
        make_adapter, make_centre, sample_his, tmp_path, monkeypatch):
    centre = make_centre("hunan")
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, region="hunan",
                           his_extra='transactions = ["2201", "2203", "2204"]')
    import_sample_mapping(adapter, sample_his)
    sent = _capture(adapter, monkeypatch)

    run_until_done(adapter)

    assert sent and {body["infver"] for body in sent} == {"1.0.0"}
    entries = [entry for body in sent if body["infno"] == "2204" for entry in body["input"]["feedetail"]]
    # the sample's service lines have no days of supply
    empty = [entry for entry in entries if entry["prd_days"] == 0]
    assert empty and all(entry["prd_days"] == Decimal("0.00") for entry in empty)
    assert all(entry["prd_days"] is not None for entry in entries)
    assert any('"prd_days":0.00' in body["text"] for body in sent if body["infno"] == "2204")
    # ... and the hunan centre took them
    assert not centre.ledger.rejected["2204"]
    held = {sn for (_mdtrt_id, sn) in centre.ledger.fee_lines}
    assert {entry["feedetl_sn"] for entry in empty} <= held


def test_each_region_sends_the_infver_its_documents_write():
    assert {name: region_profile(name).infver for name in ("nhsa", "guangdong", "hunan", "jiangxi", "zhejiang")} == {
        "nhsa": "V1.0", "guangdong": "V1.0", "hunan": "1.0.0", "jiangxi": "V1.0", "zhejiang": "1.0"}
