"""When the daemon (and the demo) wake: at the first message that can go, not at one queued
behind an earlier message of its visit that is waiting out its backoff."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from adapter.spool import outbox
from adapter.spool.states import MessageStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow


def _message(store: StateStore, group: str) -> int:
    with store.begin() as conn:
        return outbox.spool_message(conn, infno="2401", group_key=group, payload={"mdtrtinfo": {}}, record_ids=[])


def test_a_message_behind_its_groups_waiting_head_does_not_make_anything_due(sqlite_state_url):
    store = StateStore(sqlite_state_url)
    try:
        head, behind = _message(store, "visit:A"), _message(store, "visit:A")
        later = utcnow() + timedelta(minutes=10)
        with store.begin() as conn:
            conn.execute(update(schema.message).where(schema.message.c.id == head)
                         .values(status=MessageStatus.RETRY_WAIT.value, next_attempt_at=later))
        assert outbox.next_due_at(store) == later  # not the time ``behind`` was spooled
        assert outbox.claim_due(store, 10, timedelta(seconds=30)) == []
        other = _message(store, "visit:B")  # another visit's message can go now
        due = outbox.next_due_at(store)
        assert due is not None and due < later
        assert [m.id for m in outbox.claim_due(store, 10, timedelta(seconds=30))] == [other]
        assert behind not in (head, other)
    finally:
        store.close()


def test_an_unanswered_message_is_asked_about_only_after_the_centre_is_done_with_it(sqlite_state_url):
    store = StateStore(sqlite_state_url)
    try:
        message = _message(store, "visit:C")
        [claimed] = outbox.claim_due(store, 10, timedelta(seconds=30))
        outbox.mark_unknown(store, claimed.id, "no reply within the timeout", expect=MessageStatus.IN_FLIGHT,
                            inquire_after=60)
        # an inquiry now could overtake the request the centre is still working on
        assert outbox.claim_unknown(store, 10, timedelta(seconds=30)) == []
        with store.begin() as conn:
            conn.execute(update(schema.message).where(schema.message.c.id == message)
                         .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        assert [m.id for m in outbox.claim_unknown(store, 10, timedelta(seconds=30))] == [message]
    finally:
        store.close()


def test_a_starting_daemon_leaves_another_daemons_message_in_flight(sqlite_state_url):
    store = StateStore(sqlite_state_url)
    try:
        message = _message(store, "visit:D")
        outbox.claim_due(store, 10, timedelta(minutes=5))  # another daemon is sending it
        assert outbox.recover_in_flight(store, only_expired=True, inquire_after=1) == 0
        with store.begin() as conn:
            status = conn.execute(schema.message.select().where(schema.message.c.id == message)).one().status
        assert status == MessageStatus.IN_FLIGHT.value
    finally:
        store.close()


def test_a_daemon_starting_beside_another_leaves_its_sends_alone(make_adapter, centre, sample_his, tmp_path):
    from adapter.daemon import Daemon

    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    message = _message(adapter.store, "visit:E")
    outbox.claim_due(adapter.store, 10, timedelta(minutes=5))  # the other daemon's send, lease running
    Daemon(adapter).run_once()
    with adapter.store.begin() as conn:
        row = conn.execute(schema.message.select().where(schema.message.c.id == message)).one()
    assert row.status == MessageStatus.IN_FLIGHT.value and row.attempts == 0
