"""Nothing stays stuck: leases that ran out are reclaimed while running, and after an outage the
first probe comes within two minutes of the centre's return, whatever the backoff grew to."""

from __future__ import annotations

import time
from datetime import timedelta

from sqlalchemy import select, update

from adapter.flow.send import PROBE_CAP_SECONDS
from adapter.spool import outbox
from adapter.spool.states import MessageStatus
from adapter.state import schema
from adapter.state.store import utcnow
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done


def _statuses(adapter):
    with adapter.store.begin() as conn:
        return dict(conn.execute(select(schema.message.c.id, schema.message.c.status)).all())


def test_a_lease_that_ran_out_is_reclaimed_without_a_restart(make_adapter, centre, sample_his, sqlite_state_url):
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    # A worker claims messages and dies without a word (a failed state write looks the same).
    adapter.cycle.run()
    with adapter.store.begin() as conn:
        conn.execute(update(schema.message).values(status=MessageStatus.PENDING.value, acked_at=None))
    claimed = outbox.claim_due(adapter.store, limit=3, lease=timedelta(milliseconds=10))
    assert claimed
    time.sleep(0.05)
    adapter.cycle.run()  # the same process, no restart: the expired leases are reclaimed
    statuses = _statuses(adapter)
    assert all(statuses[m.id] != MessageStatus.IN_FLIGHT.value for m in claimed)
    run_until_done(adapter)
    assert set(_statuses(adapter).values()) == {MessageStatus.ACKED.value}


def test_the_outage_pause_is_bounded_and_waiting_messages_come_forward(
    make_adapter, make_centre, sample_his, sqlite_state_url
):
    centre = make_centre("nhsa")
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    send = adapter.cycle.send
    send.settings = type(send.settings)(**{**send.settings.__dict__, "retry_base_seconds": 60.0,
                                           "retry_cap_seconds": 3600.0})
    for _ in range(12):
        send._pause_sending()
    assert send.paused_until is not None
    assert (send.paused_until - utcnow()).total_seconds() <= PROBE_CAP_SECONDS
    # Messages that waited out an hour-long backoff are due as soon as the centre answers again.
    with adapter.store.begin() as conn:
        conn.execute(update(schema.message).values(status=MessageStatus.RETRY_WAIT.value,
                                                   next_attempt_at=utcnow() + timedelta(hours=1)))
    assert outbox.bring_forward(adapter.store) > 0
    with adapter.store.begin() as conn:
        later = conn.execute(select(schema.message.c.id).where(schema.message.c.next_attempt_at > utcnow())).all()
    assert later == []
