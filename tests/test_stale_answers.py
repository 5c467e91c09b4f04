"""An answer older than one already accepted is an earlier request's answer handed back again.

The centre receives a request only after every request whose answer came back before it left,
so an answer whose refmsg_time (the centre's receipt time) is earlier than an accepted one's is
not this request's. A proxy that kept an answer it never delivered and hands it back later can
otherwise pass a check on inf_refmsgid: nobody has seen that one. The exactly-once harness once
registered a 2201 twice that way: an inquiry's "not registered", swallowed before the lost
registration was resent, came back as the answer to the inquiry after it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from adapter.flow.report import CycleReport
from adapter.outbound.envelope import answer_time, parse_reply
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import MessageStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.harness.hostile_proxy import HostilePlan, HostileProxy
from tests.helpers import run_until_done


def test_envelope_times_are_read_to_the_millisecond_and_nothing_else_is_guessed():
    assert answer_time("20200201133411352") == datetime(2020, 2, 1, 13, 34, 11, 352000)
    assert answer_time("20200201133411") == datetime(2020, 2, 1, 13, 34, 11)
    for unreadable in (None, "", "2020-02-01 13:34:11", "20201301133411352", "2020020113341135", 17):
        assert answer_time(unreadable) is None
    reply = parse_reply({"infcode": 0, "inf_refmsgid": "X", "refmsg_time": "20200201133411352", "output": {}})
    assert reply.received_at == datetime(2020, 2, 1, 13, 34, 11, 352000)
    assert parse_reply({"infcode": 0}).received_at is None


def _messages(adapter: Any, status: MessageStatus) -> list[int]:
    with adapter.store.begin() as conn:
        return list(conn.execute(select(schema.message.c.id).where(
            schema.message.c.infno == "2201", schema.message.c.status == status.value)).scalars())


def _due_now(adapter: Any) -> None:
    """Every unknown message may be asked about at once (its grace and backoff are past)."""
    with adapter.store.begin() as conn:
        conn.execute(update(schema.message).where(schema.message.c.status == MessageStatus.UNKNOWN.value)
                     .values(next_attempt_at=datetime(2000, 1, 1)))


def _inquire_each_once(adapter: Any) -> None:
    """One inquiry about each unknown message, in turn (an inquiry pass stops at its first
    failure, and a failed message would be due again at once with the tests' short backoff)."""
    for message_id in _messages(adapter, MessageStatus.UNKNOWN):
        with adapter.store.begin() as conn:
            unknown = schema.message.c.status == MessageStatus.UNKNOWN.value
            conn.execute(update(schema.message).where(unknown).values(next_attempt_at=datetime(2100, 1, 1)))
            conn.execute(update(schema.message).where(unknown, schema.message.c.id == message_id)
                         .values(next_attempt_at=datetime(2000, 1, 1)))
        adapter.cycle.send.inquire(CycleReport(), adapter.cycle.settle.resolved)


def _to_send(adapter: Any) -> list[int]:
    return _messages(adapter, MessageStatus.PENDING) + _messages(adapter, MessageStatus.RETRY_WAIT)


def _send_pending(adapter: Any) -> None:
    while _to_send(adapter):
        adapter.cycle.send.paused_until = None
        adapter.cycle.send_due(CycleReport())


def test_a_swallowed_inquiry_answer_handed_back_later_never_registers_a_visit_twice(
        make_adapter, make_centre, sample_his, sqlite_state_url):
    centre = make_centre("nhsa")
    with HostileProxy(centre.url, seed=5) as proxy:
        def adapter_now() -> Any:
            made = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=proxy.url,
                                his_extra='transactions = ["2201"]')
            made.client.sign_no()
            return made

        adapter = adapter_now()
        import_sample_mapping(adapter, sample_his)
        # 1. Every registration is lost on its way: the centre holds none, the adapter cannot know.
        centre.faults = FaultPlan(reset_rate=1.0)
        adapter.cycle.run()
        _send_pending(adapter)
        registrations = _messages(adapter, MessageStatus.UNKNOWN)
        assert registrations and not centre.ledger.registrations
        centre.faults = FaultPlan()
        # 2. Each visit's 5201 says "not registered" (true), but the proxy swallows the answer and
        # keeps it; the next inquiry's answer arrives, so each registration is sent again ...
        proxy.set_plan(HostilePlan(http_502=1.0))
        _inquire_each_once(adapter)
        assert proxy.counts.injected["http_502"] == len(registrations)
        proxy.set_plan(HostilePlan())
        _inquire_each_once(adapter)
        assert len(_to_send(adapter)) == len(registrations)
        # ... and held by the centre this time, its answer lost again.
        centre.faults = FaultPlan(commit_then_5xx_rate=1.0)
        _send_pending(adapter)
        assert len(centre.ledger.registrations) == len(registrations)
        assert len(_messages(adapter, MessageStatus.UNKNOWN)) == len(registrations)
        centre.faults = FaultPlan()
        # 3. The daemon restarts; every 5201 now gets an earlier 5201 answer instead of its own:
        # one the adapter accepted (a known inf_refmsgid) or one it never saw (only its time tells).
        adapter.close()
        adapter = adapter_now()
        proxy.set_plan(HostilePlan(replay=1.0))
        for _ in range(3):
            _inquire_each_once(adapter)
        assert not _to_send(adapter), "a replayed 'not registered' was believed"
        assert proxy.counts.injected["replay"] >= 3 * len(registrations)
        with adapter.store.begin() as conn:
            errors = list(conn.execute(select(schema.attempt.c.err_msg).where(
                schema.attempt.c.infno == "5201", schema.attempt.c.outcome == "transient")).scalars())
        assert any("handed back again" in (error or "") for error in errors)
        # 4. Once answers are the centre's own again, each registration is found, held once.
        proxy.set_plan(HostilePlan())
        _due_now(adapter)
        run_until_done(adapter)
    assert centre.ledger.duplicates["2201"] == 0
    assert len(centre.ledger.registrations) == len(registrations)
    assert not _messages(adapter, MessageStatus.UNKNOWN)


