"""Alerts that start and clear: each condition reaches the ``adapter_alert`` hook once when it
starts and once when it clears, however many cycles it lasts, and a restart neither repeats nor
forgets one. Real cycles against the simulated centre (down, refusing our credentials, refusing
sign-in), the built-in webhook against a loopback HTTP server and mail against a loopback SMTP
server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import update

from adapter.daemon import Daemon
from adapter.monitor.alerts import AlertBook, Condition, state_path
from adapter.plugin import hookimpl
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.spool.states import MessageStatus, RecordStatus
from adapter.state import schema
from adapter.state.store import utcnow
from tests.conftest import import_sample_mapping


class Pager:
    """An alert plugin that writes down what it is told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, dict[str, Any]]] = []

    @hookimpl
    def adapter_alert(self, kind: str, message: str, details: dict[str, Any]) -> None:
        self.calls.append((details["state"], details["alert"], message, details))

    def of(self, key: str) -> list[str]:
        """The states sent for one alert, in order."""
        return [state for state, alert, _, _ in self.calls if alert == key]


def _daemon(adapter: Any) -> tuple[Daemon, Pager]:
    pager = Pager()
    adapter.host.register(pager, name=f"pager-{id(pager)}", version="1", origin="test")
    return Daemon(adapter), pager


def _cycles(daemon: Daemon, count: int) -> None:
    for _ in range(count):
        daemon.run_once()
        time.sleep(0.25)  # past the send stage's short pause after failures


def _until_sent(daemon: Daemon, limit: int = 60) -> None:
    from adapter.monitor.status import unsent_count

    for _ in range(limit):
        daemon.run_once()
        if not unsent_count(daemon.adapter.store):
            return
        time.sleep(0.1)
    raise AssertionError("still unsent")


