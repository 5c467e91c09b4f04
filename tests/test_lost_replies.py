"""Unknown means unknown: a send whose effect cannot be read from the answer is settled only the
way its region allows, and nothing is resent on a guess.

The ways are read against the published tables (hunan V1.1.27 in the project): fee details are
not queryable before settlement, so lost lines are withdrawn by name; 2201 is asked about with
5201's required inputs; 4101 with 4103's; 2401 is reversed by 2601. Each way is exercised
through the simulated centre over loopback; the verdicts on hostile answers are unit-tested on
the dialect, whose reading an unreadable or foreign answer must never turn into "held" or
"nothing there".
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from adapter_nhsa.dialect import NhsaDialect
from adapter_nhsa.hooks import LOST_REPLIES
from adapter_nhsa.transactions import TRANSACTIONS
from sqlalchemy import select, update

from adapter.plugin.api import LostReplyMethod, RefusalMeaning, Verdict
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spec.check import check
from adapter.spec.tables import load_edition
from adapter.spool import outbox
from adapter.spool.deliveries import DeliveryKind
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.helpers import lines_by_status, run_until_done

DIALECT = NhsaDialect()
EDITION = load_edition("hunan-v1.1.27")

REGISTRATION = {"data": {"psn_no": "P1", "ipt_otp_no": "MZ7", "begntime": "2026-11-30 09:12:00"}}
SETTLEMENT_LIST = {"setlinfo": {"psn_no": "P1", "setl_id": "S1"}}
FEES = {"feedetail": [
    {"feedetl_sn": "11", "mdtrt_id": "M1", "psn_no": "P1", "cnt": "2"},
    {"feedetl_sn": "12", "mdtrt_id": "M1", "psn_no": "P1", "cnt": "-1", "init_feedetl_sn": "11"},
]}


def test_every_transaction_the_region_sends_declares_how_a_lost_reply_is_settled():
    assert set(TRANSACTIONS) <= set(LOST_REPLIES)
    assert all(way.source for way in LOST_REPLIES.values())
    # 5204 needs setl_id: unsettled fee details are withdrawn, never "queried" as missing.
    assert LOST_REPLIES["2301"].method is LostReplyMethod.WITHDRAW
    assert LOST_REPLIES["2401"].method is LostReplyMethod.REVERSE


def test_inquiries_carry_every_input_their_table_requires():
    for infno, payload in (("2201", REGISTRATION), ("4101", SETTLEMENT_LIST)):
        query = DIALECT.inquiry(infno, payload)
        assert query is not None
        query_infno, query_input = query
        problems = [str(p) for p in check(EDITION, query_infno, query_input)]
        assert problems == [], (query_infno, problems)
    _, five_two_o_one = DIALECT.inquiry("2201", REGISTRATION) or ("", {})
    assert five_two_o_one["data"]["begntime"] == "2026-11-30 00:00:00"
    assert five_two_o_one["data"]["endtime"] == "2026-11-30 23:59:59"


def test_withdrawals_name_exactly_the_lost_lines_refunds_first_and_conform():
    calls = DIALECT.withdrawal("2301", FEES)
    assert [infno for infno, _ in calls] == ["2302"]
    named = [entry["feedetl_sn"] for entry in calls[0][1]["data"]]
    assert named == ["12", "11"]  # the refund before its original; never "0000"
    for infno, payload in calls:
        assert [str(p) for p in check(EDITION, infno, payload)] == []
    discharge = DIALECT.withdrawal("2402", {"dscginfo": {"mdtrt_id": "M1", "psn_no": "P1"}})
    assert discharge == [("2405", {"data": {"mdtrt_id": "M1", "psn_no": "P1"}})]
    assert [str(p) for p in check(EDITION, *discharge[0])] == []


@pytest.mark.parametrize("output", [None, {}, {"mdtrtinfo": None}, {"mdtrtinfo": "garbage"}, "garbage"])
def test_an_answer_without_its_node_decides_nothing(output):
    assert DIALECT.inquiry_verdict("2201", REGISTRATION, output).verdict is Verdict.UNDECIDED


def test_inquiry_verdicts():
    held = DIALECT.inquiry_verdict("2201", REGISTRATION, {"mdtrtinfo": [{"ipt_otp_no": "MZ7", "mdtrt_id": "C9"}]})
    assert (held.verdict, held.visit_id) == (Verdict.HELD, "C9")
    assert DIALECT.inquiry_verdict("2201", REGISTRATION, {"mdtrtinfo": []}).verdict is Verdict.NOT_HELD
    assert DIALECT.inquiry_verdict("4101", SETTLEMENT_LIST, {}).verdict is Verdict.UNDECIDED
    assert DIALECT.inquiry_verdict("4101", SETTLEMENT_LIST, {"setlinfo": {}}).verdict is Verdict.NOT_HELD
    assert DIALECT.inquiry_verdict("4101", SETTLEMENT_LIST,
                                   {"setlinfo": {"setl_id": "S1"}}).verdict is Verdict.HELD
    assert DIALECT.inquiry_verdict("4101", SETTLEMENT_LIST,
                                   {"setlinfo": {"setl_id": "S2"}}).verdict is Verdict.UNDECIDED


def test_an_acknowledgement_is_checked_line_by_line():
    answered = {"result": [{"feedetl_sn": "11"}, {"feedetl_sn": "12"}]}
    assert DIALECT.answer_mismatch("2301", FEES, answered) is None
    # only answers checked line by line may have their attempt written later, with the ack
    assert sorted(infno for infno in TRANSACTIONS if DIALECT.answer_names_its_request(infno)) == ["2204", "2301"]
    assert "missing" in (DIALECT.answer_mismatch("2301", FEES, {"result": [{"feedetl_sn": "11"}]}) or "")
    assert "not sent" in (DIALECT.answer_mismatch("2301", FEES, {"result": [{"feedetl_sn": "99"},
                                                                            {"feedetl_sn": "11"}]}) or "")
    assert DIALECT.answer_mismatch("2301", FEES, {}) is not None  # no result lines at all
    assert DIALECT.answer_mismatch("2201", REGISTRATION, {"data": {"ipt_otp_no": "MZ8"}}) is not None


@pytest.mark.parametrize(("err_msg", "meaning"), [
    ("费用明细[11]不存在或已撤销", RefusalMeaning.NOTHING_THERE),
    ("原交易[H1]不存在或已冲正", RefusalMeaning.NOTHING_THERE),
    ("批次[B1]没有可删除的3503/3504数据", RefusalMeaning.NOTHING_THERE),
    ("费用明细流水号[11]在本次就诊内已存在", RefusalMeaning.ALREADY_HELD),
    ("已参与结算的明细不能撤销", RefusalMeaning.ALREADY_HELD),
    ("医疗目录编码[X]不存在或已失效", RefusalMeaning.NOTHING_THERE),
    ("参数校验失败", RefusalMeaning.OTHER),
])
def test_refusal_meanings(err_msg, meaning):
    assert DIALECT.refusal_meaning(err_msg) is meaning


@pytest.mark.slow
def test_every_5xx_after_the_request_left_is_settled_by_withdrawal_and_arrives_once(
    make_adapter, make_centre, sample_his, state_url
):
    """HTTP 503s are answers from something that received the request: the adapter treats each
    as unknown, withdraws the lines by name (2302) and sends them again."""
    centre = make_centre("nhsa", error_rate=0.3, seed=4)
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    ledger = centre.ledger
    assert ledger.faults["server_error"] > 0 and report.outcomes_unknown > 0
    assert ledger.requests["2302"] > 0 and ledger.duplicate_lines == 0
    sent = {(row.mdtrt_id, row.feedetl_sn) for row in lines_by_status(adapter)[RecordStatus.SENT.value]}
    assert sent == set(ledger.fee_lines)
    with adapter.store.begin() as conn:
        statuses = set(conn.execute(select(schema.message.c.status)).scalars())
    assert MessageStatus.UNKNOWN.value not in statuses


@pytest.mark.slow
def test_a_lost_registration_is_found_by_5201_and_never_registered_twice(
    make_adapter, make_centre, sample_his, sqlite_state_url
):
    centre = make_centre("nhsa", drop_reply_rate=0.6, seed=2)
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                           his_extra='transactions = ["2201"]')
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    assert centre.ledger.requests["5201"] > 0
    assert centre.ledger.duplicates["2201"] == 0
    assert len(centre.ledger.registrations) == sample_his.outpatient_visits
    with adapter.store.begin() as conn:
        bound = dict(conn.execute(select(schema.visit.c.his_key, schema.visit.c.mdtrt_id)).all())
    assert set(bound.values()) == set(centre.ledger.registrations.values())


def test_an_undecided_message_stays_unknown_and_a_person_can_settle_it(
    make_adapter, make_centre, sample_his, sqlite_state_url
):
    """A region that declares no way for a transaction: its lost message stays unknown (never
    resent on a guess), shows in status, and `spool resolve` settles it."""
    import dataclasses

    from adapter.spool import outbox

    centre = make_centre("nhsa", seed=1)
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url,
                           his_extra='transactions = ["2201"]')
    import_sample_mapping(adapter, sample_his)
    adapter.cycle.send.region = dataclasses.replace(adapter.cycle.send.region, lost_replies={})
    adapter.cycle.settle.region = adapter.cycle.send.region
    adapter.client.sign_no()  # signed in while replies still arrive; then every reply is lost
    centre.faults = FaultPlan(drop_reply_rate=1.0)
    for _ in range(3):
        adapter.cycle.run()
    centre.faults = FaultPlan()
    adapter.cycle.send.paused_until = None  # the centre is back
    with adapter.store.begin() as conn:  # and the grace an unanswered message waits has passed
        conn.execute(update(schema.message).where(schema.message.c.status == MessageStatus.UNKNOWN.value)
                     .values(next_attempt_at=datetime(2000, 1, 1)))
    adapter.cycle.run()
    with adapter.store.begin() as conn:
        unknown = conn.execute(select(schema.message.c.id).where(
            schema.message.c.status == MessageStatus.UNKNOWN.value)).scalars().all()
    assert unknown and centre.ledger.duplicates["2201"] == 0
    from adapter.monitor.status import queue_status
    listed = queue_status(adapter.store).unknown
    assert {item["message_id"] for item in listed} >= set(unknown[:20])
    assert "declares no way" in listed[0]["last_error"]
    assert outbox.resolve_by_hand(adapter.store, unknown[0], acked=True, note="checked at the centre") > 0
    with pytest.raises(LookupError):
        outbox.resolve_by_hand(adapter.store, unknown[0], acked=True, note="twice")


def test_dictionary_values_are_checked_before_upload():
    from adapter.spec.check import DictionaryCheck

    dictionaries = DictionaryCheck(EDITION)
    good = {"feedetail": [{"feedetl_sn": "1", "med_type": "2101", "hosp_appr_flag": "1"}]}
    bad = {"feedetail": [{"feedetl_sn": "1", "med_type": "99", "hosp_appr_flag": "1"}]}
    assert dictionaries.problems("2301", good) == []
    problems = dictionaries.problems("2301", bad)
    assert len(problems) == 1 and "feedetail[1].med_type '99'" in problems[0]
    # The national reading adds 21 普通住院 as a value (nhsa's declared edition difference).
    from tests.conftest import region_profile
    national = DictionaryCheck(EDITION, region_profile("nhsa").table_changes)
    assert national.problems("2301", {"feedetail": [{"med_type": "21"}]}) == []
    assert dictionaries.problems("2301", {"feedetail": [{"med_type": "21"}]})  # hunan: not a value


def test_a_record_with_a_value_outside_its_dictionary_is_parked_not_sent(make_adapter, centre, sample_his,
                                                                         sqlite_state_url):
    from sqlalchemy import create_engine, text

    engine = create_engine(sample_his.url)
    with engine.begin() as conn:
        visit = conn.execute(text("SELECT visit_id FROM inpatient_visits ORDER BY visit_id LIMIT 1")).scalar()
        conn.execute(text("UPDATE inpatient_visits SET med_type = '99' WHERE visit_id = :v"), {"v": visit})
    engine.dispose()
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    parked = lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
    flagged = [r for r in parked if "'99' is not a value of" in (r.park_reason or "")]
    assert flagged, [r.park_reason for r in parked][:5]
    assert flagged[0].mdtrt_id not in {mdtrt_id for mdtrt_id, _ in centre.ledger.fee_lines}



def test_a_withdrawal_answered_but_never_acked_is_done_when_its_repeat_finds_nothing(
        make_adapter, centre, sample_his, tmp_path):
    """The daemon died after the centre's infcode-0 answer to a 2302 was recorded on its attempt
    and before the ack: the message is unknown, its repeat is refused as nothing left to
    withdraw, and that shows the first one withdrew it (the exactly-once harness found a 2205
    and a 2302 parked as rejected this way)."""
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra='transactions = ["2301", "2302"]')
    import_sample_mapping(adapter, sample_his)
    report = adapter.cycle.run()  # the lines go; their withdrawals wait for the lines' acks
    adapter.cycle.build.run(report)
    claimed = outbox.claim_due(adapter.store, 10, timedelta(seconds=30))
    assert claimed and {m.infno for m in claimed} == {"2302"}
    for message in claimed:
        delivery, _failures = adapter.cycle.send._send_one(message)
        # the client recorded the answer on the attempt (a 2302's answer names nothing of its
        # request, so it is not left for the ack); then the daemon dies before the ack
        assert delivery.kind is DeliveryKind.ACKED and delivery.finish is None

    run_until_done(adapter)  # recovers them as unknown first

    with adapter.store.begin() as conn:
        cancels = conn.execute(select(schema.record).where(schema.record.c.infno == "2302")).all()
    sent = [r for r in cancels if r.status == RecordStatus.SENT.value]
    assert len(sent) == len(claimed) and not [r for r in cancels if r.status == RecordStatus.PARKED.value
                                               and "不存在或已撤销" in (r.park_reason or "")]
    assert centre.ledger.cancelled_lines["2302"] == len(sent)
