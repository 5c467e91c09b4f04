"""Prometheus metrics (``/metrics``).

Two kinds, kept apart on purpose:

- **The state of the spool** is read from the state database at scrape time by
  :class:`StateCollector` (queue depths, oldest unsent item, parked and rejected records,
  unknown outcomes, sign-in, catalogues, reconciliation, last upload): every daemon sharing a
  spool, and the CLI's ``status``, say the same thing, and nothing is lost at a restart.
- **What this process did** is counted in memory: each request's latency by transaction and
  result (:class:`TimedTransport` times them where they leave), cycles and their duration.
  These are rates; Prometheus sums them over the daemons.

Label values are bounded: transactions (the region's), states (the spool's), park kinds, and
at most ``REJECTION_REASONS`` rejection reasons by name (the rest are "other").
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from adapter.errors import CentreServerError, GatewayRefused, OutcomeUnknown, StateStoreError, TransientDeliveryError
from adapter.monitor.facts import Snapshot
from adapter.outbound.transport import HttpReply, HttpTransport
from adapter.state.store import utcnow

#: the in-process metrics (one set per process, whatever number of adapters it wires)
PROCESS = CollectorRegistry(auto_describe=True)

SEND_LATENCY = Histogram(
    "yibao_send_latency_seconds", "Time from sending a request to the centre to its answer (or failure).",
    ["infno", "result"], registry=PROCESS,
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0),
)
CYCLES = Counter("yibao_cycles", "Cycles run, by result (ok, failed).", ["result"], registry=PROCESS)
CYCLE_SECONDS = Histogram(
    "yibao_cycle_duration_seconds", "How long a cycle (extract to settle) took.", registry=PROCESS,
    buckets=(0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600),
)
LAST_CYCLE_OK = Gauge("yibao_last_successful_cycle_timestamp_seconds",
                      "When the last cycle finished without an error (Unix time).", registry=PROCESS)
ALERTS_OPEN = Gauge("yibao_alerts_open", "Alerts open now, by kind.", ["kind"], registry=PROCESS)

_INFNO = re.compile(rb'"infno"\s*:\s*"([0-9A-Za-z]{1,8})"')


def result_of(exc: BaseException | None) -> str:
    """A request's result as a label: answered, http_4xx, http_5xx, no_reply, no_connection."""
    if exc is None:
        return "answered"
    if isinstance(exc, GatewayRefused):
        return "http_4xx"
    if isinstance(exc, CentreServerError):
        return "http_5xx"
    if isinstance(exc, OutcomeUnknown):
        return "no_reply"
    return "no_connection"


class TimedTransport(HttpTransport):
    """The HTTP transport, timing every request into ``yibao_send_latency_seconds`` by the
    transaction the envelope names and how it ended."""

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> HttpReply:
        return self._timed(_infno(body), lambda: super(TimedTransport, self).post(url, body, headers))

    def post_multipart(
        self, url: str, fields: Mapping[str, str], files: Mapping[str, tuple[str, bytes]],
        headers: Mapping[str, str],
    ) -> HttpReply:
        infno = _infno(fields.get("jsonStr", "").encode("utf-8"))
        return self._timed(infno, lambda: super(TimedTransport, self).post_multipart(url, fields, files, headers))

    @staticmethod
    def _timed(infno: str, request: Callable[[], HttpReply]) -> HttpReply:
        started = time.monotonic()
        try:
            reply = request()
        except TransientDeliveryError as exc:
            SEND_LATENCY.labels(infno, result_of(exc)).observe(time.monotonic() - started)
            raise
        SEND_LATENCY.labels(infno, result_of(None)).observe(time.monotonic() - started)
        return reply


def _infno(body: bytes) -> str:
    found = _INFNO.search(body)
    return found.group(1).decode("ascii") if found else "?"


def _timestamp(moment: datetime | None) -> float | None:
    """A naive UTC time of the state store as Unix time."""
    if moment is None:
        return None
    return (moment - datetime(1970, 1, 1)).total_seconds()