def test_centre_down_alerts_once_for_many_cycles_and_clears_once(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa", error_rate=1.0)
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    _cycles(daemon, 5)
    assert pager.of("centre_unreachable") == ["start"]
    started = next(call for call in pager.calls if call[1] == "centre_unreachable")
    assert "requests in a row found no centre" in started[2] and "HTTP 503" in started[2]
    assert pager.of("sign_in_failing") == []  # a 503 on 9001 is the centre down, not our sign-in
    assert (tmp_path / "alerts.json").exists()  # the book is kept beside the SQLite state database

    # A restart while it is open: not told again, and the new daemon clears it.
    restarted, second = _daemon(adapter)
    _cycles(restarted, 2)
    assert second.of("centre_unreachable") == []
    centre.faults = FaultPlan()
    _until_sent(restarted)
    _cycles(restarted, 2)
    assert second.of("centre_unreachable") == ["clear"]
    clear = next(call for call in second.calls if call[1] == "centre_unreachable")
    assert clear[2].startswith("已恢复 cleared after") and clear[3]["lasted_seconds"] >= 0
    assert clear[3]["since"] == started[3]["since"]


def test_refused_credentials_are_their_own_cause_not_the_centre_down(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa")
    centre.secrets = {"test_hosp": "someone-else's-token"}
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    _cycles(daemon, 4)
    assert pager.of("sign_in_failing") == ["start"]
    assert pager.of("centre_unreachable") == []
    start = next(call for call in pager.calls if call[1] == "sign_in_failing")
    assert start[3]["cause"] == "credentials" and "HTTP 401" in start[2]
    centre.secrets = {"test_hosp": "test-token-not-a-secret"}
    _until_sent(daemon)
    assert pager.of("sign_in_failing") == ["start", "clear"]


def test_a_refused_sign_in_alerts_with_the_centres_words(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa")
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, extra_centre='ip = ""')  # 9001 without its ip: refused
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    _cycles(daemon, 3)
    assert pager.of("sign_in_failing") == ["start"]
    start = next(call for call in pager.calls if call[1] == "sign_in_failing")
    assert start[3]["cause"] == "refused" and start[3]["infno"] == "9001"
    assert "refuses sign-in (9001)" in start[2]
    assert pager.of("centre_unreachable") == []


def test_old_unsent_records_and_a_stuck_head_alert_per_transaction(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa", error_rate=1.0)
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    _cycles(daemon, 2)
    assert pager.of("oldest_unsent:2301") == [] and pager.of("queue_stuck:2301") == []
    # 13 hours: past half of 2301's 24-hour upload deadline (the region's); and the head, tried
    # and failed, older than [monitor] stuck_minutes
    with adapter.store.begin() as conn:
        conn.execute(update(schema.record).where(schema.record.c.status != RecordStatus.SENT.value)
                     .values(created_at=utcnow() - timedelta(hours=13)))
        conn.execute(update(schema.message).where(schema.message.c.status != MessageStatus.ACKED.value)
                     .values(created_at=utcnow() - timedelta(hours=2)))
    _cycles(daemon, 3)
    assert pager.of("oldest_unsent:2301") == ["start"]
    assert pager.of("queue_stuck:2301") == ["start"]
    oldest = next(call for call in pager.calls if call[1] == "oldest_unsent:2301")
    assert "13 h" in oldest[2] and "24 h" in oldest[2] and oldest[3]["deadline_seconds"] == 24 * 3600
    centre.faults = FaultPlan()
    _until_sent(daemon)
    assert pager.of("oldest_unsent:2301") == ["start", "clear"]
    assert pager.of("queue_stuck:2301") == ["start", "clear"]


def test_parked_records_rising_alerts_once_and_clears_when_they_stop(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, schedule="\n[alerts]\nparked_window_minutes = 0.1")
    import_sample_mapping(adapter, sample_his)  # the sample HIS has unmapped, invalid and malformed rows
    daemon, pager = _daemon(adapter)
    started = time.monotonic()
    _cycles(daemon, 3)
    assert time.monotonic() - started < 6, "the cycles took longer than the window"
    assert pager.of("parked_rising") == ["start"]
    start = next(call for call in pager.calls if call[1] == "parked_rising")
    assert start[3]["rise"] == start[3]["parked"] > 0
    time.sleep(6.5)  # the window passes without a new park
    _cycles(daemon, 2)
    assert pager.of("parked_rising") == ["start", "clear"]


def test_a_catalogue_without_an_active_version_and_a_full_disk(make_adapter, make_centre, sample_his, tmp_path):
    centre = make_centre("nhsa", error_rate=1.0)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule='\n[catalog]\nkinds = ["1301"]\n\n[alerts]\ndisk_free_percent = 99.999')
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    _cycles(daemon, 2)
    assert pager.of("catalog_stale:1301") == ["start"]
    assert "no active version" in next(c for c in pager.calls if c[1] == "catalog_stale:1301")[2]
    assert pager.of("disk_low") == ["start"]
    centre.faults = FaultPlan()
    _until_sent(daemon)
    assert adapter.catalogs.active("1301") is not None
    assert pager.of("catalog_stale:1301") == ["start", "clear"]
    assert pager.of("disk_low") == ["start"]  # still nearly full by that measure


def test_the_book_keeps_open_alerts_across_restarts_and_sends_nothing_twice(tmp_path):
    sent: list[tuple[str, str, dict[str, Any]]] = []
    path = tmp_path / "alerts.json"

    def send(kind: str, message: str, details: dict[str, Any]) -> None:
        sent.append((kind, message, details))

    down = Condition("centre_unreachable", "centre_unreachable", "down", {"requests": 3})
    book = AlertBook(path, send)
    assert book.update([down]) == [("start", "centre_unreachable")]
    assert book.update([down]) == []
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = AlertBook(path, send)
    assert again.update([down]) == []
    # a partial evaluation leaves the other kinds alone
    assert again.update([], kinds=["reconcile_mismatch"]) == []
    assert again.update([]) == [("clear", "centre_unreachable")]
    assert [d["state"] for _, _, d in sent] == ["start", "clear"]
    path.write_text("{not json", encoding="utf-8")
    assert AlertBook(path, send).open == {}  # a damaged book starts empty, and says so in the log


def test_where_the_book_is_kept(make_settings, monkeypatch, tmp_path):
    settings = make_settings(his_url="sqlite:///his.db", state_url=f"sqlite:///{tmp_path / 'x' / 'state.db'}",
                             centre_url="http://127.0.0.1:1")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert state_path(settings) == tmp_path / "x" / "alerts.json"
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/yibao-adapter")
    assert str(state_path(settings)) == "/var/lib/yibao-adapter/alerts.json"
    postgres = make_settings(his_url="sqlite:///his.db", state_url="postgresql+psycopg://u@h/db",
                             centre_url="http://127.0.0.1:1")
    monkeypatch.delenv("STATE_DIRECTORY")
    assert state_path(postgres) is None


# -- the built-in channels ------------------------------------------------------------------------
class Webhook:
    """A loopback HTTP server that keeps every POST (headers and JSON body)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], dict[str, Any]]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.posts.append((dict(self.headers.items()), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # stdlib name
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/yibao"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[Any]:
    aiosmtpd = pytest.importorskip("aiosmtpd.controller")
    from aiosmtpd.handlers import Message

    class Inbox(Message):
        def __init__(self) -> None:
            super().__init__()
            self.mails: list[Any] = []

        def handle_message(self, message: Any) -> None:
            self.mails.append(message)

    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = aiosmtpd.Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    controller.inbox = inbox
    yield controller
    controller.stop()


def test_webhook_and_mail_get_the_start_and_the_clear(make_adapter, make_centre, sample_his, tmp_path, webhook,
                                                       smtp_server, monkeypatch):
    monkeypatch.setenv("TEST_WEBHOOK_TOKEN", "hook-token")
    port = smtp_server.port
    centre = make_centre("nhsa", error_rate=1.0)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule=f"""
[alerts.webhook]
url = "{webhook.url}"
token = {{ env = "TEST_WEBHOOK_TOKEN" }}

[alerts.smtp]
host = "127.0.0.1"
port = {port}
sender = "yibao-adapter@hospital.example"
to = ["his-oncall@hospital.example", "insurance-office@hospital.example"]
""")
    import_sample_mapping(adapter, sample_his)
    daemon = Daemon(adapter)
    assert {"alert-webhook", "alert-smtp"} <= {info.name for info in adapter.host.plugins()}
    _cycles(daemon, 4)
    centre.faults = FaultPlan()
    _until_sent(daemon)

    posted = [(headers, body) for headers, body in webhook.posts if body["alert"] == "centre_unreachable"]
    assert [body["state"] for _, body in posted] == ["start", "clear"]
    headers, body = posted[0]
    assert headers["Authorization"] == "Bearer hook-token"
    assert body["kind"] == "centre_unreachable" and body["source"]["fixmedins_code"] == "H43111100255"
    assert "found no centre" in body["message"] and body["details"]["requests"] >= 3
    def subject(mail: Any) -> str:
        return str(make_header(decode_header(mail["Subject"])))

    mails = [mail for mail in smtp_server.inbox.mails if "centre_unreachable" in subject(mail)]
    assert len(mails) == 2
    assert "告警 ALERT centre_unreachable" in subject(mails[0])
    assert "恢复 CLEARED centre_unreachable" in subject(mails[1])
    assert mails[0]["To"] == "his-oncall@hospital.example, insurance-office@hospital.example"
    assert "found no centre" in mails[0].get_payload(decode=True).decode("utf-8")


def test_a_channel_that_fails_is_logged_and_the_others_still_hear(make_adapter, make_centre, sample_his, tmp_path,
                                                                   caplog):
    centre = make_centre("nhsa", error_rate=1.0)
    adapter = make_adapter(
        his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url=centre.url,
        schedule='\n[alerts.webhook]\nurl = "http://127.0.0.1:9/nobody-listens"\ntimeout_seconds = 1')
    import_sample_mapping(adapter, sample_his)
    daemon, pager = _daemon(adapter)
    with caplog.at_level("ERROR"):
        _cycles(daemon, 4)
    assert pager.of("centre_unreachable") == ["start"]
    assert "alert plugin alert-webhook failed: alert webhook http://127.0.0.1:9/nobody-listens not reached" \
        in caplog.text
    assert "ALERT centre_unreachable:" in caplog.text  # the built-in log line
