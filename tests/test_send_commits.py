"""What one acknowledged message costs the state store: one write transaction of its own, and
a share of its batch's.

Every attempt (its msgid) is committed before its request leaves, so a crash can never leave a
request at the centre that the ledger does not know of. For 2301 and 2204, whose answers name
every line sent, the answer's row and the ack are committed together after the send, and the
acks of a claimed batch share one commit. A claim fresh enough is not renewed once more per
message, and a renewal holds only while the lease is still the one this worker's claim wrote.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from adapter.flow.report import CycleReport
from adapter.outbound.attempts import AttemptFinish
from adapter.spool import outbox
from adapter.spool.deliveries import Delivery, DeliveryKind
from adapter.spool.states import MessageStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping


class WriteCommits:
    """Counts the commits of transactions that wrote something (reads commit too, for free)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.count = 0

    def __enter__(self) -> WriteCommits:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)

    def _statement(self, conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            conn.info["wrote"] = True

    def _commit(self, conn: Any) -> None:
        if conn.info.pop("wrote", False):
            self.count += 1


def _claim_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches claimed from here on (none for a claim that found nothing)."""
    claims: list[int] = []
    claim_due = outbox.claim_due

    def counted(*args: Any, **kwargs: Any) -> Any:
        claimed = claim_due(*args, **kwargs)
        claims.extend([len(claimed)] if claimed else [])
        return claimed

    monkeypatch.setattr(outbox, "claim_due", counted)
    return claims


def _spooled_adapter(make_adapter: Any, sample_his: Any, centre: Any, state_url: str) -> Any:
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           his_extra='transactions = ["2301"]')
    import_sample_mapping(adapter, sample_his)
    report = CycleReport()
    for stage in (adapter.cycle.extract, adapter.cycle.check, adapter.cycle.build):  # spooled, not sent
        stage.run(report)
    return adapter


def test_an_acked_message_costs_one_write_transaction_and_its_batch_one_more(
        make_adapter, sample_his, centre, sqlite_state_url, monkeypatch):
    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    with adapter.store.begin() as conn:
        pending = len(conn.execute(select(schema.message.c.id)).all())
    assert pending >= 5
    adapter.client.sign_no()  # the session is not the messages' cost
    report = CycleReport()
    claims = _claim_sizes(monkeypatch)
    renewals: list[int] = []
    renew_lease = outbox.renew_lease

    def renewed(*args: Any, **kwargs: Any) -> bool:
        renewals.append(1)  # only for a claim older than a sixth of its lease (a busy machine)
        return renew_lease(*args, **kwargs)

    monkeypatch.setattr(outbox, "renew_lease", renewed)
    with WriteCommits(adapter.store.engine) as commits:
        adapter.cycle.send_due(report)
    assert report.messages_acked == pending
    # per message: its attempt before the request leaves; per batch claimed (at most ten, one a
    # visit): the claim, and the answers with the acks; per pass: the recovery of expired leases
    assert sum(claims) == pending and max(claims) <= 10
    assert pending > len(claims)  # so one commit an ack would break the bound below
    assert commits.count <= pending + 2 * len(claims) + 1 + len(renewals), (commits.count, claims, renewals)
    assert len(renewals) < pending
    with adapter.store.begin() as conn:
        attempts = conn.execute(select(schema.attempt).where(schema.attempt.c.message_id.is_not(None))).all()
    assert len(attempts) == pending
    assert all(a.outcome == "ok" and a.finished_at is not None and a.inf_refmsgid for a in attempts)


def test_messages_in_flight_at_once_register_their_attempts_in_one_commit_a_wave(
        make_adapter, sample_his, centre, sqlite_state_url, monkeypatch):
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                           his_extra='transactions = ["2301"]', schedule="in_flight = 4")
    import_sample_mapping(adapter, sample_his)
    for stage in (adapter.cycle.extract, adapter.cycle.check, adapter.cycle.build):
        stage.run(CycleReport())
    adapter.client.sign_no()
    claims = _claim_sizes(monkeypatch)
    report = CycleReport()
    with WriteCommits(adapter.store.engine) as commits:
        adapter.cycle.send_due(report)
    waves = sum(-(-n // 4) for n in claims)
    assert report.messages_acked == sum(claims) > waves  # some wave held several messages
    # per wave: its attempts; per batch claimed: the claim and the acks; per pass: the recovery
    assert commits.count <= waves + 2 * len(claims) + 1, (commits.count, claims)
    with adapter.store.begin() as conn:
        attempts = conn.execute(select(schema.attempt).where(schema.attempt.c.message_id.is_not(None))).all()
    assert len(attempts) == sum(claims)
    assert all(a.outcome == "ok" and a.finished_at is not None and a.inf_refmsgid for a in attempts)


def test_an_answer_for_a_message_taken_elsewhere_still_records_its_attempt(
        make_adapter, sample_his, centre, sqlite_state_url):
    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    message = outbox.claim_due(adapter.store, 1, outbox.timedelta(seconds=30))[0]
    with adapter.store.begin() as conn:
        conn.execute(schema.attempt.insert().values(msgid="M1", message_id=message.id, infno="2301",
                                                    started_at=outbox.utcnow()))
        # another worker reclaimed it meanwhile
        conn.execute(update(schema.message).where(schema.message.c.id == message.id)
                     .values(status=MessageStatus.UNKNOWN.value))
    finish = AttemptFinish("M1", "ok", 200, 0, "", "REF1")
    adapter.cycle.settle.delivered(message, Delivery(DeliveryKind.ACKED, msgid="M1", finish=finish), CycleReport())
    with adapter.store.begin() as conn:
        attempt = conn.execute(select(schema.attempt).where(schema.attempt.c.msgid == "M1")).one()
        status = conn.execute(select(schema.message.c.status).where(schema.message.c.id == message.id)).scalar_one()
    assert (attempt.outcome, attempt.inf_refmsgid) == ("ok", "REF1") and attempt.finished_at is not None
    assert status == MessageStatus.UNKNOWN.value


def test_a_lease_renewed_only_while_it_is_still_this_workers(make_adapter, sample_his, centre, sqlite_state_url):
    """Worker A claimed a message and was slow to reach it; its lease ran out, worker B
    recovered it and claimed it again. A's renewal before sending must fail (B sends it), even
    though the message is in flight again."""
    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    lease = outbox.timedelta(seconds=30)
    (mine,) = outbox.claim_due(adapter.store, 1, lease)
    with adapter.store.begin() as conn:
        conn.execute(update(schema.message).where(schema.message.c.id == mine.id)
                     .values(lease_until=outbox.utcnow() - outbox.timedelta(seconds=1)))
    assert outbox.recover_in_flight(adapter.store, only_expired=True) == 1
    theirs = [m for m in outbox.claim_due(adapter.store, 10, lease) if m.id == mine.id]
    assert theirs and theirs[0].lease_until != mine.lease_until
    assert not outbox.renew_lease(adapter.store, mine.id, lease, MessageStatus.IN_FLIGHT, held_until=mine.lease_until)
    assert outbox.renew_lease(adapter.store, mine.id, lease, MessageStatus.IN_FLIGHT,
                              held_until=theirs[0].lease_until)


def test_the_send_loop_leaves_a_message_its_lease_lost_to_another_worker(make_adapter, sample_his, centre,
                                                                          sqlite_state_url, monkeypatch):
    """The send loop renews a claim gone stale only under the lease its own claim wrote: while
    it sent the first message of its batch, the second's lease ran out and worker B claimed it
    again. The loop must leave that one to B, although it is in flight again."""
    import types

    from adapter.flow import send as send_module

    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    adapter.client.sign_no()
    clock = [0.0]
    monkeypatch.setattr(send_module, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    taken_by_b: list[int] = []
    send_one = adapter.cycle.send._send_one

    def slow_first(message: outbox.SpooledMessage, *args: Any) -> Any:
        if not taken_by_b:
            with adapter.store.begin() as conn:
                second = conn.execute(select(schema.message.c.id).where(
                    schema.message.c.status == MessageStatus.IN_FLIGHT.value, schema.message.c.id != message.id)
                    .order_by(schema.message.c.id).limit(1)).scalar_one()
                conn.execute(update(schema.message).where(schema.message.c.id == second)
                             .values(lease_until=outbox.utcnow() - outbox.timedelta(seconds=1)))
            assert outbox.recover_in_flight(adapter.store, only_expired=True) == 1
            claimed = outbox.claim_due(adapter.store, 1, outbox.timedelta(minutes=5))
            assert [m.id for m in claimed] == [second]
            taken_by_b.append(second)
            clock[0] += 3600.0  # the first send took long: the rest of the claim is stale
        return send_one(message, *args)

    monkeypatch.setattr(adapter.cycle.send, "_send_one", slow_first)
    adapter.cycle.send_due(CycleReport())
    with adapter.store.begin() as conn:
        sent_by_a = conn.execute(select(schema.attempt.c.msgid).where(
            schema.attempt.c.message_id == taken_by_b[0])).all()
        status = conn.execute(select(schema.message.c.status).where(
            schema.message.c.id == taken_by_b[0])).scalar_one()
    assert sent_by_a == [], "worker A sent a message worker B had claimed again"
    assert status == MessageStatus.IN_FLIGHT.value  # B's, to send


class _Crash(BaseException):
    """The process dying where it is raised (nothing after it runs, nothing catches it)."""


def test_a_crash_before_a_batch_is_settled_has_each_of_its_messages_settled_as_a_lost_reply(
        make_adapter, sample_his, centre, sqlite_state_url, monkeypatch):
    """The batch went out and the centre committed every message, but the daemon died before
    the batch's acks were written. After the restart each message of it is a lost reply, settled
    the way the region declares for 2301 (its lines withdrawn by 2302, then sent again), and the
    centre ends with every line once."""
    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    with adapter.store.begin() as conn:
        pending = len(conn.execute(select(schema.message.c.id)).all())

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "mark_acked_together", crash)
        with pytest.raises(_Crash):
            adapter.cycle.send_due(CycleReport())
    with adapter.store.begin() as conn:
        statuses = conn.execute(select(schema.message.c.status)).scalars().all()
    in_flight = statuses.count(MessageStatus.IN_FLIGHT.value)
    # the first batch went out whole, and none of its acks was written
    assert in_flight > 1 and in_flight + statuses.count(MessageStatus.PENDING.value) == pending
    assert centre.ledger.requests["2301"] == in_flight
    held_before = set(centre.ledger.fee_lines)
    adapter.close()

    restarted = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                             his_extra='transactions = ["2301"]')
    assert outbox.recover_in_flight(restarted.store) == in_flight  # as the daemon does at start
    report = CycleReport()
    for _pass in range(6):
        with restarted.store.begin() as conn:  # what waits (an inquiry, a backoff) is due now
            conn.execute(update(schema.message).where(schema.message.c.status != MessageStatus.ACKED.value)
                         .values(next_attempt_at=outbox.utcnow()))
        restarted.cycle.send_due(report)
    with restarted.store.begin() as conn:
        statuses = conn.execute(select(schema.message.c.status)).scalars().all()
        sent_lines = conn.execute(select(func.count()).select_from(schema.record)
                                  .where(schema.record.c.status == "sent")).scalar_one()
    assert statuses == [MessageStatus.ACKED.value] * pending
    assert report.outcomes_resolved == in_flight
    assert centre.ledger.requests["2302"] == in_flight  # each crashed message's lines withdrawn once
    assert held_before <= set(centre.ledger.fee_lines) and len(centre.ledger.fee_lines) == sent_lines
    assert centre.ledger.duplicate_lines == 0 and centre.ledger.duplicates["2301"] == 0


def test_a_batch_binds_its_visits_mdtrt_ids_in_one_read(sqlite_state_url):
    """Each payload gets its own visit's mdtrt_id (where the adapter registered the visit), read
    for the whole batch in one statement."""
    from adapter.spool.visits import bind_visits, store_visit
    from adapter.state.store import StateStore

    store = StateStore(sqlite_state_url)
    try:
        with store.begin() as conn:
            store_visit(conn, "visit:H1", "M-ONE", "MSG1")
            store_visit(conn, "visit:H2", "M-TWO", "MSG2")

        def payload(visit: str) -> dict[str, Any]:
            return {"feedetail": [{"mdtrt_id": visit, "feedetl_sn": "1"}, {"mdtrt_id": visit, "feedetl_sn": "2"}],
                    "data": {"mdtrt_id": visit, "other": visit}}

        messages = [("visit:H1", payload("H1")), ("visit:H3", payload("H3")), ("visit:H2", payload("H2")),
                    ("stock:H1", payload("H1"))]
        with _Statements(store.engine) as statements:
            bound = bind_visits(store, messages)
        assert len(statements) == 1
        assert bound[0] == {"feedetail": [{"mdtrt_id": "M-ONE", "feedetl_sn": "1"},
                                          {"mdtrt_id": "M-ONE", "feedetl_sn": "2"}],
                            "data": {"mdtrt_id": "M-ONE", "other": "H1"}}
        assert bound[1] is messages[1][1]  # not registered: as it was
        assert bound[2]["data"]["mdtrt_id"] == "M-TWO" and bound[2]["feedetail"][1]["mdtrt_id"] == "M-TWO"
        assert bound[3] is messages[3][1]  # not a visit's message
        assert bind_visits(store, []) == []
    finally:
        store.close()


class _Statements(list[str]):
    """The statements an engine runs while attached."""

    def __init__(self, engine: Any) -> None:
        super().__init__()
        self.engine = engine

    def __enter__(self) -> _Statements:
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        self.append(sql)


def test_a_lost_message_and_the_records_its_withdrawal_took_are_sent_again_in_one_commit(
        make_adapter, sample_his, centre, sqlite_state_url, monkeypatch):
    """A batch-wide withdrawal settled a lost message: it is due again, and the group's records
    other messages had delivered are READY again. A crash between the two writes would leave
    those records marked sent although the centre no longer holds them (the exactly-once run
    once lost a 3503 line so), so they are one transaction: a crash in it leaves both undone."""
    from adapter.outbound.outcome import Outcome, Resolution

    adapter = _spooled_adapter(make_adapter, sample_his, centre, sqlite_state_url)
    (message,) = outbox.claim_due(adapter.store, 1, outbox.timedelta(seconds=30))
    outbox.mark_unknown(adapter.store, message.id, "reply lost", expect=MessageStatus.IN_FLIGHT)
    withdrawn = Outcome(Resolution.NOT_COMMITTED, "withdrawn", resend_shared=frozenset({"2301"}))

    def crash(*_args: Any, **_kwargs: Any) -> Any:
        raise _Crash

    with monkeypatch.context() as patch:
        patch.setattr(outbox, "_shared", crash)  # dies while the delivered records are requeued
        with pytest.raises(_Crash):
            adapter.cycle.settle.resolved(message, withdrawn, CycleReport())
    with adapter.store.begin() as conn:
        status = conn.execute(select(schema.message.c.status).where(schema.message.c.id == message.id)).scalar_one()
    assert status == MessageStatus.UNKNOWN.value  # asked about again at the restart, nothing lost

    adapter.cycle.settle.resolved(message, withdrawn, CycleReport())
    with adapter.store.begin() as conn:
        status = conn.execute(select(schema.message.c.status).where(schema.message.c.id == message.id)).scalar_one()
    assert status == MessageStatus.RETRY_WAIT.value
