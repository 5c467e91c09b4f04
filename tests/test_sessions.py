"""Sign-in and sessions (reference §3.2): 9001 before the first call, sign_no cached, a fresh
sign-in when the centre says the sign_no expired, and 9002 when the daemon stops."""

from __future__ import annotations

import threading

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
