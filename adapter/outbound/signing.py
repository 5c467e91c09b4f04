"""Gateway signing schemes (reference §2.2). Each is a small class with an injectable clock,
and each has a verifier with the gateway's own refusal texts (used by the simulated centre).

- TIF (Tencent government-integration framework; Guangdong/Shenzhen/Hebei):
  ``x-tif-signature = lower-hex(SHA-256(ts + token + nonce + ts))``, ts in Unix seconds.
- CSB (Alibaba cloud service bus; Hunan/Jiangxi/Jiangsu): ``_api_*`` headers and
  ``_api_signature = base64(HMAC-SHA1(secret_key, sorted "k=v&..." of the _api_* params))``,
  timestamp in Unix milliseconds.
- Zhejiang: ``x-ca-key`` and ``x-ca-signature = ts ":" HEX-UPPER(HMAC-SM3(secret, ts "\n" body))``,
  ts in Unix seconds, over the exact UTF-8 body bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from adapter.errors import SecurityError

Clock = Callable[[], float]
NonceSource = Callable[[], str]


def _random_nonce() -> str:
    return secrets.token_hex(16)


def tif_signature(timestamp: str, token: str, nonce: str) -> str:
    """The TIF signature over the UTF-8 bytes, as 64 lower-case hex characters."""
    return hashlib.sha256((timestamp + token + nonce + timestamp).encode("utf-8")).hexdigest()


class TifSigner:
    """Adds x-tif-paasid, x-tif-timestamp, x-tif-nonce and x-tif-signature."""

    def __init__(
        self,
        paasid: str,
        token: str,
        clock: Clock = time.time,
        nonce: NonceSource = _random_nonce,
    ) -> None:
        if not paasid or not token:
            raise SecurityError("the TIF scheme needs both paasid and token credentials")
        self._paasid = paasid
        self._token = token
        self._clock = clock
        self._nonce = nonce

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str], options: Mapping[str, str]) -> TifSigner:
        return cls(credentials.get("paasid", ""), credentials.get("token", ""))

    def headers(self, body: bytes, infno: str) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        nonce = self._nonce()
        return {
            "x-tif-paasid": self._paasid,
            "x-tif-timestamp": timestamp,
            "x-tif-nonce": nonce,
            "x-tif-signature": tif_signature(timestamp, self._token, nonce),
        }


def verify_tif(
    headers: Mapping[str, str],
    tokens: Mapping[str, str],
    now: float,
    max_skew_seconds: float,
) -> None:
    """Check TIF headers as the gateway does; raises :class:`SecurityError` with its text."""
    lowered = {key.lower(): value for key, value in headers.items()}
    paasid = lowered.get("x-tif-paasid")
    timestamp = lowered.get("x-tif-timestamp")
    nonce = lowered.get("x-tif-nonce")
    signature = lowered.get("x-tif-signature")
    if not (paasid and timestamp and nonce and signature):
        raise SecurityError("缺少服务网关的请求头! (missing x-tif-* headers)")
    token = tokens.get(paasid)
    if token is None:
        raise SecurityError(f"非法用户! (unknown paasid {paasid})")
    _check_window(timestamp, now, max_skew_seconds)
    if not hmac.compare_digest(tif_signature(timestamp, token, nonce), signature.lower()):
        raise SecurityError("签名不一致! (x-tif-signature does not match)")


def _check_window(stamp: str, now: float, max_skew_seconds: float, scale: int = 1) -> None:
    if not stamp.isdigit() or abs(now - int(stamp) / scale) > max_skew_seconds:
        raise SecurityError("签名时间戳超时! (timestamp outside the allowed window)")


# -- CSB -----------------------------------------------------------------------------------
def csb_string_to_sign(params: Mapping[str, str]) -> str:
    """``k=v`` pairs of the ``_api_*`` parameters (signature excluded), sorted by key, joined by &."""
    return "&".join(f"{key}={params[key]}" for key in sorted(params) if key != "_api_signature")


def csb_signature(secret_key: str, params: Mapping[str, str]) -> str:
    """Base64 of HMAC-SHA1 over :func:`csb_string_to_sign`."""
    digest = hmac.new(
        secret_key.encode("utf-8"), csb_string_to_sign(params).encode("utf-8"), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


class CsbSigner:
    """Adds _api_name (= infno), _api_version, _api_timestamp (ms), _api_access_key, _api_signature."""

    def __init__(
        self, access_key: str, secret_key: str, api_version: str = "1.0.0", clock: Clock = time.time
    ) -> None:
        if not access_key or not secret_key:
            raise SecurityError("the CSB scheme needs both access_key and secret_key credentials")
        self._access_key = access_key
        self._secret_key = secret_key
        self._api_version = api_version
        self._clock = clock

    @classmethod
    def from_credentials(cls, credentials: Mapping[str, str], options: Mapping[str, str]) -> CsbSigner:
        return cls(
            credentials.get("access_key", ""),
            credentials.get("secret_key", ""),
            options.get("api_version", "1.0.0"),
        )

    def headers(self, body: bytes, infno: str) -> dict[str, str]:
        params = {
            "_api_name": infno,
            "_api_version": self._api_version,
            "_api_timestamp": str(int(self._clock() * 1000)),
            "_api_access_key": self._access_key,
        }
        params["_api_signature"] = csb_signature(self._secret_key, params)
        return params


def verify_csb(
    headers: Mapping[str, str], body: bytes, secrets_by_id: Mapping[str, str], now: float,
    max_skew_seconds: float,
) -> str:
    """Check CSB headers; returns _api_name (the infno the gateway routes on)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    names = ("_api_name", "_api_version", "_api_timestamp", "_api_access_key", "_api_signature")
    params = {name: lowered.get(name, "") for name in names}
    if not all(params.values()):
        raise SecurityError("缺少服务网关的请求头! (missing _api_* headers)")
    secret = secrets_by_id.get(params["_api_access_key"])
    if secret is None:
        raise SecurityError(f"非法用户! (unknown access key {params['_api_access_key']})")
    _check_window(params["_api_timestamp"], now, max_skew_seconds, scale=1000)
    if not hmac.compare_digest(csb_signature(secret, params), params["_api_signature"]):
        raise SecurityError("签名不一致! (_api_signature does not match)")
    return params["_api_name"]


