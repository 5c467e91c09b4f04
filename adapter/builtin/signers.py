"""The gateway schemes the core ships (reference §2.2); regions pick one by name."""

from __future__ import annotations

from collections.abc import Callable

from adapter.outbound.signing import CsbSigner, TifSigner, ZhejiangSigner
from adapter.plugin import hookimpl
from adapter.plugin.api import SignerSpec


@hookimpl
def adapter_register_signers(register: Callable[[SignerSpec], None]) -> None:
    register(
        SignerSpec(
            name="tif",
            description="TIF gateway: x-tif-* headers, SHA-256(ts + token + nonce + ts)",
            credentials=("paasid", "token"),
            factory=TifSigner.from_credentials,
        )
    )
    register(
        SignerSpec(
            name="csb",
            description="CSB gateway: _api_* headers, base64 HMAC-SHA1 over the sorted params, ms time",
            credentials=("access_key", "secret_key"),
            factory=CsbSigner.from_credentials,
        )
    )
    register(
        SignerSpec(
            name="zhejiang",
            description="Zhejiang gateway: x-ca-key, x-ca-signature = ts:HEX(HMAC-SM3(secret, ts\\n body))",
            credentials=("key", "secret"),
            factory=ZhejiangSigner.from_credentials,
        )
    )
