"""msgid, envelope and TIF signature against the reference (§1.2, §1.3, §2.2 A)."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

import pytest

from adapter.errors import SecurityError
from adapter.outbound.envelope import Institution, build_envelope, encode, parse_reply
from adapter.outbound.msgid import allocate_msgid
from adapter.outbound.signing import TifSigner, tif_signature, verify_tif
from adapter.plugin.manager import PluginHost
from adapter.state.store import StateStore

CODE = "H43111100255"


class SteppedClock:
    def __init__(self, *moments: str) -> None:
        self.moments = [datetime.strptime(m, "%Y-%m-%d %H:%M:%S") for m in moments]

    def __call__(self) -> datetime:
        return self.moments.pop(0) if len(self.moments) > 1 else self.moments[0]


def test_msgid_is_code_time_and_sequence(state_url):
    store = StateStore(state_url)
    clock = SteppedClock("2026-11-22 10:00:00", "2026-11-22 10:00:00", "2026-11-22 10:00:01")
    with store.begin() as conn:
        ids = [allocate_msgid(conn, CODE, now=clock) for _ in range(3)]
    assert ids == [
        "H43111100255202611221000000001",
        "H43111100255202611221000000002",
        "H43111100255202611221000010001",
    ]
    assert all(len(i) == 30 and re.fullmatch(r"H\d{11}\d{14}\d{4}", i) for i in ids)
    store.close()


def test_msgid_sequence_survives_restart_and_clock_going_back(state_url):
    first = StateStore(state_url)
    with first.begin() as conn:
        a = allocate_msgid(conn, CODE, now=lambda: datetime(2026, 11, 22, 10, 0, 5))
    first.close()
    again = StateStore(state_url)
    with again.begin() as conn:
        # The clock stepped back four seconds: the counter keeps counting, no id repeats.
        b = allocate_msgid(conn, CODE, now=lambda: datetime(2026, 11, 22, 10, 0, 1))
    again.close()
    assert a == "H43111100255202611221000050001"
    assert b == "H43111100255202611221000050002"


def test_msgid_borrows_next_second_after_9999(sqlite_state_url):
    store = StateStore(sqlite_state_url)
    fixed = lambda: datetime(2026, 11, 22, 10, 0, 0)  # noqa: E731
    with store.begin() as conn:
        ids = [allocate_msgid(conn, CODE, now=fixed) for _ in range(10_001)]
    assert len(set(ids)) == 10_001
    assert ids[9998].endswith("202611221000009999")
    assert ids[9999].endswith("202611221000010001")
    store.close()


def _institution() -> Institution:
    return Institution(CODE, "测试医院", "431199", "431199", "YBXT", "V1.0", "1", "0001", "张三")


def test_envelope_has_every_header_field_in_order():
    region = PluginHost.load().region("nhsa")
    envelope = build_envelope(
        infno="2301",
        msgid="H43111100255202611221000000001",
        institution=_institution(),
        region=region,
        input_payload={"feedetail": [{"cnt": Decimal("2.0000"), "pric": Decimal("0.860000")}]},
        sign_no="680003",
        inf_time=datetime(2026, 11, 22, 10, 0, 0),
    )
    assert list(envelope) == [
        "infno", "msgid", "mdtrtarea_admvs", "insuplc_admdvs", "recer_sys_code", "dev_no",
        "dev_safe_info", "cainfo", "signtype", "infver", "opter_type", "opter", "opter_name",
        "inf_time", "fixmedins_code", "fixmedins_name", "sign_no", "input",
    ]
    assert envelope["inf_time"] == "2026-11-22 10:00:00"
    body = encode(envelope).decode("utf-8")
    assert '"fixmedins_name":"测试医院"' in body  # ensure_ascii off
    assert '"cnt":2.0000,"pric":0.860000' in body  # amounts as exact numbers


@pytest.mark.parametrize("infcode", [0, "0", " 0"])
def test_reply_accepts_infcode_as_number_or_string(infcode):
    reply = parse_reply({"infcode": infcode, "inf_refmsgid": "x", "output": {}})
    assert reply.ok


def test_reply_failure_keeps_err_msg_whole():
    long = "MBS-cn.hsa.ais.common.exception.HygeiaException: 请求失败,错误原因：" + "x" * 300
    reply = parse_reply({"infcode": "-1", "err_msg": long, "output": None})
    assert not reply.ok and reply.err_msg == long


def test_reply_without_infcode_is_refused():
    with pytest.raises(ValueError, match="no infcode"):
        parse_reply({"code": 999})


def test_tif_signature_matches_independent_value():
    # Expected value computed outside Python:
    # printf '%s' "1700000000secret-token-123abc1234567890abcdef1700000000" | openssl dgst -sha256
    expected = "6aed34b46978862fa52979cedcbfcffb3e8b9b21545c048bb365248b3e3f6b3b"
    assert tif_signature("1700000000", "secret-token-123", "abc1234567890abcdef") == expected
    signer = TifSigner(
        "sztest_hosp", "secret-token-123", clock=lambda: 1700000000.7, nonce=lambda: "abc1234567890abcdef"
    )
    assert signer.headers(b"{}", "2301") == {
        "x-tif-paasid": "sztest_hosp",
        "x-tif-timestamp": "1700000000",
        "x-tif-nonce": "abc1234567890abcdef",
        "x-tif-signature": expected,
    }


def test_tif_verification_refuses_wrong_stale_and_unknown():
    signer = TifSigner("p", "t", clock=lambda: 1000.0, nonce=lambda: "n")
    headers = signer.headers(b"", "2301")
    verify_tif(headers, {"p": "t"}, now=1010.0, max_skew_seconds=300)
    with pytest.raises(SecurityError, match="签名不一致"):
        verify_tif(headers, {"p": "other"}, now=1010.0, max_skew_seconds=300)
    with pytest.raises(SecurityError, match="签名时间戳超时"):
        verify_tif(headers, {"p": "t"}, now=2000.0, max_skew_seconds=300)
    with pytest.raises(SecurityError, match="非法用户"):
        verify_tif(headers, {"q": "t"}, now=1010.0, max_skew_seconds=300)
    with pytest.raises(SecurityError, match="缺少"):
        verify_tif({}, {"p": "t"}, now=1010.0, max_skew_seconds=300)
