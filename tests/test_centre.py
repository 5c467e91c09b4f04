"""The simulated centre refuses what the real one would: bad signatures, malformed envelopes,
reused msgids, calls without sign-in."""

from __future__ import annotations

import httpx
import pytest

from adapter.jsonio import dumps, loads
from adapter.outbound.signing import TifSigner
from tests.conftest import PAASID, TOKEN

SINGLE = "/fsi/api/rsfComIfsService/callService"


def _envelope(**changes):
    doc = {
        "infno": "9001", "msgid": "H43111100255202611221000000001", "mdtrtarea_admvs": "431199",
        "insuplc_admdvs": "", "recer_sys_code": "YBXT", "dev_no": "", "dev_safe_info": "", "cainfo": "",
        "signtype": "", "infver": "V1.0", "opter_type": "1", "opter": "0001", "opter_name": "测试",
        "inf_time": "2026-11-22 10:00:00", "fixmedins_code": "H43111100255", "fixmedins_name": "测试医院",
        "sign_no": "", "input": {"signIn": {"opter_no": "0001", "mac": "", "ip": "127.0.0.1"}},
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
