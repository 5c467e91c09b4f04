"""The simulated centre refuses what the real one would: bad signatures, malformed envelopes,
reused msgids, calls without sign-in."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from adapter.jsonio import dumps, loads
from adapter.outbound.signing import TifSigner
from adapter.rehearsal.centre.checks import Refusal
from adapter.rehearsal.centre.ledger import CentreLedger
from tests.conftest import PAASID, TOKEN, set_faults

SINGLE = "/fsi/api/rsfComIfsService/callService"


def _envelope(**changes):
    doc = {
        "infno": "9001", "msgid": "H43111100255202611221000000001", "mdtrtarea_admvs": "431199",
        "insuplc_admdvs": "", "recer_sys_code": "YBXT", "dev_no": "", "dev_safe_info": "", "cainfo": "",
        "signtype": "", "infver": "V1.0", "opter_type": "1", "opter": "0001", "opter_name": "测试",
        "inf_time": "2026-11-22 10:00:00", "fixmedins_code": "H43111100255", "fixmedins_name": "测试医院",
        "sign_no": "", "input": {"signIn": {"opter_no": "0001", "mac": "00-16-3E-00-00-01", "ip": "127.0.0.1"}},
    }
    doc.update(changes)
    return doc


def _post(centre, document, token=TOKEN):
    body = dumps(document).encode()
    headers = TifSigner(PAASID, token).headers(body, document.get("infno", ""))
    response = httpx.post(centre.url + SINGLE, content=body, headers=headers, trust_env=False)
    return response.status_code, loads(response.text)


def test_sign_in_then_reused_msgid_is_refused(centre):
    status, reply = _post(centre, _envelope())
    assert status == 200 and reply["infcode"] == 0
    assert reply["output"]["signinoutb"]["sign_no"]
    assert len(reply["inf_refmsgid"]) == 30 and len(reply["respond_time"]) == 17
    _, again = _post(centre, _envelope())
    assert again["infcode"] == -1 and "重复" in again["err_msg"]


def test_wrong_signature_is_refused_at_the_gateway(centre):
    status, reply = _post(centre, _envelope(), token="wrong")
    assert status == 401 and "签名不一致" in reply["message"]
    assert centre.ledger.faults["gateway_refused"] == 1


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"msgid": "H4311110025520261122100000001"}, "格式错误"),
        ({"msgid": "H99999999999202611221000000001"}, "格式错误"),
        ({"inf_time": "2026/11/22 10:00"}, "inf_time"),
        ({"infver": ""}, "[infver]不能为空"),
        ({"opter_type": "7"}, "opter_type"),
        ({"mdtrtarea_admvs": "4311"}, "6位医保区划"),
        ({"infno": "2301", "msgid": "H43111100255202611221000000009", "input": {"feedetail": []}}, "签到"),
    ],
)
def test_malformed_envelopes_are_refused(centre, changes, words):
    _, reply = _post(centre, _envelope(**changes))
    assert reply["infcode"] == -1
    assert words in reply["err_msg"]


# -- driving the centre's handlers over HTTP, as the adapter does ------------------------------
_SERIAL = itertools.count(1)
_BASE = datetime(2026, 11, 22, 10, 0, 0)
_NEVER_SAID = ("过期", "无效")


def _msgid() -> str:
    number = next(_SERIAL)
    return f"H43111100255{_BASE + timedelta(seconds=number):%Y%m%d%H%M%S}{number % 10000:04d}"


class _Caller:
    """One signed-in institution talking to the centre (each message with a fresh msgid)."""

    def __init__(self, centre):
        self.centre = centre
        self.sign_no = ""
        self.sign_in()

    def sign_in(self) -> None:
        _, reply = self.raw("9001", {"signIn": {"opter_no": "0001", "mac": "00-16-3E-00-00-01", "ip": "127.0.0.1"}})
        self.sign_no = reply["output"]["signinoutb"]["sign_no"]

    def raw(self, infno, data):
        document = _envelope(infno=infno, msgid=_msgid(), sign_no=self.sign_no, input=data)
        body = dumps(document).encode()
        headers = TifSigner(PAASID, TOKEN).headers(body, infno)
        response = httpx.post(self.centre.url + SINGLE, content=body, headers=headers, trust_env=False)
        try:
            return response.status_code, loads(response.text)
        except ValueError:
            return response.status_code, response.text

    def call(self, infno, data):
        """The reply of an answered request (HTTP 200, an envelope)."""
        status, reply = self.raw(infno, data)
        assert status == 200 and isinstance(reply, dict), (status, reply)
        return reply

    def ok(self, infno, data):
        reply = self.call(infno, data)
        assert reply["infcode"] == 0, reply["err_msg"]
        return reply["output"]

    def refused(self, infno, data) -> str:
        reply = self.call(infno, data)
        assert reply["infcode"] == -1, reply
        return reply["err_msg"]


@pytest.fixture
def caller(centre):
    return _Caller(centre)


def _fee_line(sn, mdtrt_id="431199000000000001", amount="10.00", **changes):
    return {"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": "P0001", "med_type": "21",
            "fee_ocur_time": "2026-11-22 09:00:00", "med_list_codg": "XA01AAA0123010100001",
            "medins_list_codg": "YP001", "det_item_fee_sumamt": amount, "cnt": "1", "pric": amount,
            "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D431199000401",
            "bilg_dr_name": "张医生", **changes}


def _registration(ipt_otp_no="MZ0001", begntime="2026-11-22 08:00:00"):
    return {"data": {"psn_no": "P0002", "insutype": "310", "begntime": begntime, "mdtrt_cert_type": "02",
                     "mdtrt_cert_no": "431199197501011234", "psn_cert_type": "01", "certno": "431199197501011234",
                     "psn_type": "11", "psn_name": "王五", "ipt_otp_no": ipt_otp_no, "dept_code": "NK01",
                     "dept_name": "内科", "caty": "A03"}}


def _outpatient_line(sn, mdtrt_id, bchno):
    return {"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": "P0002", "chrg_bchno": bchno, "rx_circ_flag": "0",
            "fee_ocur_time": "2026-11-22 08:30:00", "med_list_codg": "XA01AAA0123010100001",
            "medins_list_codg": "YP001", "det_item_fee_sumamt": "5.00", "cnt": "1", "pric": "5.00",
            "bilg_dept_codg": "NK01", "bilg_dept_name": "内科", "bilg_dr_codg": "D431199000401",
            "bilg_dr_name": "张医生", "hosp_appr_flag": "1"}


def _admission(ipt_no="ZY0001", begntime="2026-11-20 09:00:00", certno="431199198002021223"):
    return {"mdtrtinfo": {"psn_no": "P0003", "insutype": "310", "begntime": begntime, "mdtrt_cert_type": "02",
                          "cert_type": "01", "certno": certno, "med_type": "21", "ipt_no": ipt_no,
                          "atddr_no": "D431199000401", "chfpdr_name": "张医生", "adm_diag_dscr": "肺炎",
                          "adm_dept_codg": "NK01", "adm_dept_name": "内科", "adm_bed": "12",
                          "dscg_maindiag_code": "J18.900", "dscg_maindiag_name": "肺炎", "insuplc_admdvs": "431199",
                          "mdtrtarea_admvs": "431199"},
            "diseinfo": [{"psn_no": "P0003", "diag_type": "1", "maindiag_flag": "1", "diag_srt_no": "1",
                          "diag_code": "J18.900", "diag_name": "肺炎", "diag_dept": "内科",
                          "dise_dor_no": "D431199000401", "dise_dor_name": "张医生",
                          "diag_time": "2026-11-20 09:00:00"}]}


def test_the_envelope_is_checked_against_the_editions_request_table(centre):
    # The edition's lengths (fixmedins_name 20; infno 4, read as 6 by the region because the
    # edition's own 1306A and 100001 are longer), not a hand-written copy of them.
    _, long_name = _post(centre, _envelope(fixmedins_name="湖南省示例县第一人民医院附属医院门诊部住院部"))
    assert long_name["infcode"] == -1 and "报文头[fixmedins_name]" in long_name["err_msg"]
    assert "at most 20" in long_name["err_msg"]
    _, long_infno = _post(centre, _envelope(infno="9001000", msgid="H43111100255202611221000000002"))
    assert long_infno["infcode"] == -1 and "报文头[infno]" in long_infno["err_msg"]
    _, no_mac = _post(centre, _envelope(msgid="H43111100255202611221000000003",
                                        input={"signIn": {"opter_no": "0001", "mac": "", "ip": "127.0.0.1"}}))
    assert no_mac["infcode"] == -1 and "signIn.mac" in no_mac["err_msg"]  # the 9001 table requires it


def test_2302_withdraws_exactly_the_lines_named_all_or_nothing(centre, caller):
    caller.ok("2301", {"feedetail": [_fee_line("1"), _fee_line("2"), _fee_line("3")]})
    mdtrt_id = "431199000000000001"

    def named(*numbers):
        return {"data": [{"feedetl_sn": sn, "mdtrt_id": mdtrt_id, "psn_no": "P0001"} for sn in numbers]}

    assert caller.ok("2302", named("1", "2")) is None
    assert set(centre.ledger.fee_lines) == {(mdtrt_id, "3")} and centre.ledger.cancelled_lines["2302"] == 2
    # a line not held refuses the whole request: line 3 stays
    assert "费用明细[9]不存在" in caller.refused("2302", named("3", "9"))
    assert "费用明细[1]不存在" in caller.refused("2302", named("1"))
    # "0000" would delete every line of the visit at a real centre: refused here, nothing withdrawn
    words = caller.refused("2302", named("0000"))
    assert "0000" in words and "不存在" not in words
    assert set(centre.ledger.fee_lines) == {(mdtrt_id, "3")} and centre.ledger.cancelled_lines["2302"] == 2


def test_a_repeated_2301_line_is_refused_unless_the_whole_message_repeats(centre, caller):
    lines = [_fee_line("1"), _fee_line("2")]
    first = caller.ok("2301", {"feedetail": lines})
    # the same lines again (another msgid): kept once, answered again, counted as a duplicate
    assert caller.ok("2301", {"feedetail": lines}) == first
    assert len(centre.ledger.fee_lines) == 2
    assert centre.ledger.duplicate_lines == 2 and centre.ledger.duplicates["2301"] == 1
    # a held line with a new one: refused, naming the held line; the new one is not taken
    words = caller.refused("2301", {"feedetail": [_fee_line("3"), _fee_line("2")]})
    assert "已存在" in words and "[2]" in words
    # a held line changed: refused as well
    assert "[1]已存在" in caller.refused("2301", {"feedetail": [_fee_line("1", amount="12.00")]})
    assert set(key[1] for key in centre.ledger.fee_lines) == {"1", "2"} and centre.ledger.duplicate_lines == 2


def test_2205_withdraws_one_charge_batch(centre, caller):
    mdtrt_id = caller.ok("2201", _registration())["data"]["mdtrt_id"]
    caller.ok("2204", {"feedetail": [_outpatient_line("1", mdtrt_id, "B1"), _outpatient_line("2", mdtrt_id, "B1")]})
    caller.ok("2204", {"feedetail": [_outpatient_line("3", mdtrt_id, "B2")]})

    def batch(bchno):
        return {"data": {"mdtrt_id": mdtrt_id, "chrg_bchno": bchno, "psn_no": "P0002"}}

    words = caller.refused("2205", batch("0000"))  # every unsettled line at a real centre
    assert "0000" in words and "不存在" not in words
    assert caller.ok("2205", batch("B1")) is None
    assert {key[1] for key in centre.ledger.fee_lines} == {"3"} and centre.ledger.cancelled_lines["2205"] == 2
    assert "收费批次号[B1]不存在或已撤销" in caller.refused("2205", batch("B1"))
    # 已参与结算的明细不能撤销 (the edition's note)
    centre.add_settlement({"setl_id": "S431199000000001", "mdtrt_id": mdtrt_id, "psn_no": "P0002", "insutype": "310",
                           "clr_type": "11", "setl_date": "2026-11-22", "medfee_sumamt": "5.00",
                           "fund_pay_sumamt": "0", "acct_pay": "0", "cash_payamt": "5.00", "refd_setl_flag": "0"})
    assert "已参与结算" in caller.refused("2205", batch("B2"))


def test_3507_deletes_the_batchs_data_of_its_type(centre, caller):
    stock = {"invinfo": {"med_list_codg": "XA01AAA0123010100001", "fixmedins_hilist_id": "YP001",
                         "fixmedins_hilist_name": "阿莫西林胶囊", "rx_flag": "0", "invdate": "2026-11-01",
                         "inv_cnt": "10", "fixmedins_bchno": "B1", "manu_date": "2026-01-01",
                         "expy_end": "2027-12-31"}}
    caller.ok("3501", stock)
    assert "没有可删除" in caller.refused("3507", {"data": {"fixmedins_bchno": "B1", "inv_data_type": "2"}})
    assert caller.ok("3507", {"data": {"fixmedins_bchno": "B1", "inv_data_type": "1"}}) is None
    assert [key[0] for key in centre.ledger.deleted_inventory] == ["3501"]
    assert "没有可删除" in caller.refused("3507", {"data": {"fixmedins_bchno": "B1", "inv_data_type": "1"}})


def test_2601_reverses_an_admission_once(centre, caller):
    document = _admission()
    msgid = _msgid()
    body = dumps(_envelope(infno="2401", msgid=msgid, sign_no=caller.sign_no, input=document)).encode()
    response = httpx.post(centre.url + SINGLE, content=body, headers=TifSigner(PAASID, TOKEN).headers(body, "2401"),
                          trust_env=False)
    assert loads(response.text)["infcode"] == 0 and len(centre.ledger.visits) == 1

    def reversal(oinfno="2401", psn_no="P0003"):
        return {"data": {"psn_no": psn_no, "omsgid": msgid, "oinfno": oinfno}}

    assert "2304" in caller.refused("2601", reversal(oinfno="2304"))  # not what the original was
    assert caller.ok("2601", reversal()) is None
    assert centre.ledger.visits == {} and centre.ledger.reversals == 1
    assert f"原交易[{msgid}]不存在或已冲正" in caller.refused("2601", reversal())
    never = {"data": {"psn_no": "P0003", "omsgid": _msgid(), "oinfno": "2401"}}
    assert "不存在或已冲正" in caller.refused("2601", never)


def test_inquiries_take_the_editions_inputs_and_answer_its_outputs(centre, caller):
    mdtrt_id = caller.ok("2201", _registration(begntime="2026-11-22 08:00:00"))["data"]["mdtrt_id"]
    stay = caller.ok("2401", _admission(begntime="2026-11-20 09:00:00"))["result"]["mdtrt_id"]
    caller.ok("2301", {"feedetail": [_fee_line("1", stay), _fee_line("2", stay, amount="3.50")]})

    # 5201: psn_no, begntime, endtime and med_type are required; the window is on begntime
    assert "入参校验失败" in caller.refused("5201", {"data": {"psn_no": "P0002"}})
    day = {"psn_no": "P0002", "begntime": "2026-11-22 00:00:00", "endtime": "2026-11-22 23:59:59", "med_type": "11"}
    [visit] = caller.ok("5201", {"data": day})["mdtrtinfo"]
    assert (visit["mdtrt_id"], visit["ipt_otp_no"], visit["psn_name"], visit["gend"]) == (
        mdtrt_id, "MZ0001", "王五", "1")
    assert caller.ok("5201", {"data": {**day, "begntime": "2026-11-22 08:00:01"}})["mdtrtinfo"] == []
    assert caller.ok("5201", {"data": {**day, "med_type": "14"}})["mdtrtinfo"] == []

    # 5303: begntime and endtime required, on the admission time; the person is optional
    assert "入参校验失败" in caller.refused("5303", {"data": {"psn_no": "P0003"}})
    week = {"begntime": "2026-11-16 00:00:00", "endtime": "2026-11-22 23:59:59"}
    [inside] = caller.ok("5303", {"data": week})["data"]
    assert (inside["mdtrt_id"], inside["begndate"], inside["gend"], inside["brdy"]) == (
        stay, "2026-11-20", "2", "1980-02-02")
    assert caller.ok("5303", {"data": {**week, "begntime": "2026-11-21 00:00:00"}})["data"] == []
    assert caller.ok("5303", {"data": {**week, "psn_no": "P0002"}})["data"] == []

    # 5204: psn_no, setl_id and mdtrt_id required; the lines of the settlement, a list with no node
    assert "data.setl_id" in caller.refused("5204", {"data": {"psn_no": "P0003", "mdtrt_id": stay}})
    query = {"psn_no": "P0003", "setl_id": "S431199000000002", "mdtrt_id": stay}
    assert "不存在" in caller.refused("5204", {"data": query})
    centre.add_settlement({"setl_id": "S431199000000002", "mdtrt_id": stay, "psn_no": "P0003", "insutype": "310",
                           "clr_type": "21", "setl_date": "2026-11-22", "medfee_sumamt": "13.50",
                           "fund_pay_sumamt": "10", "acct_pay": "0", "cash_payamt": "3.50", "refd_setl_flag": "0"})
    lines = caller.ok("5204", {"data": query})
    assert isinstance(lines, list) and sorted(line["feedetl_sn"] for line in lines) == ["1", "2"]
    assert {line["setl_id"] for line in lines} == {"S431199000000002"}

    assert {infno: sorted(problems) for infno, problems in centre.ledger.output_problems.items() if problems} == {}


def test_busy_centre_refuses_without_processing(centre, caller):
    set_faults(centre, busy_rate=1.0)
    reply = caller.call("2301", {"feedetail": [_fee_line("1")]})
    assert (reply["infcode"], reply["err_msg"]) == (-1, "系统繁忙,请稍后再试")
    assert centre.ledger.fee_lines == {} and centre.ledger.requests["2301"] == 0
    assert centre.ledger.faults["busy"] == 1


@pytest.mark.parametrize("fault", ["5xx", "garbage", "no_infcode"])
def test_faults_after_commit_spoil_the_answer_of_what_was_committed(centre, caller, fault):
    set_faults(centre, **{f"commit_then_{fault}_rate": 1.0})
    status, reply = caller.raw("2301", {"feedetail": [_fee_line("1")]})
    assert set(centre.ledger.fee_lines) == {("431199000000000001", "1")}  # committed
    assert centre.ledger.faults[f"commit_then_{fault}"] == 1
    if fault == "5xx":
        assert status in (502, 504) and isinstance(reply, str)
    elif fault == "garbage":
        assert status == 200 and isinstance(reply, str)
        with pytest.raises(ValueError):
            loads(reply)
    else:
        assert status == 200 and "infcode" not in reply and reply["output"]["result"][0]["feedetl_sn"] == "1"


def test_a_foreign_answer_is_another_requests(centre, caller):
    caller.ok("2301", {"feedetail": [_fee_line("1")]})
    set_faults(centre, commit_then_foreign_rate=1.0)
    reply = caller.call("2301", {"feedetail": [_fee_line("2")]})
    assert reply["infcode"] == 0 and [line["feedetl_sn"] for line in reply["output"]["result"]] == ["1"]
    assert ("431199000000000001", "2") in centre.ledger.fee_lines  # committed all the same
    # with no earlier answer to hand out, the request's own answer names other lines
    first = caller.call("2401", _admission())
    assert first["infcode"] == 0 and first["output"]["result"]["mdtrt_id"].startswith("X")
    assert centre.ledger.faults["commit_then_foreign"] == 2


def test_the_after_commit_share_splits_into_its_kinds(centre, caller):
    set_faults(centre, after_commit_fault_rate=1.0, seed=4)
    for number in range(40):
        caller.raw("2301", {"feedetail": [_fee_line(str(number + 1))]})
    kinds = {kind: centre.ledger.faults[f"commit_then_{kind}"] for kind in ("5xx", "garbage", "no_infcode", "foreign")}
    assert sum(kinds.values()) == 40 and all(kinds.values()), kinds
    assert len(centre.ledger.fee_lines) == 40  # every one committed


def test_a_restart_forgets_every_session(centre, caller):
    old = caller.sign_no
    centre.restart()
    words = caller.refused("2301", {"feedetail": [_fee_line("1")]})
    assert words == "签到信息不存在,请重新签到" and not any(word in words for word in _NEVER_SAID)
    assert centre.ledger.faults["restart"] == 1 and centre.ledger.forgotten_session_refusals == 1
    caller.sign_in()
    assert caller.sign_no != old and caller.ok("2301", {"feedetail": [_fee_line("1")]})["result"]


def test_a_full_conformance_run_is_answered_in_the_editions_output_shapes(make_adapter, centre, tmp_path):
    # Every upload of the sample HIS through the adapter, the settlements the counter made, the
    # inquiries after them (5201, 5303, 5204, 4103) and the paged catalogue queries: the centre
    # takes every request (its table checks are on) and each of its answers fits the output
    # table of its transaction (the deviations it declares aside: adapter.rehearsal.centre.tables).
    from adapter.rehearsal.sample_his import counter_settlements, generate_sample_his
    from tests.conftest import import_sample_mapping
    from tests.helpers import run_until_done
    from tests.test_conformance import UPLOADS

    his = generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=8, lines_per_visit=6, seed=5,
                              unmapped_share=0, invalid_share=0, malformed_share=0)
    centre.ledger.settled_at_counter(counter_settlements(his.url))
    adapter = make_adapter(his_url=his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
                           his_extra="transactions = [" + ", ".join(f'"{i}"' for i in UPLOADS) + "]")
    import_sample_mapping(adapter, his)
    run_until_done(adapter)
    for kind in ("1312", "1318"):
        adapter.catalog_sync.sync(kind)

    caller = _Caller(centre)
    ledger = centre.ledger
    for setl_id, held in list(ledger.settlement_lists.items()):
        answer = caller.ok("4103", {"data": {"psn_no": held["setlinfo"]["psn_no"], "setl_id": setl_id}})
        assert answer["setlinfo"]["setl_id"] == setl_id and isinstance(answer["setlinfo"], dict)
    for setl_id, row in list(ledger.settlements.items()):
        lines = caller.ok("5204", {"data": {"psn_no": row["psn_no"], "setl_id": setl_id, "mdtrt_id": row["mdtrt_id"]}})
        assert isinstance(lines, list) and lines
    for mdtrt_id, visit in list(ledger.visits.items()):
        day = str(visit["begntime"])[:10]
        window = {"begntime": f"{day} 00:00:00", "endtime": f"{day} 23:59:59"}
        if visit.get("outpatient"):
            found = caller.ok("5201", {"data": {"psn_no": visit["psn_no"], "med_type": visit["med_type"], **window}})
            assert mdtrt_id in {v["mdtrt_id"] for v in found["mdtrtinfo"]}
        else:
            found = caller.ok("5303", {"data": {"psn_no": visit["psn_no"], **window}})
            assert (mdtrt_id in {s["mdtrt_id"] for s in found["data"]}) is not visit["discharged"]

    assert ledger.settlement_lists and ledger.settlements and ledger.rejected == {}, dict(ledger.rejected)
    asked = {"1312", "1318", "4103", "5201", "5204", "5303", *UPLOADS}
    assert asked <= set(ledger.accepted)
    assert {infno: sorted(problems) for infno, problems in ledger.output_problems.items() if problems} == {}


def test_a_detail_file_read_at_once_is_the_file_read_line_by_line():
    from adapter.rehearsal.centre.reconcile import _detail_file, _detail_file_at_once, _detail_file_by_line

    def lists(sent: Any) -> Any:  # the lines as lists (read at once they are tuples)
        return {setl_id: list(fields) for setl_id, fields in sent.items()}

    good = "S1\tM1\tP1\t1.00\t0.5\t0\t0\nS2\tM2\tP2\t2\t1\t0\t1\nS1\tM1\tP1\t9.00\t0.5\t0\t0\n"
    assert lists(_detail_file_at_once(good)) == _detail_file_by_line(good) == {
        "S1": ["S1", "M1", "P1", "1.00", "0.5", "0", "0"], "S2": ["S2", "M2", "P2", "2", "1", "0", "1"]}
    assert list(_detail_file_at_once(good) or {}) == ["S1", "S2"]
    # a blank line, a line break splitlines() knows, a value right only once stripped: read line by line
    for other in (good + "\n", good.replace("\n", "\r", 1), good.replace("\tM2\t", "\t " + "M" * 30 + "\t")):
        assert _detail_file_at_once(other) is None
        assert lists(_detail_file(other)) == lists(_detail_file_by_line(other))
    with pytest.raises(Refusal, match="明细文件第2行"):
        _detail_file(good.replace("\t2\t", "\t2.001\t"))


def test_the_centre_totals_read_amounts_of_any_kind():
    ledger = CentreLedger()
    ledger.settlements = {
        "S1": {"setl_id": "S1", "insutype": "310", "clr_type": "21", "setl_date": "2026-11-02", "medfee_sumamt": "1.10",
               "fund_pay_sumamt": Decimal("1"), "acct_pay": None, "cash_payamt": 2, "refd_setl_flag": "0"},
        "S2": {"setl_id": "S2", "insutype": "310", "clr_type": "21", "setl_date": "2026-11-03",
               "medfee_sumamt": Decimal("2.20"), "fund_pay_sumamt": Decimal("0.5"), "acct_pay": Decimal("0"),
               "cash_payamt": Decimal("1"), "refd_setl_flag": "0"},
    }
    totals = ledger.statement_totals("2026-11-01", "2026-11-30", "431199")
    assert totals == {("431199", "310", "21"): {"medfee_sumamt": Decimal("3.30"), "fund_pay_sumamt": Decimal("1.5"),
                                                "acct_pay": Decimal("0"), "cash_payamt": Decimal("3"), "count": 2}}
