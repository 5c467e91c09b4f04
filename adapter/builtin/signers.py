"""The gateway schemes the core ships."""

from __future__ import annotations

from collections.abc import Callable

from adapter.outbound.signing import TifSigner
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
