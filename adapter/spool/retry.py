"""Retry policy: short in-process retries (tenacity) and the persisted long backoff."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_any,
    stop_when_event_set,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from adapter.errors import OutcomeUnknown, TransientDeliveryError

T = TypeVar("T")


def backoff_seconds(
    attempts: int, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Capped exponential backoff with jitter for the ``attempts``-th failure (1-based).

    Half the delay is fixed and half random ("equal jitter"): retries from many messages
    spread out, yet none comes back sooner than half the nominal delay.
    """
    # The exponent stops growing long before a float would overflow: a message that has
    # failed for days must still get a delay (the cap), not an OverflowError.
    nominal: float = min(cap, base * (2 ** min(max(0, attempts - 1), 60)))
    return nominal / 2 + rng() * nominal / 2


def _retry_now(exc: BaseException) -> bool:
    # An unknown outcome is never retried blindly: the centre may already hold the data.
    return isinstance(exc, TransientDeliveryError) and not isinstance(exc, OutcomeUnknown)


def call_with_quick_retries(
    func: Callable[[], T], attempts: int, wait_seconds: float, stop_event: threading.Event | None = None
) -> T:
    """Run ``func``, retrying transient failures a few times within seconds.

    Only :class:`TransientDeliveryError` is retried (never :class:`OutcomeUnknown`); the last one is
    re-raised so the caller can store the long backoff in the spool. A set ``stop_event`` ends the
    retries at once.
    """
    stop: stop_base = stop_after_attempt(attempts)
    if stop_event is not None:
        stop = stop_any(stop, stop_when_event_set(stop_event))
    retrying = Retrying(
        retry=retry_if_exception(_retry_now),
        stop=stop,
        wait=wait_random_exponential(multiplier=wait_seconds, max=max(wait_seconds * 4, 0.001)),
        reraise=True,
    )
    return retrying(func)
