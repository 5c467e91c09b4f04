"""Reconciliation end to end: settlements reach the simulated centre (4101A), 3201 per
insurance type x clearing type, and where it does not balance the 3202 drill-down names
exactly the settlements and amounts the centre lost, altered or added."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapter.centre.faults import FaultPlan
from adapter.reconcile.local import Period
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done

NOVEMBER = Period.month(2026, 11)
UPLOAD = 'transactions = ["2401", "2301", "2402", "4101A"]'


@pytest.fixture
def settled(make_adapter, centre, sample_his, tmp_path):  # noqa: ANN001, ANN201
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
