"""Messages in flight at once (``[schedule] in_flight``): several visits' messages go together,
each visit's own still one after another, and nothing is lost or sent twice, on SQLite and
PostgreSQL, also when the centre fails and loses replies."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import select

from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping, set_faults
from tests.helpers import run_until_done

INPATIENT = 'transactions = ["2401", "2301", "2302", "2402"]'


def _records(adapter):
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record.c.infno, schema.record.c.status, schema.record.c.park_kind,
                                   schema.record.c.park_reason)).all()


@pytest.mark.parametrize("faulty", [False, True], ids=["clean", "faults"])
def test_messages_of_several_visits_go_at_once_in_order_within_each(make_adapter, centre, sample_his, state_url,
                                                                    faulty):
    set_faults(centre, latency_ms=30, require_admission=True, seed=3,
               **({"error_rate": 0.1, "timeout_rate": 0.03, "timeout_seconds": 1.0, "drop_reply_rate": 0.1}
                  if faulty else {}))
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           his_extra=INPATIENT, schedule="in_flight = 4")
    import_sample_mapping(adapter, sample_his)

    run_until_done(adapter, limit_seconds=240)

    assert centre.ledger.most_at_once > 1  # really in flight together
    rows = _records(adapter)
    by_state = Counter((row.infno, row.status) for row in rows)
    assert by_state[("2401", RecordStatus.SENT.value)] > 0
    # require_admission: a detail or discharge sent before its visit's admission is refused,
    # so not one refusal means every visit's messages arrived in order
    assert not [row for row in rows if row.park_kind == "rejected" and "就诊ID" in (row.park_reason or "")]
    assert centre.ledger.duplicate_lines == 0
    totals = centre.ledger.totals()
    sent_lines = by_state[("2301", RecordStatus.SENT.value)]
    # each line the centre holds once: every line sent, less those the HIS cancelled (2302)
    assert totals["fee_lines"] + by_state[("2302", RecordStatus.SENT.value)] == sent_lines
