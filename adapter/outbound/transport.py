"""HTTP transport to the centre; the one place httpx exceptions are translated."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

from adapter.errors import CentreServerError, ConfigError, GatewayRefused, OutcomeUnknown, TransientDeliveryError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpReply:
    status: int
    content_type: str
    body: bytes


class HttpTransport:
    """POSTs bytes and returns the reply; network trouble becomes TransientDeliveryError."""

    def __init__(
        self, timeout_seconds: float, connect_timeout_seconds: float = 10.0, *, tls_verify: bool = True,
        ca_bundle: str | None = None,
    ) -> None:
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_seconds, connect=min(connect_timeout_seconds, timeout_seconds)),
            verify=tls_context(tls_verify, ca_bundle),
            # Never pick up a proxy from the environment: the centre is reached directly
            # (through the hospital's front-end processor), never through a desktop proxy.
            # (SSL_CERT_FILE is read by tls_context, not through this.)
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
            tls = _tls_problem(exc)
            if tls is not None:
                raise TransientDeliveryError(tls) from exc
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


def tls_context(verify: bool = True, ca_bundle: str | None = None) -> ssl.SSLContext:
    """How the centre's certificate is checked: against ``ca_bundle`` (``[centre] ca_bundle``,
    a PEM file), else against ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` when set, else against the
    public CAs httpx ships (certifi); ``verify=False`` checks nothing and says so in the log.
    A CA file that cannot be read or holds no certificate is a :class:`ConfigError` naming it."""
    if not verify:
        logger.warning("TLS certificate checks for the centre are off ([centre] tls_verify = false): anyone "
                       "between here and the gateway can read and change what is sent",
                       extra={"action": "tls_verify_off"})
        return httpx.create_ssl_context(verify=False)
    cafile: str | None = None
    capath: str | None = None
    if ca_bundle:
        cafile = ca_bundle
        where = f"[centre] ca_bundle {ca_bundle}"
    elif os.environ.get("SSL_CERT_FILE"):
        cafile = os.environ["SSL_CERT_FILE"]
        where = f"SSL_CERT_FILE {cafile}"
    elif os.environ.get("SSL_CERT_DIR"):
        capath = os.environ["SSL_CERT_DIR"]
        where = f"SSL_CERT_DIR {capath}"
    else:
        return httpx.create_ssl_context(trust_env=False)
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except ssl.SSLError as exc:
        raise ConfigError(f"{where}: not a PEM file of CA certificates ({exc.reason or exc})") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read: {exc.strerror or exc}") from exc


def _tls_problem(exc: BaseException) -> str | None:
    """What was wrong with the TLS connection, in a sentence that says what to do, when a TLS
    problem is why ``exc`` happened (httpx keeps the ssl error as the cause)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (f"the centre's TLS certificate was refused: {cause.verify_message or cause.reason}; name the CA "
                "that signed it in [centre] ca_bundle (or $SSL_CERT_FILE)")
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake with the centre failed: {cause.reason or cause}"
    return None


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", errors="replace").strip()
    return text[:limit] + ("…" if len(text) > limit else "")
