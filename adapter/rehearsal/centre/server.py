"""The simulated centre's HTTP server (stdlib ThreadingHTTPServer, loopback only).

Every request is checked against the published tables of the region's edition (the envelope
always; the ``input`` unless ``check_tables=False``) and refused as a real centre refuses it:
infcode -1 with an err_msg naming the field. Faults (:mod:`adapter.rehearsal.centre.faults`)
are injected around the processing; :meth:`SimulatedCentre.restart` forgets every session.

``GET /sim/totals`` returns the ledger's totals as JSON for tests, ``demo`` and people.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from adapter import jsonio
from adapter.errors import SecurityError
from adapter.outbound.signing import verify_gateway
from adapter.plugin.api import RegionProfile
from adapter.rehearsal.centre import catalogues, files
from adapter.rehearsal.centre.checks import Refusal
from adapter.rehearsal.centre.faults import Fault, FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.rehearsal.centre.protocol import check_envelope, handle
from adapter.rehearsal.centre.tables import TableCheck
from adapter.rehearsal.sample_his import sample_catalogues
from adapter.spec.tables import load_edition

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: what a busy centre answers (FaultPlan.busy_rate), without processing
BUSY_MESSAGE = "系统繁忙,请稍后再试"
#: fields that say whose answer it is: a foreign answer (COMMIT_THEN_FOREIGN) made from the
#: request's own has these changed
_IDENTIFYING = frozenset({"feedetl_sn", "mdtrt_id", "setl_id", "setl_list_id", "psn_no", "ipt_otp_no",
                          "file_qury_no", "sign_no"})


@dataclass(frozen=True)
class RawReply:
    """A body answered as it is (COMMIT_THEN_GARBAGE: not JSON)."""

    content: bytes
    content_type: str


class SimulatedCentre:
    """Start with :meth:`start`, stop with :meth:`stop`; ``url`` is where it listens."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        gateway: str = "tif",
        secrets: Mapping[str, str] | None = None,
        region: RegionProfile | None = None,
        faults: FaultPlan | None = None,
        area: str = "430000",
        max_clock_skew_seconds: float = 300.0,
        check_tables: bool = True,
    ) -> None:
        """``secrets`` maps the caller's id (paasid, access key or x-ca-key) to its secret.
        With a ``region``, the centre also checks its URL style and infver. The envelope is
        checked against the request table of the region's edition (the default edition
        without a region). ``check_tables`` (on by default, as a real centre): every request's
        ``input`` is checked against the published tables of that edition and refused with
        the fields named; every answer's shape is checked too (the problems are kept in
        ``ledger.output_problems``). Off, only the handlers' business rules refuse."""
        if host not in LOOPBACK_HOSTS:
            raise ValueError(f"the simulated centre listens on loopback only, not {host!r}")
        self.gateway = gateway
        self.secrets = dict(secrets or {})
        self.region = region
        self.faults = faults or FaultPlan()
        self.ledger = CentreLedger()
        self.tables = TableCheck(region) if check_tables else None
        self.edition = load_edition(region.interface_edition) if region is not None else load_edition()
        #: infno -> the last two (msgid, output) answered with infcode 0 (COMMIT_THEN_FOREIGN)
        self._answers: dict[str, deque[tuple[str, Any]]] = {}
        self.ledger.catalogues = sample_catalogues()
        self.area = region.areas[0] if region is not None and region.areas else area
        self.max_clock_skew_seconds = max_clock_skew_seconds
        self._server = ThreadingHTTPServer((host, port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        # A bound AF_INET socket reports its host as text (the stubs also allow bytes).
        assert isinstance(host, str)
        return f"http://{host}:{port}"

    def start(self) -> SimulatedCentre:
        """Serve in a background thread (once: starting a started centre does nothing)."""
        if self._thread is not None and self._thread.is_alive():
            return self
        self._thread = threading.Thread(target=self._server.serve_forever, name="centre", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatedCentre:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def restart(self) -> None:
        """Forget every sign_no, as a restart of the centre does (what it committed stays): a
        message with one is then refused "签到信息不存在,请重新签到" (counted in
        ``ledger.forgotten_session_refusals``); each restart counts as the fault "restart"."""
        with self.ledger.lock:
            self.ledger.forgotten_sign_nos.update(self.ledger.sign_nos)
            self.ledger.sign_nos.clear()
            self.ledger.faults["restart"] += 1

    # -- the settlement ledger, changed by tests to create differences ------------------------
    def lose_settlement(self, setl_id: str) -> None:
        self.ledger.remove_settlement(setl_id)

    def alter_settlement(self, setl_id: str, **changes: Any) -> None:
        self.ledger.change_settlement(setl_id, **changes)

    def add_settlement(self, row: Mapping[str, Any]) -> None:
        self.ledger.record_settlement(row)

    def publish_file(self, filename: str, content: bytes) -> str:
        """Offer a file for 9102 (catalogues, 3202 results); returns its file_qury_no."""
        return files.store(self.ledger, filename, content)

    def respond(
        self, headers: Mapping[str, str], body: bytes, path: str = "", attachment: bytes | None = None
    ) -> tuple[int, dict[str, Any] | files.FileReply]:
        """Verify, dispatch and answer one request (after faults were applied). ``body`` is the
        JSON message (the ``jsonStr`` part of a multipart request, whose ``file`` part is
        ``attachment``)."""
        received = datetime.now()
        try:
            verify_gateway(
                self.gateway, headers, body, self.secrets, time.time(), self.max_clock_skew_seconds
            )
        except SecurityError as exc:
            with self.ledger.lock:
                self.ledger.faults["gateway_refused"] += 1
            return 401, {"code": 401, "message": str(exc)}
        try:
            routed = self.region.infno_for_path(path) if self.region is not None else None
        except KeyError:
            return 404, {"code": 404, "message": f"服务地址不存在: {path}"}
        infno = "?"
        try:
            try:
                document = jsonio.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise Refusal("请求报文不是合法的UTF-8 JSON") from None
            infno = check_envelope(document, self.ledger, self.faults, self.edition,
                                       self.region.table_changes if self.region is not None else ())
            self._check_region(infno, routed, headers, document)
            if self.tables is not None:
                self.tables.request(infno, document)
            with self.ledger.lock:
                self.ledger.requests[infno] += 1
                self.ledger.paths.setdefault(infno, set()).add(path)
                self.ledger.gateway_headers.setdefault(infno, set()).update(
                    key.lower() for key in headers if key.lower().startswith(("x-", "_api_"))
                )
            if attachment is not None:
                upload = document["input"].get("fsUploadIn")
                if infno != files.UPLOAD or not isinstance(upload, dict):
                    raise Refusal("只有文件上传[9101]可以附带文件")
                upload["in"] = attachment
            if self.region is not None and infno in self.region.catalogues:
                output = catalogues.serve(document, self.ledger, self.faults, self.region.catalogues, self.edition)
            else:
                output = handle(infno, document, self.ledger, self.faults)
        except Refusal as exc:
            with self.ledger.lock:
                self.ledger.rejected[infno] += 1
            return 200, self._envelope(-1, str(exc), None, received)
        with self.ledger.lock:
            self.ledger.accepted[infno] += 1
            if self.tables is not None and not isinstance(output, files.FileReply):
                for problem in self.tables.answer(infno, output):
                    self.ledger.output_problems[infno].add(problem)
        if isinstance(output, files.FileReply):
            return 200, output
        self._remember(infno, str(document.get("msgid") or ""), output)
        return 200, self._envelope(0, "success", output, received)

    # -- faults around one request -----------------------------------------------------------
    def busy(self) -> dict[str, Any]:
        """The answer of a busy centre (FaultPlan.busy_rate): nothing was processed."""
        return self._envelope(-1, BUSY_MESSAGE, None, datetime.now())

    def spoiled(self, fault: Fault, body: bytes, status: int, document: dict[str, Any] | files.FileReply
                ) -> tuple[int, dict[str, Any] | files.FileReply | RawReply] | None:
        """What a COMMIT_THEN_* ``fault`` answers instead of ``document`` (the answer to the
        request ``body``, processed and committed), or None where it does not apply (a file, or
        an answer that is no envelope, has no infcode to leave out or output to replace)."""
        if fault is Fault.COMMIT_THEN_5XX:
            code = self.faults.gateway_status()
            words = "Bad Gateway" if code == 502 else "Gateway Timeout"
            page = f"<html><head><title>{code} {words}</title></head><body><h1>{code} {words}</h1></body></html>"
            return code, RawReply(page.encode("utf-8"), "text/html;charset=utf-8")
        if fault is Fault.COMMIT_THEN_GARBAGE:
            page = "<html><body>系统异常, 请联系管理员 (injected)</body></html>"
            return 200, RawReply(page.encode("utf-8"), "text/html;charset=utf-8")
        if not isinstance(document, dict) or "infcode" not in document:
            return None
        if fault is Fault.COMMIT_THEN_NO_INFCODE:
            return status, {key: value for key, value in document.items() if key != "infcode"}
        if fault is Fault.COMMIT_THEN_FOREIGN:
            infno, msgid = _peek(body)
            return 200, {**document, "infcode": 0, "err_msg": "success",
                         "output": self._foreign(infno, msgid, document.get("output"))}
        return None

    def _remember(self, infno: str, msgid: str, output: Any) -> None:
        with self.ledger.lock:
            self._answers.setdefault(infno, deque(maxlen=2)).append((msgid, output))

    def _foreign(self, infno: str, msgid: str, output: Any) -> Any:
        """Another request's answer: the last of the same infno to another message where there is
        one, else this answer with whatever says whose it is changed (X + the value)."""
        with self.ledger.lock:
            earlier = [answer for sent, answer in self._answers.get(infno, ()) if sent != msgid]
        if earlier and earlier[-1] != output:
            return earlier[-1]
        if output is None:
            return {"result": []}
        return _renamed(output)

    def count_fault(self, fault: Fault) -> None:
        with self.ledger.lock:
            self.ledger.faults[fault.value] += 1

    def _check_region(
        self, infno: str, routed: str | None, headers: Mapping[str, str], document: Mapping[str, Any]
    ) -> None:
        if routed is not None and routed != infno:
            raise Refusal(f"交易编号[{infno}]与服务地址[{routed}]不一致")
        api_name = {k.lower(): v for k, v in headers.items()}.get("_api_name")
        if api_name is not None and api_name != infno:
            raise Refusal(f"交易编号[{infno}]与网关接口名[_api_name={api_name}]不一致")
        if self.region is not None and self.region.areas:
            if document.get("mdtrtarea_admvs") not in self.region.areas:
                raise Refusal(f"就医地医保区划[{document.get('mdtrtarea_admvs')}]不属于本中心")
        if self.region is not None and document.get("infver") != self.region.infver:
            raise Refusal(f"接口版本号[infver={document.get('infver')}]错误, 应为{self.region.infver}")

    def _envelope(self, infcode: int, err_msg: str, output: Any, received: datetime) -> dict[str, Any]:
        serial = self.ledger.next_serial()
        return {
            "infcode": infcode,
            "inf_refmsgid": f"{self.area}{received:%Y%m%d%H%M%S}{serial:010d}",
            "refmsg_time": received.strftime("%Y%m%d%H%M%S%f")[:17],
            "respond_time": datetime.now().strftime("%Y%m%d%H%M%S%f")[:17],
            "err_msg": err_msg,
            "warn_msg": None,
            "cainfo": None,
            "signtype": None,
            "enctype": None,
            "output": output,
        }


def _peek(body: bytes) -> tuple[str, str]:
    """(infno, msgid) of a request body, or empty strings."""
    try:
        document = jsonio.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    return str(document.get("infno") or ""), str(document.get("msgid") or "")


def _renamed(value: Any) -> Any:
    """A copy of an output whose identifying fields (feedetl_sn, mdtrt_id, ...) name another."""
    if isinstance(value, Mapping):
        return {key: f"X{item}" if key in _IDENTIFYING and isinstance(item, str) and item else _renamed(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_renamed(item) for item in value]
    return value


def _make_handler(centre: SimulatedCentre) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "yibao-simulated-centre"
        # The stdlib handler writes an answer's headers and body in two writes; with Nagle on,
        # the body waits for the client's delayed ACK, about 40 ms a request on Linux loopback.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # stdlib name
            logger.debug("centre: " + format, *args)

        def do_GET(self) -> None:  # stdlib name
            if self.path.rstrip("/") == "/sim/totals":
                self._send(200, centre.ledger.totals())
            else:
                self._send(404, {"code": 404, "message": "not found"})

        def do_POST(self) -> None:  # stdlib name
            with centre.ledger.lock:
                centre.ledger.in_progress += 1
                centre.ledger.most_at_once = max(centre.ledger.most_at_once, centre.ledger.in_progress)
            try:
                self._post()
            finally:
                with centre.ledger.lock:
                    centre.ledger.in_progress -= 1

        def _post(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            fault, latency = centre.faults.draw()
            if latency:
                time.sleep(latency)
            if fault in (Fault.SERVER_ERROR, Fault.RESET, Fault.TIMEOUT, Fault.BUSY):
                centre.count_fault(fault)
                self._refuse_unprocessed(fault)
                return
            headers = dict(self.headers.items())
            try:
                body, attachment = files.split_multipart(headers, body)
            except ValueError as exc:
                self._send(400, {"code": 400, "message": f"multipart请求格式错误: {exc}"})
                return
            try:
                status, document = centre.respond(headers, body, self.path, attachment)
            except Exception as exc:  # a bug in the simulator answers 500, as a real server would
                logger.exception("simulated centre failed on %s", self.path)
                self._send(500, {"code": 500, "message": f"internal error: {type(exc).__name__}: {exc}"})
                return
            # Processed and committed above; an after-commit fault spoils the answer on its way back.
            if fault is Fault.DROP_REPLY:
                centre.count_fault(fault)
                self._reset()
                return
            spoiled = centre.spoiled(fault, body, status, document) if fault is not Fault.NONE else None
            if spoiled is not None:
                centre.count_fault(fault)
                status, reply = spoiled
                self._send(status, reply)
                return
            self._send(status, document)

        def _refuse_unprocessed(self, fault: Fault) -> None:
            """The faults before processing: nothing reaches the centre's ledger."""
            if fault is Fault.SERVER_ERROR:
                self._send(503, {"code": 503, "message": "服务暂不可用 (injected)"})
            elif fault is Fault.BUSY:
                self._send(200, centre.busy())
            else:
                if fault is Fault.TIMEOUT:
                    time.sleep(centre.faults.timeout_seconds)
                self._reset()

        def _send(self, status: int, document: Any) -> None:
            if isinstance(document, files.FileReply):
                payload, content_type = document.content, "application/octet-stream"
            elif isinstance(document, RawReply):
                payload, content_type = document.content, document.content_type
            else:
                payload, content_type = jsonio.dumps(document).encode("utf-8"), "application/json;charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def finish(self) -> None:
            try:
                super().finish()
            except (OSError, ValueError):
                pass  # the connection was reset on purpose (fault injection)

        def _reset(self) -> None:
            # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
