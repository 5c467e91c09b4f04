"""A hostile HTTP proxy on loopback, in front of a simulated centre.

Every request is forwarded to the real centre first, so whatever the centre does with it (commit,
refuse) has happened. Then, by configurable shares per request, the proxy lies to the adapter
about it instead of handing the centre's answer back:

* ``http_502`` / ``http_504``: an HTML error page with that status, as a broken gateway would;
* ``not_json``: HTTP 200 with a body that is not JSON;
* ``no_infcode``: HTTP 200 with the centre's own answer, its ``infcode`` removed;
* ``replay``: HTTP 200 with an earlier infcode-0 answer of the same infno that belonged to another
  request (the answer actually given to this request is thrown away);
* ``close``: nothing at all: the connection is closed without a byte of answer.

Every response is written in one piece with ``Connection: close``, so each request has a
connection of its own and a fault never bleeds into the next request. The draws come from one
seeded generator; what was injected is counted per kind (and per kind and infno).
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

#: The faults, in the order their shares are drawn.
FAULT_KINDS = ("http_502", "http_504", "not_json", "no_infcode", "replay", "close")

_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})
_ERROR_PAGES = {
    502: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>"
         b"<hr><center>nginx</center></body></html>\r\n",
    504: b"<html><head><title>504 Gateway Time-out</title></head><body><center><h1>504 Gateway Time-out</h1>"
         b"</center><hr><center>nginx</center></body></html>\r\n",
}
_NOT_JSON = (b"<html><body><h1>\xe7\xb3\xbb\xe7\xbb\x9f\xe7\xb9\x81\xe5\xbf\x99</h1>"  # 系统繁忙
             b"<p>the front-end processor is busy, please try later</p></body></html>")
#: how many infcode-0 answers per infno are kept for replays
_REPLAY_MEMORY = 64


@dataclass(frozen=True)
class HostilePlan:
    """Shares are probabilities per request (they add up to at most 1); the rest pass through."""

    http_502: float = 0.0
    http_504: float = 0.0
    not_json: float = 0.0
    no_infcode: float = 0.0
    replay: float = 0.0
    close: float = 0.0
    #: share of 9001 sign-ins passed through untouched whatever the draw, so that progress stays
    #: possible (the others get the same draw as any request)
    sign_in_untouched: float = 0.5
    #: a replay replaces only an infcode-0 answer (a forged acceptance of a request the centre
    #: refused is undetectable for a transaction whose answer has no output, so by default the
    #: proxy does not forge one); True: any answer of the centre may be replaced
    replay_over_refusals: bool = False

    def __post_init__(self) -> None:
        for name in (*FAULT_KINDS, "sign_in_untouched"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if sum(self.shares().values()) > 1.0 + 1e-9:
            raise ValueError("the fault shares add up to more than 1")

    def shares(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FAULT_KINDS}

    @property
    def hostile(self) -> bool:
        return any(self.shares().values())

    def describe(self) -> str:
        given = {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}
        return ", ".join(f"{k}={v}" for k, v in given.items()) or "pass-through"


@dataclass
class ProxyCounts:
    requests: int = 0
    #: requests the proxy answered with the centre's own answer
    passed: int = 0
    #: 9001 sign-ins passed through because of ``sign_in_untouched``
    sign_ins_spared: int = 0
    #: replays drawn when there was nothing to replay (or the answer was a refusal): passed through
    replays_unavailable: int = 0
    #: requests the centre did not answer (the proxy closed the adapter's connection too)
    upstream_failures: int = 0
    #: answers that could not be delivered (the adapter had gone, e.g. killed)
    undeliverable: int = 0
    #: requests that ended before their body did (the adapter was killed while sending): dropped
    truncated_requests: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    injected_by_infno: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_infno: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class _Upstream:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class HostileProxy:
    """Start with :meth:`start` (or ``with``), stop with :meth:`stop`; ``url`` is the adapter's
    ``base_url``. :meth:`set_plan` changes the shares while it runs."""

    def __init__(self, upstream_url: str, plan: HostilePlan | None = None, *, seed: int = 0,
                 host: str = "127.0.0.1", upstream_timeout: float = 60.0) -> None:
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the hostile proxy listens on loopback only, not {host!r}")
        target = urlsplit(upstream_url)
        if target.scheme != "http" or not target.hostname or not target.port:
            raise ValueError(f"upstream must be http://host:port, not {upstream_url!r}")
        self._upstream = (target.hostname, target.port)
        self._upstream_timeout = upstream_timeout
        self._plan = plan or HostilePlan()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._answers: dict[str, list[bytes]] = {}
        self.counts = ProxyCounts()
        self._server = _QuietServer((host, 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HostileProxy:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="hostile-proxy", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HostileProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # -- plan and counts -----------------------------------------------------------------------
    @property
    def plan(self) -> HostilePlan:
        return self._plan

    def set_plan(self, plan: HostilePlan) -> None:
        with self._lock:
            self._plan = plan

    def seen(self) -> int:
        """Requests received so far (every infno, faults or not)."""
        with self._lock:
            return self.counts.requests

    def injected(self) -> dict[str, int]:
        with self._lock:
            return {kind: self.counts.injected[kind] for kind in FAULT_KINDS if self.counts.injected[kind]}

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            c = self.counts
            return {
                "requests": c.requests, "passed": c.passed, "sign_ins_spared": c.sign_ins_spared,
                "replays_unavailable": c.replays_unavailable, "upstream_failures": c.upstream_failures,
                "undeliverable": c.undeliverable, "truncated_requests": c.truncated_requests,
                "injected": dict(c.injected),
                "injected_by_infno": {f"{k}/{i}": n for (k, i), n in sorted(c.injected_by_infno.items())},
                "by_infno": dict(c.by_infno),
            }

    # -- one request -------------------------------------------------------------------------
    def _draw(self, infno: str) -> str:
        with self._lock:
            self.counts.requests += 1
            self.counts.by_infno[infno] += 1
            plan = self._plan
            if not plan.hostile:
                return "pass"
            if infno == "9001" and self._rng.random() < plan.sign_in_untouched:
                self.counts.sign_ins_spared += 1
                return "pass"
            roll = self._rng.random()
            for kind, share in plan.shares().items():
                if roll < share:
                    return kind
                roll -= share
            return "pass"

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> _Upstream | None:
        conn = http.client.HTTPConnection(*self._upstream, timeout=self._upstream_timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body)
            response = conn.getresponse()
            payload = response.read()
            return _Upstream(response.status, response.reason, [
                (k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP
            ], payload)
        except (OSError, http.client.HTTPException):
            with self._lock:
                self.counts.upstream_failures += 1
            return None
        finally:
            conn.close()

    def _answer_for(self, infno: str, kind: str, upstream: _Upstream) -> tuple[str, _Upstream | None]:
        """The fault actually applied and what to answer (None: close without answering)."""
        document = _json_object(upstream.body)
        real_ok = document is not None and str(document.get("infcode", "")).strip() == "0"
        replayed = b""
        with self._lock:
            plan = self._plan
            if kind == "replay":
                earlier = self._answers.get(infno, [])
                if not earlier or not (real_ok or plan.replay_over_refusals):
                    self.counts.replays_unavailable += 1
                    kind = "pass"
                else:
                    replayed = self._rng.choice(earlier)
            if kind == "no_infcode" and document is None:
                kind = "not_json"  # nothing to take the infcode out of: the body is no JSON already
            if real_ok and upstream.status == 200:
                memory = self._answers.setdefault(infno, [])
                memory.append(upstream.body)
                del memory[:-_REPLAY_MEMORY]
            if kind == "pass":
                self.counts.passed += 1
            else:
                self.counts.injected[kind] += 1
                self.counts.injected_by_infno[(kind, infno)] += 1
        if kind == "pass":
            return kind, upstream
        if kind == "close":
            return kind, None
        if kind in ("http_502", "http_504"):
            status = int(kind[-3:])
            return kind, _Upstream(status, http.client.responses[status],
                                   [("Content-Type", "text/html")], _ERROR_PAGES[status])
        if kind == "not_json":
            return kind, _Upstream(200, "OK", [("Content-Type", "text/html;charset=utf-8")], _NOT_JSON)
        if kind == "no_infcode":
            assert document is not None
            stripped = {k: v for k, v in document.items() if k != "infcode"}
            return kind, _Upstream(200, "OK", [("Content-Type", "application/json;charset=utf-8")],
                                   json.dumps(stripped, ensure_ascii=False).encode("utf-8"))
        return kind, _Upstream(200, "OK", [("Content-Type", "application/json;charset=utf-8")], replayed)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed daemon) is no error of the proxy's."""
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handle_error(request, client_address)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _infno_of(body: bytes, path: str) -> str:
    document = _json_object(body)
    if document is not None and isinstance(document.get("infno"), str):
        return str(document["infno"])
    if b"jsonStr" in body:  # a multipart request (9101): the message is one of the parts
        start = body.find(b'"infno"')
        if start >= 0:
            tail = body[start + 7:start + 40].split(b'"')
            if len(tail) > 1:
                return tail[1].decode("ascii", "replace")
    return path.rstrip("/").rsplit("/", 1)[-1] or "?"


