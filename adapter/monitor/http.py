"""The daemon's HTTP endpoint, in a thread of its own (stdlib ``http.server``): ``/metrics``
(Prometheus), ``/healthz`` (alive: the cycle makes progress), ``/readyz`` (ready to upload, with
the reasons when not) and ``/`` (the status page).

It listens on 127.0.0.1 unless configured otherwise; off loopback the configuration requires a
token, and with a token every request must carry ``Authorization: Bearer <token>`` (compared in
constant time). It only reads: nothing here changes the spool. A request that fails is answered
500 and logged; it never reaches the cycle.
"""

from __future__ import annotations

import hmac
import html
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry

from adapter.errors import ConfigError, StateStoreError
from adapter.monitor.alerts import OpenAlert
from adapter.monitor.health import Health
from adapter.monitor.metrics import exposition
from adapter.monitor.page import Page

logger = logging.getLogger(__name__)


class MonitorServer:
    """Serves one :class:`Health` until :meth:`stop`."""

    def __init__(self, host: str, port: int, health: Health, registry: CollectorRegistry, *,
                 token: str | None = None, alerts: Callable[[], list[OpenAlert]] = list,
                 refresh_seconds: int = 30) -> None:
        self.health = health
        self.registry = registry
        self.token = token
        self.alerts = alerts
        self.refresh_seconds = refresh_seconds
        try:
            self._server = _Server((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(f"[monitor] listen: cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        self._server.monitor = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="monitor-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> MonitorServer:
        self._thread.start()
        logger.info("monitor endpoint at %s", self.url, extra={"action": "monitor_listening"})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- answers -----------------------------------------------------------------------------
    def answer(self, path: str) -> tuple[int, str, bytes]:
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, exposition(self.registry)
        if route == "/healthz":
            alive, body = self.health.liveness()
            return _json(200 if alive else 503, body)
        if route == "/readyz":
            ready, body = self.health.readiness()
            return _json(200 if ready else 503, body)
        if route in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", self._page().encode("utf-8")
        return 404, "text/plain; charset=utf-8", b"not found: try /, /metrics, /healthz or /readyz\n"

    def _page(self) -> str:
        health = self.health
        checks = health.checks()
        try:
            snapshot = health.snapshot()
        except StateStoreError as exc:
            return f"<!DOCTYPE html><meta charset=utf-8><title>yibao-adapter</title><p>状态库无法读取 the state " \
                   f"store cannot be read: {html.escape(str(exc))}</p>"
        return Page(health.observed, health.runtime, snapshot, checks, self.alerts(), self.refresh_seconds).render()

    def authorised(self, header: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, presented = (header or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), self.token.encode())


def _json(status: int, body: dict[str, Any]) -> tuple[int, str, bytes]:
    return status, "application/json; charset=utf-8", json.dumps(body, ensure_ascii=False, indent=1).encode("utf-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    monitor: MonitorServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "yibao-adapter"
    sys_version = ""

    def do_GET(self) -> None:
        monitor = self.server.monitor
        if not monitor.authorised(self.headers.get("Authorization")):
            self._reply(401, "text/plain; charset=utf-8", b"a bearer token is required\n",
                        {"WWW-Authenticate": 'Bearer realm="yibao-adapter"'})
            return
        try:
            status, content_type, body = monitor.answer(self.path)
        except Exception as exc:  # the endpoint must never take the daemon down
            logger.exception("monitor request %s failed", self.path, extra={"action": "monitor_failed"})
            status, content_type, body = 500, "text/plain; charset=utf-8", f"failed: {exc}\n".encode()
        self._reply(status, content_type, body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def _reply(self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("monitor %s " + format, self.address_string(), *args, extra={"action": "monitor_request"})