# -- Zhejiang ------------------------------------------------------------------------------
def hmac_sm3_hex(secret: str, message: bytes) -> str:
    """HMAC with the SM3 hash (GB/T 32905), upper-case hex."""
    mac = crypto_hmac.HMAC(secret.encode("utf-8"), hashes.SM3())
    mac.update(message)
    return mac.finalize().hex().upper()


def zhejiang_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``ts:HEX`` where HEX = HMAC-SM3(secret, ts + "\n" + body)."""
    digest = hmac_sm3_hex(secret, timestamp.encode("ascii") + b"\n" + body)
    return f"{timestamp}:{digest}"


class ZhejiangSigner:
    """Adds x-ca-key (usually the institution code) and x-ca-signature."""

    def __init__(self, key: str, secret: str, clock: Clock = time.time) -> None:
        if not key or not secret:
            raise SecurityError("the zhejiang scheme needs both key and secret credentials")
        self._key = key
        self._secret = secret
        self._clock = clock

    @classmethod
    def from_credentials(
        cls, credentials: Mapping[str, str], options: Mapping[str, str]
    ) -> ZhejiangSigner:
        return cls(credentials.get("key", ""), credentials.get("secret", ""))

    def headers(self, body: bytes, infno: str) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        return {"x-ca-key": self._key, "x-ca-signature": zhejiang_signature(self._secret, timestamp, body)}


def verify_zhejiang(
    headers: Mapping[str, str], body: bytes, secrets_by_id: Mapping[str, str], now: float,
    max_skew_seconds: float,
) -> None:
    lowered = {key.lower(): value for key, value in headers.items()}
    key = lowered.get("x-ca-key")
    signature = lowered.get("x-ca-signature", "")
    if not key or ":" not in signature:
        raise SecurityError("缺少服务网关的请求头! (missing x-ca-key / x-ca-signature)")
    secret = secrets_by_id.get(key)
    if secret is None:
        raise SecurityError(f"非法用户! (unknown x-ca-key {key})")
    timestamp = signature.split(":", 1)[0]
    _check_window(timestamp, now, max_skew_seconds)
    if not hmac.compare_digest(zhejiang_signature(secret, timestamp, body), signature.upper()):
        raise SecurityError("签名不一致! (x-ca-signature does not match)")


def verify_gateway(
    scheme: str, headers: Mapping[str, str], body: bytes, secrets_by_id: Mapping[str, str],
    now: float, max_skew_seconds: float,
) -> None:
    """Verify one request under the named scheme (what the simulated centre's gateway does)."""
    if scheme == "tif":
        verify_tif(headers, secrets_by_id, now, max_skew_seconds)
    elif scheme == "csb":
        verify_csb(headers, body, secrets_by_id, now, max_skew_seconds)
    elif scheme == "zhejiang":
        verify_zhejiang(headers, body, secrets_by_id, now, max_skew_seconds)
    else:
        raise SecurityError(f"the simulated gateway does not know the scheme {scheme!r}")
