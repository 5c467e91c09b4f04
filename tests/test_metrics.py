"""/metrics, /healthz and /readyz: the spool's state read from the state database at scrape time
(so another reader of the same database says the same), this process's request latencies, and
the probes' answers with their reasons. Real cycles against the simulated centre, on SQLite and
PostgreSQL; the endpoint over real HTTP on loopback."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, update

from adapter.config import parse_settings
from adapter.daemon import Daemon
from adapter.errors import ConfigError
from adapter.monitor.facts import REJECTION_REASONS, read_snapshot
from adapter.monitor.health import Health, Observed, Runtime
from adapter.monitor.heartbeat import Heartbeat
from adapter.monitor.metrics import StateCollector, exposition, registry_for
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import MessageStatus, ParkKind, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow
from tests.conftest import config_text, import_sample_mapping
from tests.helpers import run_until_done

REJECTED_CODE = "XA01ABD075A002010100483"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition: (name, sorted labels) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode("utf-8")


def test_metrics_come_from_the_state_database_and_agree_between_readers(make_adapter, centre, sample_his, state_url):
    centre.faults = FaultPlan(reject_codes=frozenset({REJECTED_CODE}))
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)

    registry = registry_for(StateCollector(lambda: read_snapshot(adapter.store, ["2301"], adapter.edition)),
                            {"region": "nhsa"})
    found = samples(exposition(registry).decode())
    # another reader of the same database (a second daemon, the CLI) sees the same state
    other = StateStore(state_url)
    try:
        again = samples(exposition(registry_for(StateCollector(lambda: read_snapshot(other, ["2301"])))).decode())
        with other.begin() as conn:
            parked = conn.execute(select(func.count()).where(
                schema.record.c.infno == "2301", schema.record.c.status == RecordStatus.PARKED.value)).scalar_one()
            rejected = conn.execute(select(func.count()).where(
                schema.record.c.status == RecordStatus.PARKED.value,
                schema.record.c.park_kind == ParkKind.REJECTED.value)).scalar_one()
    finally:
        other.close()
    state_metrics = {key: v for key, v in found.items() if key[0].startswith("yibao_") and "latency" not in key[0]
                     and "cycle" not in key[0] and "build" not in key[0] and "alerts" not in key[0]}
    for key, number in state_metrics.items():
        # ages move on by a second or so; the disk's free space by whatever else writes to it
        margin = 64 * 2**20 if key[0] == "yibao_state_disk_free_bytes" else 5
        assert again.get(key) == pytest.approx(number, abs=margin), key

    assert value(found, "yibao_state_store_up") == 1
    assert value(found, "yibao_queue_records", infno="2301", state="parked") == parked > 0
    assert value(found, "yibao_queue_records", infno="2301", state="new") == 0
    assert value(found, "yibao_parked_records", infno="2301", kind="rejected") == rejected > 0
    assert value(found, "yibao_parked_records", infno="2301", kind="unmapped") > 0
    reasons = {dict(labels)["reason"] for (name, labels), _ in found.items() if name == "yibao_rejected_records"}
    assert reasons and all(len(reason) <= 60 for reason in reasons)
    assert value(found, "yibao_queue_messages", infno="2301", state="unknown") == 0
    assert value(found, "yibao_unknown_outcomes", infno="2301") == 0
    assert value(found, "yibao_oldest_unsent_age_seconds", infno="2301") is None  # nothing unsent
    uploaded = value(found, "yibao_last_upload_timestamp_seconds", infno="2301")
    assert uploaded is not None and abs(uploaded - time.time()) < 120
    assert value(found, "yibao_signed_in") == 1
    assert value(found, "yibao_sign_in_failing", cause="credentials") == 0
    assert value(found, "yibao_centre_unreachable_requests") == 0
    assert value(found, "yibao_build_info", region="nhsa") == 1
    # this process timed its requests where they left, by transaction and result
    assert value(found, "yibao_send_latency_seconds_count", infno="2301", result="answered") > 0
    assert value(found, "yibao_send_latency_seconds_count", infno="9001", result="answered") >= 1
    assert value(found, "process_cpu_seconds_total") is not None


def test_rejection_reasons_are_a_bounded_label(make_adapter, centre, sample_his, sqlite_state_url):
    adapter = make_adapter(his_url=sample_his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    run_until_done(adapter)
    record = schema.record
    with adapter.store.begin() as conn:
        ids = conn.execute(select(record.c.id).where(record.c.status == RecordStatus.SENT.value)).scalars().all()
        assert len(ids) > 40
        for number, record_id in enumerate(ids[:40]):
            conn.execute(update(record).where(record.c.id == record_id).values(
                status=RecordStatus.PARKED.value, park_kind=ParkKind.REJECTED.value,
                park_reason=f"第{number}行 医保目录编码不存在 " + "x" * 80 if number < 30 else "重复上传"))
    found = samples(exposition(registry_for(StateCollector(lambda: read_snapshot(adapter.store)))).decode())
    reasons = {dict(labels)["reason"]: v for (name, labels), v in found.items() if name == "yibao_rejected_records"}
    assert len(reasons) == REJECTION_REASONS + 1 and "other" in reasons
    assert reasons["重复上传"] == 10  # the commonest is named
    assert sum(reasons.values()) == 40
    assert all(len(reason) <= 60 for reason in reasons)


def test_a_state_store_that_cannot_be_read_says_so_and_nothing_else(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.close()
    (tmp_path / "state.db").unlink()
    (tmp_path / "state.db").mkdir()  # no longer a database

    def broken():
        return read_snapshot(store)

    text = exposition(registry_for(StateCollector(broken))).decode()
    found = samples(text)
    assert value(found, "yibao_state_store_up") == 0
    assert not any(name.startswith("yibao_queue") for name, _ in found)


# -- the endpoint -----------------------------------------------------------------------------------
class Running:
    """A daemon in a worker thread (the test stops it through its event)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.thread = threading.Thread(target=daemon.run_forever, daemon=True)

    def __enter__(self) -> Running:
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.daemon.monitor is None:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the monitor did not start"
            time.sleep(0.02)
        return self

    def wait_cycles(self, count: int) -> None:
        deadline = time.monotonic() + 60
        while self.daemon.runtime.cycles < count:
            assert time.monotonic() < deadline and self.thread.is_alive(), "no cycle"
            time.sleep(0.02)

    def __exit__(self, *_exc: object) -> None:
        self.daemon.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def test_the_endpoint_serves_metrics_health_and_readiness_on_loopback(make_adapter, centre, sample_his, tmp_path):
    port = free_port()
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule=f"interval_minutes = 0.02\n\n[monitor]\nlisten = \"127.0.0.1:{port}\"\nrefresh_seconds = 10")
    import_sample_mapping(adapter, sample_his)
    daemon = Daemon(adapter)
    daemon.runtime.watchdog_seconds = None
    with Running(daemon) as running:
        base = f"http://127.0.0.1:{port}"
        running.wait_cycles(2)
        status, kind, text = get(base + "/metrics")
        assert status == 200 and kind.startswith("text/plain")
        found = samples(text)
        assert value(found, "yibao_queue_records", infno="2301", state="parked") > 0
        assert value(found, "yibao_cycles_total", result="ok") >= 2
        assert value(found, "yibao_heartbeat_age_seconds") is not None
        assert value(found, "yibao_alerts_open", kind="centre_unreachable") == 0
        status, kind, text = get(base + "/healthz")
        assert status == 200 and kind.startswith("application/json") and json.loads(text)["alive"] is True
        status, _, text = get(base + "/readyz")
        body = json.loads(text)
        assert status == 200, body
        assert body["ready"] is True and set(body["checks"]) == {"state_store", "cycle", "queues", "sign_in"}
        assert get(base + "/nothing-here")[0] == 404


