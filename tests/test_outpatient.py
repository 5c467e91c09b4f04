"""Outpatient (2201 registration, 2203 visit information, 2204 charge batches, 2205 batch
cancel), inpatient cancels (2302) and settlement lists (4101) end to end against the
simulated centre, with replies lost after commit; and the batch checks of 2204."""

from __future__ import annotations

from decimal import Decimal

import pytest
from adapter_nhsa.transactions import OUTPATIENT_FEES, SETTLEMENT_LIST
from sqlalchemy import select

from adapter.spool.states import RecordStatus
from adapter.state import schema
from adapter.validate.fields import check_record, normalise
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done

OUTPATIENT = ["2201", "2203", "2204", "2205"]
INPATIENT = ["2401", "2301", "2302", "2402", "4101"]


def _his(infnos: list[str]) -> str:
    return "transactions = [" + ", ".join(f'"{i}"' for i in infnos) + "]"


def _records(adapter):
    """The ledger's records other than 2301 fee lines."""
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record).where(schema.record.c.infno != "2301")).all()


@pytest.mark.slow
def test_outpatient_visits_batches_and_cancels_arrive_once(make_adapter, make_centre, sample_his, state_url):
    # 2201 is inquired about with 5201; a lost 2204 batch is withdrawn with 2205 and sent again;
    # 2205 and 2203 are sent again (a repeated withdrawal finds nothing left; a repeat of the
    # visit information replaces it).
    centre = make_centre("nhsa", drop_reply_rate=0.25, seed=5)
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           his_extra=_his(OUTPATIENT))
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    ledger = centre.ledger
    assert ledger.faults["drop_reply"] > 0 and report.outcomes_unknown > 0
    assert ledger.requests["5201"] > 0 and ledger.requests["5204"] == 0
    assert len(ledger.registrations) == sample_his.outpatient_visits
    assert ledger.duplicates["2201"] == ledger.duplicates["2204"] == 0
    assert set(ledger.visit_info) == set(ledger.registrations.values())
    batches = {(line.mdtrt_id, line.chrg_bchno) for line in ledger.fee_lines.values()}
    assert len(batches) == sample_his.outpatient_batches - sample_his.cancels["2205"]
    assert ledger.cancelled_lines["2205"] > 0
    # Every line is held under the centre's mdtrt_id with a national item code.
    assert {line.mdtrt_id for line in ledger.fee_lines.values()} <= set(ledger.registrations.values())
    assert all(not line.med_list_codg.startswith(("YP", "ZL")) for line in ledger.fee_lines.values())
    assert {r.status for r in _records(adapter)} == {RecordStatus.SENT.value}


@pytest.mark.slow
def test_inpatient_cancels_and_settlement_lists(make_adapter, make_centre, sample_his, sqlite_state_url):
    centre = make_centre("nhsa", drop_reply_rate=0.2, seed=3, require_admission=True)
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                           his_extra=_his(INPATIENT))
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    ledger = centre.ledger
    assert report.outcomes_unknown > 0
    records = {(r.infno, r.status) for r in _records(adapter)}
    cancels = [r for r in _records(adapter) if r.infno == "2302"]
    assert len(cancels) == sample_his.cancels["2302"] > 0
    sent_cancels = [r for r in cancels if r.status == RecordStatus.SENT.value]
    # A cancel of a line the centre never took (parked in the adapter) is refused and parked
    # with the centre's words; every other cancel removed its line (withdrawals of lost lines
    # count in cancelled_lines too, so the lines themselves are checked).
    assert sent_cancels
    held = {key[1] for key in ledger.fee_lines}
    for row in cancels:
        cancelled = row.business_key.split("|", 1)[1]
        assert cancelled not in held
        if row.status == RecordStatus.PARKED.value:
            assert "不存在或已撤销" in row.park_reason
    assert len(ledger.settlement_lists) == sample_his.settlements
    assert ledger.duplicates["4101"] == 0
    held = next(iter(ledger.settlement_lists.values()))
    assert held["setlinfo"]["mdtrt_id"] in ledger.visits  # the centre's id, bound at send time
    assert held["payinfo"] and held["iteminfo"] and held["diseinfo"]
    assert ("4101", RecordStatus.SENT.value) in records


