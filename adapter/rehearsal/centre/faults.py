"""Fault injection for the simulated centre.

Every share is a probability per request, drawn once per request (the shares add up to at
most 1). The faults before processing leave nothing at the centre (503, reset, timeout, busy);
the faults after commit (drop_reply and the COMMIT_THEN_* kinds) process and commit the request
first, then spoil the answer on its way back, so the adapter holds a message whose outcome it
cannot read although the centre has it. Every fault injected is counted in
``ledger.faults[fault.value]``."""

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
    #: answer infcode -1 "系统繁忙,请稍后再试" without processing
    BUSY = "busy"
    #: process and commit the request, then reset the connection instead of answering
    DROP_REPLY = "drop_reply"
    #: process and commit, then answer HTTP 502 or 504 as a gateway in front of the centre would
    COMMIT_THEN_5XX = "commit_then_5xx"
    #: process and commit, then answer HTTP 200 with a body that is not JSON
    COMMIT_THEN_GARBAGE = "commit_then_garbage"
    #: process and commit, then answer a JSON envelope without infcode
    COMMIT_THEN_NO_INFCODE = "commit_then_no_infcode"
    #: process and commit, then answer infcode 0 with another request's output
    COMMIT_THEN_FOREIGN = "commit_then_foreign"


#: the faults that spoil the answer of a request the centre processed and committed
AFTER_COMMIT = frozenset({Fault.DROP_REPLY, Fault.COMMIT_THEN_5XX, Fault.COMMIT_THEN_GARBAGE,
                          Fault.COMMIT_THEN_NO_INFCODE, Fault.COMMIT_THEN_FOREIGN})
#: what ``after_commit_fault_rate`` is split into, evenly
SPLIT_AFTER_COMMIT = (Fault.COMMIT_THEN_5XX, Fault.COMMIT_THEN_GARBAGE, Fault.COMMIT_THEN_NO_INFCODE,
                      Fault.COMMIT_THEN_FOREIGN)
#: the share field of each fault, in the order :meth:`FaultPlan.draw` rolls them
_SHARES = (
    ("error_rate", Fault.SERVER_ERROR), ("reset_rate", Fault.RESET), ("timeout_rate", Fault.TIMEOUT),
    ("busy_rate", Fault.BUSY), ("drop_reply_rate", Fault.DROP_REPLY),
    ("commit_then_5xx_rate", Fault.COMMIT_THEN_5XX), ("commit_then_garbage_rate", Fault.COMMIT_THEN_GARBAGE),
    ("commit_then_no_infcode_rate", Fault.COMMIT_THEN_NO_INFCODE),
    ("commit_then_foreign_rate", Fault.COMMIT_THEN_FOREIGN),
)


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
    #: refuse without processing, as a centre under load does ("系统繁忙,请稍后再试")
    busy_rate: float = 0.0
    #: one share for all four COMMIT_THEN_* kinds, split evenly between them (on top of their
    #: own shares below)
    after_commit_fault_rate: float = 0.0
    commit_then_5xx_rate: float = 0.0
    commit_then_garbage_rate: float = 0.0
    commit_then_no_infcode_rate: float = 0.0
    commit_then_foreign_rate: float = 0.0
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
        names = [name for name, _fault in _SHARES] + ["after_commit_fault_rate"]
        for name in names:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if sum(getattr(self, name) for name in names) > 1.0:
            raise ValueError("the fault shares add up to more than 1")
        self._rng = random.Random(self.seed)

    def shares(self) -> list[tuple[Fault, float]]:
        """Each fault with its whole share (``after_commit_fault_rate`` split into its kinds)."""
        split = self.after_commit_fault_rate / len(SPLIT_AFTER_COMMIT)
        return [(fault, getattr(self, name) + (split if fault in SPLIT_AFTER_COMMIT else 0.0))
                for name, fault in _SHARES]

    def draw(self) -> tuple[Fault, float]:
        """The fault for the next request and the latency (seconds) to add."""
        with self._lock:
            roll = self._rng.random()
            latency = self._rng.uniform(0, self.latency_ms / 1000) if self.latency_ms else 0.0
        for fault, share in self.shares():
            if roll < share:
                return fault, latency
            roll -= share
        return Fault.NONE, latency

    def gateway_status(self) -> int:
        """The status a gateway answers for COMMIT_THEN_5XX: 502 Bad Gateway or 504 Gateway Timeout."""
        with self._lock:
            return self._rng.choice((502, 504))