class StateCollector(Collector):
    """The spool's state, read from the state database at every scrape. When the database
    cannot be read, ``yibao_state_store_up`` is 0 and nothing else is reported (no stale
    numbers that look current)."""

    def __init__(self, snapshot: Callable[[], Snapshot], heartbeat_age: Callable[[], float] | None = None) -> None:
        self._snapshot = snapshot
        self._heartbeat_age = heartbeat_age

    def describe(self) -> list[Metric]:
        return []  # registering must not read the database

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("yibao_state_store_up", "1 when the state database could be read at this scrape.")
        if self._heartbeat_age is not None:
            yield GaugeMetricFamily("yibao_heartbeat_age_seconds",
                                    "Seconds since the cycle last made progress (0 while waiting).",
                                    value=self._heartbeat_age())
        try:
            snapshot = self._snapshot()
        except StateStoreError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _state_metrics(snapshot)


def _state_metrics(snapshot: Snapshot) -> Iterator[Metric]:
    now = snapshot.taken_at
    records = GaugeMetricFamily("yibao_queue_records", "Records by transaction and state (new, ready, queued, "
                                "parked).", labels=["infno", "state"])
    messages = GaugeMetricFamily("yibao_queue_messages", "Messages not yet acknowledged (and parked ones) by "
                                 "transaction and state.", labels=["infno", "state"])
    oldest = GaugeMetricFamily("yibao_oldest_unsent_age_seconds", "Age of the oldest record not yet acknowledged, "
                               "since it was read from the HIS.", labels=["infno"])
    tries = GaugeMetricFamily("yibao_unsent_attempts", "Attempts already made on the messages still unsent.",
                              labels=["infno"])
    head_age = GaugeMetricFamily("yibao_queue_head_age_seconds", "Age of the oldest unsent message (the head of "
                                 "the queue).", labels=["infno"])
    head_tries = GaugeMetricFamily("yibao_queue_head_attempts", "Attempts made on the head of the queue.",
                                   labels=["infno"])
    parked = GaugeMetricFamily("yibao_parked_records", "Parked records by transaction and kind (malformed, "
                               "unmapped, invalid, rejected).", labels=["infno", "kind"])
    unknown = GaugeMetricFamily("yibao_unknown_outcomes", "Messages sent whose outcome at the centre is unknown "
                                "(a lost reply not yet settled).", labels=["infno"])
    uploaded = GaugeMetricFamily("yibao_last_upload_timestamp_seconds", "When the centre last acknowledged a "
                                 "message of the transaction (Unix time).", labels=["infno"])
    for infno, facts in sorted(snapshot.transactions.items()):
        for state in ("new", "ready", "queued", "parked"):
            records.add_metric([infno, state], facts.records.get(state, 0))
        for state in ("pending", "in_flight", "retry_wait", "unknown", "parked"):
            messages.add_metric([infno, state], facts.messages.get(state, 0))
        tries.add_metric([infno], facts.unsent_attempts)
        unknown.add_metric([infno], facts.messages.get("unknown", 0))
        if facts.oldest_unsent_at is not None:
            oldest.add_metric([infno], max(0.0, (now - facts.oldest_unsent_at).total_seconds()))
        if facts.head is not None:
            head_age.add_metric([infno], max(0.0, facts.head.age_seconds(now)))
            head_tries.add_metric([infno], facts.head.attempts)
        for kind in ("malformed", "unmapped", "invalid", "rejected"):
            parked.add_metric([infno, kind], facts.parked.get(kind, 0))
        last = _timestamp(facts.last_upload_at)
        if last is not None:
            uploaded.add_metric([infno], last)
    yield from (records, messages, oldest, tries, head_age, head_tries, parked, unknown, uploaded)

    rejected = GaugeMetricFamily("yibao_rejected_records", "Records the centre rejected, by transaction and "
                                 "reason (the commonest reasons by name, shortened; the rest 'other').",
                                 labels=["infno", "reason"])
    for infno, reason, count in snapshot.rejections:
        rejected.add_metric([infno, reason], count)
    yield rejected

    centre = snapshot.centre
    yield GaugeMetricFamily("yibao_signed_in", "1 while a 9001 session is cached.",
                            value=1 if centre.signed_in_at else 0)
    if centre.signed_in_at is not None:
        yield GaugeMetricFamily("yibao_sign_in_timestamp_seconds", "When the cached session was opened (Unix time).",
                                value=_timestamp(centre.signed_in_at))
    failing = GaugeMetricFamily("yibao_sign_in_failing", "1 when signing in does not work, by cause: credentials "
                                "(HTTP 401) or refused (9001 refused).", labels=["cause"])
    for cause in ("credentials", "refused"):
        failing.add_metric([cause], 1 if centre.sign_in_cause == cause else 0)
    yield failing
    yield GaugeMetricFamily("yibao_centre_unreachable_requests", "Requests in a row, newest first, that found no "
                            "centre (connection, timeout, HTTP 5xx).", value=centre.unreachable_in_a_row)
    answered = _timestamp(centre.last_answer_at)
    if answered is not None:
        yield GaugeMetricFamily("yibao_centre_last_answer_timestamp_seconds", "When the centre last answered a "
                                "request (Unix time).", value=answered)

    info = GaugeMetricFamily("yibao_catalog_version_info", "The active version of each catalogue (always 1).",
                             labels=["kind", "ver"])
    rows = GaugeMetricFamily("yibao_catalog_rows", "Rows of the active catalogue version.", labels=["kind"])
    age = GaugeMetricFamily("yibao_catalog_age_seconds", "Time since the active version was switched in.",
                            labels=["kind"])
    for catalog in snapshot.catalogs:
        info.add_metric([catalog.kind, catalog.ver], 1)
        rows.add_metric([catalog.kind], catalog.rows)
        if catalog.activated_at is not None:
            age.add_metric([catalog.kind], max(0.0, (now - catalog.activated_at).total_seconds()))
    yield from (info, rows, age)

    run_at = GaugeMetricFamily("yibao_reconcile_last_run_timestamp_seconds", "When the newest reconciliation of "
                               "each kind (day, month, range) ran (Unix time).", labels=["kind"])
    balanced = GaugeMetricFamily("yibao_reconcile_last_balanced", "1 when the newest reconciliation of the kind "
                                 "balanced.", labels=["kind"])
    differences = GaugeMetricFamily("yibao_reconcile_last_differences", "Differences the newest reconciliation of "
                                    "the kind found.", labels=["kind"])
    for run in snapshot.reconciliations:
        run_at.add_metric([run.kind], _timestamp(run.created_at) or 0)
        balanced.add_metric([run.kind], 1 if run.balanced else 0)
        differences.add_metric([run.kind], run.differences)
    yield from (run_at, balanced, differences)

    if snapshot.disk is not None:
        yield GaugeMetricFamily("yibao_state_disk_free_bytes", "Free space on the state database's file system.",
                                value=snapshot.disk.free_bytes)
        yield GaugeMetricFamily("yibao_state_disk_size_bytes", "Size of the state database's file system.",
                                value=snapshot.disk.total_bytes)