def _batch(**line_changes):
    line = {
        "feedetl_sn": "1", "mdtrt_id": "MZ1", "psn_no": "P1", "chrg_bchno": "B1", "dise_codg": "",
        "rx_circ_flag": "0", "fee_ocur_time": "2026-11-01 09:00:00", "med_list_codg": "X",
        "medins_list_codg": "YP0001", "det_item_fee_sumamt": "1.72", "cnt": "2", "pric": "0.86",
        "bilg_dept_codg": "A03", "bilg_dept_name": "内科", "bilg_dr_codg": "D000000000001",
        "bilg_dr_name": "王", "hosp_appr_flag": "1",
    }
    second = {**line, "feedetl_sn": "2", **line_changes}
    return {"mdtrt_id": "MZ1", "chrg_bchno": "B1", "feedetail": [line, second]}


def test_charge_batch_checks():
    assert check_record(OUTPATIENT_FEES, normalise(OUTPATIENT_FEES, _batch())) == []
    assert normalise(OUTPATIENT_FEES, _batch())["feedetail"][0]["pric"] == Decimal("0.860000")
    assert check_record(OUTPATIENT_FEES, normalise(OUTPATIENT_FEES, _batch(feedetl_sn="1"))) == [
        "feedetail: feedetl_sn 1 occurs more than once"
    ]
    assert check_record(OUTPATIENT_FEES, normalise(OUTPATIENT_FEES, _batch(dise_codg="M01"))) == [
        "feedetail: dise_codg must be the same in every entry, found , M01"
    ]
    assert check_record(OUTPATIENT_FEES, normalise(OUTPATIENT_FEES, _batch(det_item_fee_sumamt="2.00"))) == [
        "feedetail[2].det_item_fee_sumamt 2.00 is not cnt 2.0000 x pric 0.860000 = 1.72"
    ]
    # The batch's own fields identify it and are not sent: the input is feedetail[] alone.
    assert list(OUTPATIENT_FEES.input_for(normalise(OUTPATIENT_FEES, _batch()))) == ["feedetail"]


def test_settlement_list_requires_payments_and_a_main_diagnosis():
    problems = check_record(SETTLEMENT_LIST, normalise(SETTLEMENT_LIST, {"setl_id": "S1", "mdtrt_id": "Z1"}))
    assert "payinfo: at least one entry is required" in problems
    assert "diseinfo: at least one entry is required" in problems
    assert "bill_code is required but empty" in problems  # (psn_name is not a field of this edition's 4101)


def test_cancel_of_a_line_that_never_left_withdraws_both(make_adapter, centre, sample_his, sqlite_state_url):
    # No mapping yet: every fee line is parked as unmapped, so the HIS's 2302 cancels name
    # lines the centre never saw. They are closed here, and the lines they cancel stay out
    # even after the mapping arrives.
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                           his_extra=_his(["2301", "2302"]))
    report = run_until_done(adapter)

    assert report.records_withdrawn == sample_his.cancels["2302"] > 0
    cancels = [r for r in _records(adapter) if r.infno == "2302"]
    assert {r.status for r in cancels} == {RecordStatus.WITHDRAWN.value}
    assert all("was never uploaded" in r.park_reason for r in cancels)
    with adapter.store.begin() as conn:
        withdrawn = [key.split("|")[1] for key in conn.execute(select(schema.record.c.business_key).where(
            schema.record.c.infno == "2301", schema.record.c.status == RecordStatus.WITHDRAWN.value)).scalars()]
    assert sorted(withdrawn) == sorted(r.business_key.split("|")[1] for r in cancels)

    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)

    held = {sn for (_, sn) in centre.ledger.fee_lines}
    assert held and not held & set(withdrawn)
    assert centre.ledger.requests["2302"] == 0
