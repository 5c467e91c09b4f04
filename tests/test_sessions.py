"""Sign-in and sessions (reference §3.2): 9001 before the first call, sign_no cached, a fresh
sign-in when the centre says the sign_no expired, and 9002 when the daemon stops."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from adapter.daemon import Daemon
from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.helpers import lines_by_status, run_until_done


def _attempts(adapter):
    with adapter.store.begin() as conn:
        return conn.execute(
            select(schema.attempt.c.infno, schema.attempt.c.outcome, schema.attempt.c.err_msg)
            .order_by(schema.attempt.c.started_at, schema.attempt.c.msgid)
        ).all()


def test_expired_sign_no_is_renewed_and_nothing_is_lost(make_adapter, make_centre, sample_his, tmp_path):
    # Every sign_no expires after three uses, so the upload crosses several expiries.
    centre = make_centre("nhsa", session_max_uses=3)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url
    )
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    assert centre.ledger.expired_sessions >= 2
    assert report.messages_rejected == 0 and report.lines_rejected == 0
    attempts = _attempts(adapter)
    sign_ins = [a for a in attempts if a.infno == "9001"]
    refused = [a for a in attempts if a.outcome == "rejected"]
    # One refused attempt per expiry, each followed by one sign-in; nothing parked because of it.
    assert len(refused) == centre.ledger.expired_sessions
    assert all("签到" in a.err_msg for a in refused)
    assert len(sign_ins) == 1 + centre.ledger.expired_sessions
    sent = lines_by_status(adapter)[RecordStatus.SENT.value]
    assert len(centre.ledger.fee_lines) == len(sent) and centre.ledger.duplicate_lines == 0


def test_sign_in_once_then_sign_out_when_the_daemon_stops(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url
    )
    import_sample_mapping(adapter, sample_his)
    daemon = Daemon(adapter)
    stop = daemon.stop_event
    worker = threading.Thread(target=daemon.run_forever)
    worker.start()
    try:
        # Wait until the first cycle has sent something, then stop the daemon.
        for _ in range(200):
            if centre.ledger.accepted.get("2301"):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        worker.join(timeout=20)
    assert not worker.is_alive()
    assert centre.ledger.requests["9001"] == 1
    assert centre.ledger.accepted["9002"] == 1 and centre.ledger.sign_outs == 1
    assert centre.ledger.sign_nos == {}, "the session must be closed at the centre"
    assert adapter.client.cached_sign_no() is None


def test_a_centre_restart_renews_the_session_whatever_its_refusal_says(make_adapter, make_centre, sample_his,
                                                                       tmp_path):
    """After a restart the centre forgets every sign_no and says so in words without 过期/无效
    ("签到信息不存在,请重新签到"): one fresh sign-in and one resend, nothing parked."""
    centre = make_centre("nhsa")
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url
    )
    import_sample_mapping(adapter, sample_his)
    first = adapter.client.sign_no()
    centre.restart()

    report = run_until_done(adapter)

    assert centre.ledger.forgotten_session_refusals >= 1
    assert report.messages_rejected == 0 and report.lines_rejected == 0
    assert adapter.client.cached_sign_no() not in (None, first)
    assert not [r for r in lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
                if "签到" in (r.park_reason or "")]


def test_a_busy_centre_is_retried_never_parked(make_adapter, make_centre, sample_his, tmp_path):
    """系统繁忙 (and an infcode -1 without err_msg) says "not now": the message waits and is sent
    again; which words mean that is the region's data (RegionProfile.transient_answers)."""
    centre = make_centre("nhsa", busy_rate=0.4, seed=3)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url
    )
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    assert centre.ledger.faults["busy"] > 0
    assert report.messages_rejected == 0
    assert any(a.outcome == "busy" for a in _attempts(adapter))
    assert not [r for r in lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
                if "繁忙" in (r.park_reason or "")]


def test_a_refused_sign_in_parks_nothing(make_adapter, make_centre, sample_his, tmp_path):
    from adapter.errors import SignInRefused

    centre = make_centre("zhejiang")
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        region="zhejiang", extra_centre='infver = "V1.0"',
    )
    import_sample_mapping(adapter, sample_his)
    for _ in range(2):
        adapter.cycle.run()
    with adapter.store.begin() as conn:
        parked = conn.execute(select(schema.record.c.id).where(
            schema.record.c.park_kind == "rejected")).all()
    assert parked == []
    with pytest.raises(SignInRefused):
        adapter.client.sign_no()