class _Process(Collector):
    """The in-process registry as one collector of a scrape's registry."""

    def collect(self) -> Iterator[Metric]:
        yield from PROCESS.collect()


def registry_for(state: StateCollector, info: Mapping[str, str] | None = None) -> CollectorRegistry:
    """A registry for one endpoint: the spool's state, this process's counters, and Python's
    own process and platform metrics."""
    registry = CollectorRegistry()
    registry.register(state)
    registry.register(_Process())
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    if info:
        build = GaugeMetricFamily("yibao_build_info", "The adapter's version and region (always 1).",
                                  labels=list(info))
        build.add_metric(list(info.values()), 1)
        registry.register(_Fixed(build))
    return registry


class _Fixed(Collector):
    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self._metric


def exposition(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def cycle_observed(seconds: float, ok: bool) -> None:
    CYCLES.labels("ok" if ok else "failed").inc()
    CYCLE_SECONDS.observe(seconds)
    if ok:
        LAST_CYCLE_OK.set(_timestamp(utcnow()) or 0)


def alerts_open(kinds: Mapping[str, int], known: Iterable[str] = ()) -> None:
    """Set ``yibao_alerts_open`` for every kind in ``known`` (0 when none is open) and ``kinds``."""
    for kind in {*known, *kinds}:
        ALERTS_OPEN.labels(kind).set(kinds.get(kind, 0))
