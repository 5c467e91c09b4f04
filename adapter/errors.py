"""The one exception tree of yibao-adapter.

Every error the adapter raises on purpose is an :class:`AdapterError`. The CLI turns any of
them into one log line and a non-zero exit code; anything else is a bug and gets a traceback.
Foreign exceptions (httpx, SQLAlchemy, tomllib, pydantic) are translated at one boundary per
library with ``raise ... from exc``.

::

    AdapterError
    ├── ConfigError                 the TOML file is missing, unreadable or invalid, or names
    │                               something no plugin provides (a transaction, its HIS query)
    ├── PluginError                 a plugin misbehaved (registered twice, bad contribution)
    │   └── UnknownRegionError      config names a region no loaded plugin provides
    ├── SourceError                 the HIS database could not be read
    ├── MappingImportError          a mapping file is malformed (names file, line, column)
    ├── StateStoreError             the state database failed, holds something impossible, or
    │                               was written by a newer version (schema revision unknown)
    │   └── TakenElsewhere          another daemon sharing the database took the rows first
    ├── FileFormatError             a file from or for the centre cannot be read safely
    │                               (zip, encoding, layout)
    ├── SecurityError               a signature is wrong or a secret cannot be resolved
    └── DeliveryError               sending to the centre failed
        ├── TransientDeliveryError  no connection, or the centre said "not now": retried
        │   ├── OutcomeUnknown      sent, but no answer that can be read as this request's
        │   │                       (timeout, reset, 5xx, garbage, another request's answer):
        │   │                       settled the way the region allows before any resend
        │   ├── CentreServerError   HTTP 5xx (the caller decides whether it is unknown)
        │   ├── GatewayRefused      HTTP 4xx from the gateway (credentials, signature, clock)
        │   ├── SignInRefused       9001 refused: the session, not the data, is at fault
        │   └── CentreBusy          infcode -1 saying "busy" (regional words) or nothing at all
        └── BusinessRejection       infcode -1 with the centre's err_msg: parked, never retried
"""

from __future__ import annotations


class AdapterError(Exception):
    """Something went wrong in yibao-adapter."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(AdapterError):
    """The configuration file is invalid."""

    def __init__(self, message: str | None = None, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        if problems and not message:
            message = "invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(message)


class PluginError(AdapterError):
    """A plugin misbehaved."""


class UnknownRegionError(PluginError):
    """The configured region is not provided by any loaded plugin."""


class SourceError(AdapterError):
    """The HIS database could not be read."""


class MappingImportError(AdapterError):
    """The mapping file is malformed."""


class StateStoreError(AdapterError):
    """The state database failed."""


class TakenElsewhere(StateStoreError):
    """Another daemon sharing the state database took these rows first (e.g. built their
    message): this transaction is rolled back and the work left to it."""


class FileFormatError(AdapterError):
    """A file from or for the centre that cannot be read safely (zip, encoding, layout)."""


class SecurityError(AdapterError):
    """A signature did not verify or a secret could not be resolved."""


class DeliveryError(AdapterError):
    """Sending a message to the centre failed."""


class TransientDeliveryError(DeliveryError):
    """The centre could not be reached or answered with a temporary failure; retry later."""


class OutcomeUnknown(TransientDeliveryError):
    """The request may have reached the centre but no reply came back (read timeout, reset
    after sending). It must not be resent until the outcome is found out (query or 2601)."""


class CentreServerError(TransientDeliveryError):
    """The centre (or a gateway before it) answered HTTP 5xx. Whether the request took effect
    is unknown; the client turns this into :class:`OutcomeUnknown` for a business message."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class GatewayRefused(TransientDeliveryError):
    """The gateway refused the request (HTTP 4xx: credentials, signature, timestamp): an
    operator or the clock fixes it, not the data, so the message keeps waiting."""

    def __init__(self, message: str, status: int) -> None:
        self.status = status
        super().__init__(message)


class SignInRefused(TransientDeliveryError):
    """9001 was refused: no data is at fault, so nothing is parked; sending waits."""


class CentreBusy(TransientDeliveryError):
    """infcode -1 with words that mean "not now" (系统繁忙), or with no err_msg at all."""


class BusinessRejection(DeliveryError):
    """The centre refused the message (infcode -1); it is parked with the centre's message."""

    def __init__(self, err_msg: str, infcode: object = -1) -> None:
        self.err_msg = err_msg
        self.infcode = infcode
        super().__init__(f"centre rejected the message: {err_msg}")
