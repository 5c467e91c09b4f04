"""Records requeued out of a message keep their place in the visit's order.

A 2301 message rejected for one named line sends its other lines again in a new message. That
new message must not go out behind the visit's later messages: a refund of one of those lines
would reach the centre before the line it refunds and be refused ("原费用明细流水号…不存在").
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, insert, select

from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.sample_his import fee_lines
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done


def _spooled_lines(adapter: Any) -> list[Any]:
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record).where(schema.record.c.infno == "2301",
                                                        schema.record.c.message_id.is_not(None))).all()


def _line(row: Any) -> dict[str, Any]:
    return dict(json.loads(row.payload)["feedetail"][0])


def _add_refund(his_url: str, original_sn: str) -> str:
    """Add to the HIS a refund of line ``original_sn``, charged after every other line of its
    stay. Returns the refund's feedetl_sn."""
    engine = create_engine(his_url)
    with engine.begin() as conn:
        original = conn.execute(select(fee_lines).where(fee_lines.c.feedetl_sn == original_sn)).one()._asdict()
        last = conn.execute(select(fee_lines.c.charged_at).where(fee_lines.c.visit_id == original["visit_id"])
                            .order_by(fee_lines.c.charged_at.desc()).limit(1)).scalar_one()
        refund = {**original, "feedetl_sn": original_sn[:-2] + "99", "init_feedetl_sn": original_sn,
                  "qty": str(-Decimal(original["qty"])), "amount": str(-Decimal(original["amount"])),
                  "charged_at": last}
        del refund["line_id"]
        conn.execute(insert(fee_lines), [refund])
    engine.dispose()
    return str(refund["feedetl_sn"])


def test_a_refund_waits_for_the_requeued_line_it_refunds(make_adapter, sample_his, centre, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra='transactions = ["2301"]')
    import_sample_mapping(adapter, sample_his)
    # Cycles against a centre that refuses everything: every line is spooled, five a message,
    # then a refund of the first one, which goes in a later message.
    centre.faults = FaultPlan(error_rate=1.0)
    adapter.cycle.run()
    first = min(_spooled_lines(adapter), key=lambda row: (row.message_id, row.id))
    original_sn = first.business_key.split("|")[1]
    refund_sn = _add_refund(sample_his.url, original_sn)
    adapter.cycle.run()
    lines = {row.business_key.split("|")[1]: row for row in _spooled_lines(adapter)}
    original, refund = lines[original_sn], lines[refund_sn]
    assert original.message_id < refund.message_id
    code = _line(original)["med_list_codg"]
    # The centre rejects another line of the original's message (of another code).
    blamed = next(row for row in lines.values()
                  if row.message_id == original.message_id and _line(row)["med_list_codg"] != code)
    centre.faults = FaultPlan(reject_codes=frozenset({_line(blamed)["med_list_codg"]}))

    run_until_done(adapter)

    with adapter.store.begin() as conn:
        records = {row.business_key: row for row in conn.execute(
            select(schema.record).where(schema.record.c.infno == "2301"))}
        status = conn.execute(select(schema.message.c.status).where(
            schema.message.c.id == original.message_id)).scalar_one()
    assert status == MessageStatus.PARKED.value, "the rejection must have happened"
    assert records[blamed.business_key].status == RecordStatus.PARKED.value
    for row in (original, refund):
        assert (records[row.business_key].status, records[row.business_key].park_reason) == (
            RecordStatus.SENT.value, None), row.business_key
    visit = original.business_key.split("|")[0]
    assert {(visit, original_sn), (visit, refund_sn)} <= set(centre.ledger.fee_lines)
