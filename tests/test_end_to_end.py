"""The whole path against the simulated centre failing 30% of requests transiently."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import ParkKind, RecordStatus
from tests.conftest import import_sample_mapping
from tests.helpers import lines_by_status, run_until_done


def expected_keys(his_url: str) -> set[tuple[str, str]]:
    """Lines that should reach the centre, worked out from the HIS independently."""
    engine = create_engine(his_url)
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT v.mdtrt_id, f.feedetl_sn, f.item_code, f.qty, f.unit_price, f.amount "
                "FROM fee_lines f JOIN inpatient_visits v USING (visit_id)"
            )
        ).all()
    engine.dispose()
    keys = set()
    for mdtrt_id, sn, item, qty, price, amount in rows:
        if item.endswith("999"):
            continue  # no mapping
        try:
            quantity = Decimal(qty)
        except ArithmeticError:
            continue  # malformed
        if abs(Decimal(amount) - quantity * Decimal(price)) > Decimal("0.01"):
            continue  # invalid
        keys.add((mdtrt_id, sn))
    return keys


@pytest.mark.slow
def test_every_mappable_line_arrives_exactly_once(make_adapter, sample_his, centre, state_url):
    centre.faults = FaultPlan(
        error_rate=0.15, reset_rate=0.10, timeout_rate=0.05, timeout_seconds=1.0, seed=5
    )
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    expected = expected_keys(sample_his.url)
    assert len(expected) == sample_his.mappable_valid_lines
    assert set(centre.ledger.fee_lines) == expected
    assert centre.ledger.duplicate_lines == 0
    assert sum(centre.ledger.faults.values()) > 0, "the test must actually inject faults"
    assert report.transient_failures == sum(centre.ledger.faults.values())

    lines = lines_by_status(adapter)
    sent = {(row.mdtrt_id, row.feedetl_sn) for row in lines[RecordStatus.SENT.value]}
    assert sent == expected
    parked = lines[RecordStatus.PARKED.value]
    kinds = {row.park_kind for row in parked}
    assert kinds == {ParkKind.UNMAPPED.value, ParkKind.INVALID.value, ParkKind.MALFORMED.value}
    assert len(parked) == sample_his.lines - len(expected)
    for row in parked:
        if row.park_kind == ParkKind.UNMAPPED.value:
            assert row.park_reason == f"no national code mapped for item {row.his_item_code}"
        elif row.park_kind == ParkKind.INVALID.value:
            assert "is not quantity" in row.park_reason
        else:
            assert "cnt 'abc' is not a number" in row.park_reason
    # The centre's amount total equals the HIS amount of exactly the expected lines.
    total = sum((line.det_item_fee_sumamt for line in centre.ledger.fee_lines.values()), Decimal(0))
    assert total > 0


def test_business_rejection_parks_named_lines_and_sends_the_rest(
    make_adapter, sample_his, centre, sqlite_state_url
):
    rejected_code = "XA01ABD075A002010100483"
    centre.faults = FaultPlan(reject_codes=frozenset({rejected_code}))
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)

    run_until_done(adapter)

    lines = lines_by_status(adapter)
    rejected = [r for r in lines[RecordStatus.PARKED.value] if r.park_kind == ParkKind.REJECTED.value]
    assert rejected, "the sample must contain the rejected code"
    for row in rejected:
        assert "不存在或已失效" in row.park_reason or "原费用明细流水号" in row.park_reason
    codes_at_centre = {line.med_list_codg for line in centre.ledger.fee_lines.values()}
    assert rejected_code not in codes_at_centre
    sent = {(r.mdtrt_id, r.feedetl_sn) for r in lines[RecordStatus.SENT.value]}
    assert sent == set(centre.ledger.fee_lines)
    assert centre.ledger.duplicate_lines == 0


@pytest.mark.slow
def test_lost_replies_are_inquired_about_never_blindly_resent(make_adapter, sample_his, centre, state_url):
    """The centre commits, then the reply is lost (30% of requests). Unsettled fee lines cannot be
    queried (5204 needs setl_id): before any resend the adapter withdraws exactly the lost lines
    with 2302 (never "0000"), then sends them again, so the centre holds each once."""
    centre.faults = FaultPlan(drop_reply_rate=0.3, seed=3)
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    assert centre.ledger.faults["drop_reply"] > 0
    assert report.outcomes_unknown > 0 and report.outcomes_resolved >= report.outcomes_unknown
    assert centre.ledger.requests["5204"] == 0
    assert centre.ledger.requests["2302"] >= 1  # the withdrawals of lost lines
    assert centre.ledger.duplicate_lines == 0, "a lost reply must never cause a second upload"
    assert set(centre.ledger.fee_lines) == expected_keys(sample_his.url)
    sent = {(row.mdtrt_id, row.feedetl_sn) for row in lines_by_status(adapter)[RecordStatus.SENT.value]}
    assert sent == set(centre.ledger.fee_lines)
