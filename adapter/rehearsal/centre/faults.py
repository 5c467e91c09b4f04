"""Fault injection for the simulated centre."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    NONE = "none"
    #: answer HTTP 503 without processing
    SERVER_ERROR = "server_error"
    #: reset the TCP connection without processing
    RESET = "reset"
    #: hold the request past the client's timeout, then drop it without processing
    TIMEOUT = "timeout"
    #: process and commit the request, then reset the connection instead of answering
    DROP_REPLY = "drop_reply"


@dataclass
class FaultPlan:
    """Shares are probabilities per request; rejections are by national code."""

    error_rate: float = 0.0
    reset_rate: float = 0.0
    timeout_rate: float = 0.0
    timeout_seconds: float = 15.0
    latency_ms: int = 0
    reject_codes: frozenset[str] = frozenset()
    seed: int | None = None
    drop_reply_rate: float = 0.0
    #: a sign_no stops being valid after this many uses (0: never), as sessions expire
    session_max_uses: int = 0
    #: refuse fee lines and discharges of stays never admitted here (when 2401 is uploaded too)
    require_admission: bool = False
    #: serve catalogue downloads broken this way (see adapter.rehearsal.centre.catalogues.CATALOGUE_FAULTS)
    catalogue_fault: str = ""
    #: the encoding of 3202's result.txt ("gbk" as some regions write it)
    result_encoding: str = ""
    #: national codes the centre takes but counts out of the fund's scope (丙类, 全自费)
    ownpay_codes: frozenset[str] = frozenset()
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "timeout_rate", "drop_reply_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.reset_rate + self.timeout_rate + self.drop_reply_rate > 1.0:
            raise ValueError("the fault shares add up to more than 1")
        self._rng = random.Random(self.seed)

    def draw(self) -> tuple[Fault, float]:
        """The fault for the next request and the latency (seconds) to add."""
        with self._lock:
            roll = self._rng.random()
            latency = self._rng.uniform(0, self.latency_ms / 1000) if self.latency_ms else 0.0
        if roll < self.error_rate:
            return Fault.SERVER_ERROR, latency
        roll -= self.error_rate
        if roll < self.reset_rate:
            return Fault.RESET, latency
        roll -= self.reset_rate
        if roll < self.timeout_rate:
            return Fault.TIMEOUT, latency
        roll -= self.timeout_rate
        if roll < self.drop_reply_rate:
            return Fault.DROP_REPLY, latency
        return Fault.NONE, latency