def _read_chunked(stream: Any) -> Iterator[bytes]:
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return
        yield stream.read(size)
        stream.readline()


def _make_handler(proxy: HostileProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "hostile-proxy"

        def log_message(self, format: str, *args: Any) -> None:  # stdlib name
            pass

        def do_GET(self) -> None:  # stdlib name
            self._relay()

        def do_POST(self) -> None:  # stdlib name
            self._relay()

        def _relay(self) -> None:
            self.close_connection = True
            try:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    body = b"".join(_read_chunked(self.rfile))
                else:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = self.rfile.read(length)
                    if len(body) < length:
                        raise ConnectionError("the request ended early")
            except (OSError, ValueError):
                # the adapter went away while sending (killed): nothing to forward
                with proxy._lock:
                    proxy.counts.truncated_requests += 1
                return
            infno = _infno_of(body, self.path) if self.command == "POST" else "GET"
            kind = proxy._draw(infno)
            upstream = proxy._forward(self.command, self.path, list(self.headers.items()), body)
            if upstream is None:
                return  # the centre did not answer: neither does the proxy
            _kind, answer = proxy._answer_for(infno, kind, upstream)
            if answer is None:
                return  # close without a byte of answer
            head = [f"HTTP/1.1 {answer.status} {answer.reason}"]
            head += [f"{name}: {value}" for name, value in answer.headers]
            head += [f"Content-Length: {len(answer.body)}", "Connection: close", "", ""]
            try:
                self.wfile.write("\r\n".join(head).encode("latin-1") + answer.body)
                self.wfile.flush()
            except OSError:
                with proxy._lock:
                    proxy.counts.undeliverable += 1

        def finish(self) -> None:
            try:
                super().finish()
            except OSError:
                pass  # the adapter went away (killed) before the answer

    Handler.disable_nagle_algorithm = True
    return Handler