def test_answers_may_lag_by_the_tolerance_and_ones_without_a_time_are_read_by_their_content(
        make_adapter, centre, sample_his, sqlite_state_url):
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    client = adapter.client
    client.sign_no()
    newest = client._newest_answer
    assert newest is not None, "the sign-in's answer time is kept"
    earlier = {"infcode": 0, "inf_refmsgid": "", "output": {}}
    assert client._stale(parse_reply({**earlier, "refmsg_time": f"{newest:%Y%m%d%H%M%S%f}"[:17]}), newest) == ""
    lagging = parse_reply({**earlier, "refmsg_time": f"{newest - timedelta(seconds=2):%Y%m%d%H%M%S%f}"[:17]})
    assert "handed back again" in client._stale(lagging, newest)
    assert client._stale(parse_reply(earlier), newest) == ""  # no time: judged by its content alone
    client._answer_clock_tolerance = timedelta(seconds=3)
    assert client._stale(lagging, newest) == ""


def test_an_answer_time_far_ahead_is_neither_judged_nor_kept(make_adapter, centre, sample_his, sqlite_state_url):
    """A centre clock a year ahead once must not make every later answer look stale, in this
    process or, through the attempt table, after a restart."""
    from adapter.outbound.client import _answer_time

    far = parse_reply({"infcode": 0, "inf_refmsgid": "", "output": {}, "refmsg_time": "20991231235959000"})
    assert far.received_at is not None and _answer_time(far) is None
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    adapter.client.sign_no()
    newest = adapter.client._newest_answer
    adapter.client._note_answer_time(far)
    assert adapter.client._newest_answer == newest
    assert adapter.client._stale(far, newest) == ""