def test_liveness_follows_the_heartbeat_as_the_watchdog_does(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    now = [100.0]
    runtime = Runtime(heartbeat=Heartbeat(clock=lambda: now[0]), watchdog_seconds=60.0)
    health = Health(Observed(adapter.store, adapter.settings, adapter.region), runtime)
    runtime.heartbeat.beat("sending 2301")
    now[0] += 59
    assert health.liveness()[0] is True
    now[0] += 2  # a cycle hung past the watchdog interval
    alive, body = health.liveness()
    assert alive is False and body["doing"] == "sending 2301" and body["heartbeat_age_seconds"] == 61
    runtime.heartbeat.idle()  # waiting for the next cycle is alive, however long
    now[0] += 3600
    assert health.liveness()[0] is True


def test_readiness_names_what_is_wrong(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa")
    centre.secrets = {"test_hosp": "not-the-token-we-send"}  # the gateway refuses our credentials
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, schedule="[monitor]\nlisten = \"\"\nstuck_minutes = 1")
    import_sample_mapping(adapter, sample_his)
    daemon = Daemon(adapter)
    ready, body = daemon.health.readiness()
    assert not ready and "no cycle has finished yet" in body["reasons"]

    daemon.run_once()
    daemon.runtime.cycle_done([], "")
    ready, body = daemon.health.readiness()
    checks = body["checks"]
    assert not ready
    assert checks["cycle"]["ok"] and checks["state_store"]["ok"]
    assert not checks["sign_in"]["ok"] and "credentials (HTTP 401)" in checks["sign_in"]["detail"]
    # not "centre down": a gateway that answers 401 is reachable
    assert daemon.health.snapshot(fresh=True).centre.unreachable_in_a_row == 0

    # a head tried and still unsent after stuck_minutes is stuck
    centre.secrets = {"test_hosp": "test-token-not-a-secret"}
    centre.faults = FaultPlan(error_rate=1.0)
    daemon.run_once()
    with adapter.store.begin() as conn:
        conn.execute(update(schema.message).where(schema.message.c.status != MessageStatus.ACKED.value)
                     .values(created_at=utcnow() - timedelta(minutes=5)))
    daemon.health.snapshot(fresh=True)  # (probes share a snapshot for a few seconds)
    ready, body = daemon.health.readiness()
    assert not body["checks"]["queues"]["ok"]
    assert "2301: message" in body["checks"]["queues"]["detail"] and "attempt(s)" in body["checks"]["queues"]["detail"]


def test_a_token_guards_the_endpoint(make_adapter, centre, sample_his, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("TEST_MONITOR_TOKEN", "s3cret-scrape-token")
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule=f"[monitor]\nlisten = \"127.0.0.1:{port}\"\ntoken = {{ env = \"TEST_MONITOR_TOKEN\" }}")
    daemon = Daemon(adapter)
    with Running(daemon):
        base = f"http://127.0.0.1:{port}"
        for path in ("/metrics", "/healthz", "/readyz", "/"):
            assert get(base + path)[0] == 401
            assert get(base + path, token="wrong")[0] == 401
        assert get(base + "/metrics", token="s3cret-scrape-token")[0] == 200


def _settings_text(monitor: str) -> str:
    return config_text(his_url="sqlite:///his.db", state_url="sqlite:///state.db",
                       centre_url="http://127.0.0.1:1") + "\n[monitor]\n" + monitor


def test_an_address_off_loopback_needs_a_token():
    with pytest.raises(ConfigError) as refused:
        parse_settings(_settings_text('listen = "0.0.0.0:9464"'))
    assert "[monitor]" in str(refused.value) and "token" in str(refused.value)
    assert parse_settings(_settings_text('listen = "0.0.0.0:9464"\ntoken = { env = "T" }')).monitor.token
    assert parse_settings(_settings_text('listen = "[::1]:9464"')).monitor.listen == "[::1]:9464"
    assert parse_settings(_settings_text('listen = "localhost:9464"')).monitor.token is None
    assert parse_settings(_settings_text('listen = ""')).monitor.listen == ""
    with pytest.raises(ConfigError, match="host:port"):
        parse_settings(_settings_text('listen = "9464"'))
    assert parse_settings(_settings_text("")).monitor.listen == "127.0.0.1:9464"  # the default


def test_the_grafana_dashboard_reads_only_metrics_the_daemon_exports():
    root = Path(__file__).resolve().parents[1]
    dashboard = json.loads((root / "config" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    names = {name for expr in exprs for name in re.findall(r"yibao_\w+", expr)}
    used = {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in names}
    source = (root / "adapter" / "monitor" / "metrics.py").read_text(encoding="utf-8")
    declared = set(re.findall(r'"(yibao_\w+)"', source))
    assert used and used <= declared, used - declared
