"""Gateway schemes (reference §2.2) against values computed independently with openssl, and
the simulated gateway refusing what a real one refuses (wrong key, wrong signature, stale time).

Expected values were produced with:
  printf '%s' '_api_access_key=AK20261122&_api_name=2301&_api_timestamp=1795000000123&_api_version=1.0.0' \
    | openssl dgst -sha1 -hmac 'SK-for-tests' -binary | base64
  printf '1795000000\\n<body>' | openssl dgst -sm3 -hmac 'zj-secret'
"""

from __future__ import annotations

import pytest

from adapter.errors import SecurityError
from adapter.outbound.signing import (
    CsbSigner,
    ZhejiangSigner,
    csb_string_to_sign,
    verify_csb,
    verify_gateway,
    verify_zhejiang,
)

CSB_EXPECTED = "yLhuRXVr1bhFFSu+DBVhF1AUZM0="
ZJ_BODY = '{"infno":"9001","input":{"signIn":{"opter_no":"0001"}},"fixmedins_name":"测试医院"}'.encode()
ZJ_EXPECTED = "1795000000:2EAE228E503FFA8CF77F4C79E7BAD6AE87BA327C1702C6B59911E4B7DF627035"


def test_csb_headers_match_openssl_hmac_sha1():
    signer = CsbSigner("AK20261122", "SK-for-tests", "1.0.0", clock=lambda: 1795000000.123)
    headers = signer.headers(b'{"any": "body"}', "2301")
    assert headers == {
        "_api_name": "2301",
        "_api_version": "1.0.0",
        "_api_timestamp": "1795000000123",
        "_api_access_key": "AK20261122",
        "_api_signature": CSB_EXPECTED,
    }
    # The string to sign is the sorted k=v list, without the signature itself.
    assert csb_string_to_sign(headers) == (
        "_api_access_key=AK20261122&_api_name=2301&_api_timestamp=1795000000123&_api_version=1.0.0"
    )


def test_csb_verifier_accepts_and_refuses():
    signer = CsbSigner("AK20261122", "SK-for-tests", clock=lambda: 1795000000.123)
    headers = signer.headers(b"{}", "2401")
    secrets = {"AK20261122": "SK-for-tests"}
    assert verify_csb(headers, b"{}", secrets, 1795000010.0, 300) == "2401"
    with pytest.raises(SecurityError, match="签名时间戳超时"):
        verify_csb(headers, b"{}", secrets, 1795000000.0 + 1800, 300)
    with pytest.raises(SecurityError, match="签名不一致"):
        verify_csb({**headers, "_api_name": "2301"}, b"{}", secrets, 1795000010.0, 300)
    with pytest.raises(SecurityError, match="非法用户"):
        verify_csb(headers, b"{}", {"other": "x"}, 1795000010.0, 300)
    with pytest.raises(SecurityError, match="缺少服务网关的请求头"):
        verify_csb({"_api_name": "2401"}, b"{}", secrets, 1795000010.0, 300)


def test_zhejiang_signature_matches_openssl_hmac_sm3():
    signer = ZhejiangSigner("H33018300564", "zj-secret", clock=lambda: 1795000000.9)
    assert signer.headers(ZJ_BODY, "9001") == {
        "x-ca-key": "H33018300564",
        "x-ca-signature": ZJ_EXPECTED,
    }


def test_zhejiang_verifier_signs_the_exact_body():
    signer = ZhejiangSigner("H33018300564", "zj-secret", clock=lambda: 1795000000)
    headers = signer.headers(ZJ_BODY, "9001")
    secrets = {"H33018300564": "zj-secret"}
    verify_zhejiang(headers, ZJ_BODY, secrets, 1795000001, 300)
    with pytest.raises(SecurityError, match="签名不一致"):
        verify_zhejiang(headers, ZJ_BODY.replace(b"0001", b"0002"), secrets, 1795000001, 300)
    with pytest.raises(SecurityError, match="签名时间戳超时"):
        verify_zhejiang(headers, ZJ_BODY, secrets, 1795000000 - 600, 300)


def test_unknown_scheme_is_refused_by_the_simulated_gateway():
    with pytest.raises(SecurityError, match="does not know the scheme"):
        verify_gateway("soap-wss", {}, b"", {}, 0, 300)
