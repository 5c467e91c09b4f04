"""Record transactions end to end: 2401 admission (the centre's mdtrt_id bound into later
messages), 2301 fee details, 2402 discharge, 3501-3506 inventory; and field checks."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from adapter_nhsa.transactions import ADMISSION, TRANSACTIONS
from sqlalchemy import select

from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from adapter.validate.fields import check_record, normalise
from tests.conftest import import_sample_mapping
from tests.helpers import fee_lines, run_until_done

ALL = ["2401", "2301", "2402", "3501", "3502", "3503", "3504", "3505", "3506", "3507"]
HIS_ALL = "transactions = [" + ", ".join(f'"{i}"' for i in ALL) + "]"


def _records(adapter):
    """The ledger's records other than 2301 fee lines."""
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record).where(schema.record.c.infno != "2301")).all()


@pytest.mark.slow
def test_admission_fees_discharge_and_inventory_arrive_once(make_adapter, make_centre, sample_his, state_url):
    # Replies are lost after commit for 25% of requests: 2401 is resolved by 2601 reversal,
    # 2301 by withdrawing the lost lines (2302); the centre refuses fees of stays it never admitted.
    centre = make_centre("nhsa", drop_reply_rate=0.25, error_rate=0.1, seed=8, require_admission=True)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=state_url, centre_url=centre.url, his_extra=HIS_ALL
    )
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    ledger = centre.ledger
    assert ledger.faults["drop_reply"] > 0 and report.outcomes_unknown > 0
    # Every stay registered exactly once, each with the centre's own mdtrt_id.
    assert len(ledger.visits) == sample_his.visits
    # Admissions are reversed (2601), discharges (2405) and inventory moves (3507) withdrawn
    # before they are sent again: never twice.
    assert ledger.duplicates["2401"] == ledger.duplicates["2402"] == 0
    assert sum(n for infno, n in ledger.duplicates.items() if infno.startswith("35")) == 0
    assert sum(v["discharged"] for v in ledger.visits.values()) == sample_his.discharges
    with adapter.store.begin() as conn:
        registry = dict(conn.execute(select(schema.visit.c.his_key, schema.visit.c.mdtrt_id)).all())
    assert set(registry.values()) == set(ledger.visits)
    # Fee lines reached the centre under the centre's mdtrt_id, never twice.
    assert ledger.fee_lines and {key[0] for key in ledger.fee_lines} <= set(ledger.visits)
    assert ledger.duplicate_lines == 0
    sent = {
        (registry[row.mdtrt_id], row.feedetl_sn)
        for row in _fee_lines(adapter) if row.status == RecordStatus.SENT.value
    }
    assert sent == set(ledger.fee_lines)
    # Inventory: each movement once, per transaction (a lost one was withdrawn with 3507 and
    # sent again: the centre files those 3507s too, so only the HIS's own are counted there).
    stored = Counter(key[0] for key in ledger.inventory)
    expected = Counter(sample_his.stock_moves)
    assert {k: n for k, n in stored.items() if k != "3507"} == {k: n for k, n in expected.items() if k != "3507"}
    assert stored["3507"] >= expected["3507"]
    records = _records(adapter)
    assert {r.status for r in records} == {RecordStatus.SENT.value}


def _fee_lines(adapter):
    return fee_lines(adapter)


def test_lost_admission_reply_is_reversed_before_it_is_sent_again(make_adapter, make_centre, sample_his,
                                                                 tmp_path):
    centre = make_centre("nhsa", drop_reply_rate=0.5, seed=1, require_admission=True)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        his_extra='transactions = ["2401"]',
    )
    import_sample_mapping(adapter, sample_his)

    run_until_done(adapter)

    assert centre.ledger.requests["2601"] > 0
    assert centre.ledger.reversals > 0, "a committed admission whose reply was lost is reversed"
    assert len(centre.ledger.visits) == sample_his.visits
    assert centre.ledger.duplicates["2401"] == 0


def test_unmapped_stock_item_is_parked_then_sent_after_mapping(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        his_extra='transactions = ["3503"]',
    )
    run_until_done(adapter)  # no mapping imported yet

    parked = _records(adapter)
    assert parked and all(r.park_kind == ParkKind.UNMAPPED.value for r in parked)
    assert all(r.park_reason.startswith("no national code mapped for item") for r in parked)
    assert centre.ledger.inventory == {}

    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    assert {r.status for r in _records(adapter)} == {RecordStatus.SENT.value}
    assert len(centre.ledger.inventory) == sample_his.stock_moves["3503"]


def test_field_checks_name_the_field_and_the_rule():
    row = {
        "psn_no": "43000000000000000001", "insutype": "310", "begntime": "2026/11/01 08:00",
        "mdtrt_cert_type": "02", "mdtrt_cert_no": "x" * 51, "med_type": "21", "ipt_no": "Z1",
        "atddr_no": "D431199000100", "chfpdr_name": "王医生", "adm_dept_codg": "A03.04",
        "adm_dept_name": "心内科", "dscg_maindiag_code": "I10.x00", "dscg_maindiag_name": "高血压",
        "geso_val": "1.5", "diseinfo": [],
    }
    problems = check_record(ADMISSION, normalise(ADMISSION, row))
    assert "begntime '2026/11/01 08:00' is not a datetime (%Y-%m-%d %H:%M:%S)" in problems
    assert "mdtrt_cert_no is 51 characters, at most 50 allowed" in problems
    assert "geso_val 1.5 has more than 0 decimal places" in problems
    assert "diseinfo: at least one entry is required" in problems
    assert normalise(ADMISSION, row)["geso_val"] == Decimal("1.5")
    assert set(TRANSACTIONS) >= {"2201", "2203", "2204", "2205", "2302", "2401", "2402", "4101",
                                 "3501", "3502", "3503", "3504", "3505", "3506", "3507"}
