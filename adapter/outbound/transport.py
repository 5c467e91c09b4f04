"""HTTP transport to the centre; the one place httpx exceptions are translated."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from adapter.errors import CentreServerError, GatewayRefused, OutcomeUnknown, TransientDeliveryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes


class HttpTransport:
    """POSTs bytes and returns the reply; network trouble becomes TransientDeliveryError."""

    def __init__(self, timeout_seconds: float, connect_timeout_seconds: float = 10.0) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(connect_timeout_seconds, timeout_seconds)),
            # Never pick up a proxy from the environment: the centre is reached directly
            # (through the hospital's front-end processor), never through a desktop proxy.
            trust_env=False,
        )

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        return self._send(lambda: self._client.post(url, content=body, headers=dict(headers)))

    def post_multipart(
        self, url: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]],
        headers: Mapping[str, str],
    ) -> HttpReply:
        """A multipart/form-data POST (9101's second form: a ``jsonStr`` part and a ``file``
        part). httpx writes the Content-Type with its boundary."""
        parts = {name: (filename, content, "application/octet-stream") for name, (filename, content) in files.items()}
        return self._send(
            lambda: self._client.post(url, data=dict(fields), files=parts, headers=dict(headers))
        )

    def _send(self, request: Callable[[], httpx.Response]) -> HttpReply:
        try:
            response = request()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: the request surely did not reach the centre.
            raise TransientDeliveryError(f"connection failed: {type(exc).__name__}: {exc}") from exc
        except httpx.TimeoutException as exc:
            raise OutcomeUnknown(
                f"no reply within the timeout ({type(exc).__name__}); outcome unknown"
            ) from exc
        except httpx.TransportError as exc:
            # Sent (or partly sent) and then the connection broke: the centre may have taken it.
            raise OutcomeUnknown(
                f"connection lost after sending ({type(exc).__name__}); outcome unknown"
            ) from exc
        reply = HttpReply(
            response.status_code, response.headers.get("content-type", ""), response.content
        )
        if reply.status >= 500:
            # The request arrived; whether it took effect is unknown (the client decides).
            raise CentreServerError(f"centre answered HTTP {reply.status}: {_snippet(reply.body)}", reply.status)
        if reply.status >= 400:
            # Gateway refusals (signature, timestamp, unknown paasid) are fixed by an operator
            # or by the clock, not by parking the data: keep the message and retry later.
            raise GatewayRefused(
                f"gateway refused the request with HTTP {reply.status}: {_snippet(reply.body)}", reply.status
            )
        return reply

    def close(self) -> None:
        self._client.close()


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text[:limit] + ("…" if len(text) > limit else "")
