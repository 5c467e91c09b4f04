"""Gateway signing schemes (reference §2.2). Each is a small class with an injectable clock.

TIF (Tencent government-integration framework, Guangdong/Shenzhen/Hebei):
``x-tif-signature = lower-hex(SHA-256(timestamp + token + nonce + timestamp))`` with the
timestamp in Unix seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping

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
    def from_credentials(cls, credentials: Mapping[str, str]) -> TifSigner:
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
    if not timestamp.isdigit() or abs(now - int(timestamp)) > max_skew_seconds:
        raise SecurityError("签名时间戳超时! (timestamp outside the allowed window)")
    if not hmac.compare_digest(tif_signature(timestamp, token, nonce), signature.lower()):
        raise SecurityError("签名不一致! (x-tif-signature does not match)")
