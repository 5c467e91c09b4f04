"""A suite that proves it: every eligible record reaches the centre exactly once, whatever the
network does and however often the daemon is killed.

Each run starts the daemon as a real OS process (``yibao-adapter run``, a cycle every 1.2 s),
SIGKILLs it at random moments (``--kills N``, default 20) and restarts it each time, while either
the simulated centre injects faults (503s, resets, timeouts, replies dropped after commit) or a
hostile proxy in front of it lies about the centre's answers after the centre has committed
(502/504, a non-JSON 200, an answer without infcode, an answer that belongs to another request,
no answer at all). Then the faults stop and the daemon runs until nothing is left to send.

The verdict reads the centre's ledger and the state database and compares them with a
fault-free run of the same sample HIS in this process: the centre must hold every item the
reference's holds, once (no repeat counted anywhere in its ledger), nothing else, and every
record must end where the reference's did (sent, or withdrawn by a cancel that overtook it, or
parked with a kind and a reason). SQLite with one daemon; PostgreSQL with two daemons sharing the
database, both killed at random. One run sends four messages in flight at once (``in_flight``:
a wave's attempts registered in one commit, its acks in another) under the centre's faults.
Each run prints one summary line.

Options (tests/conftest.py): ``--kills N`` (env ``EXACTLY_ONCE_KILLS``), ``--exactly-once-seed S``
(``EXACTLY_ONCE_SEED``), ``--exactly-once-large`` (``EXACTLY_ONCE_LARGE=1``) for the opt-in runs:
the kills-only control (no network fault) and the larger runs (a HIS four times the size, 60
kills, and both kinds of faults at once).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from adapter.rehearsal.sample_his import SampleHis
from tests.harness.accounting import Reference
from tests.harness.hostile_proxy import HostilePlan, HostileProxy
from tests.harness.scenario import HisSize, Scenario, reference_run, run_scenario, sample_his

CI_SIZE = HisSize("ci", visits=20, lines_per_visit=12, kills=20, quiet_timeout_seconds=90)
LARGE_SIZE = HisSize("large", visits=80, lines_per_visit=15, kills=60, quiet_timeout_seconds=300)

#: the control: kills only, no network fault (crash recovery alone)
KILLS_ONLY = Scenario("kills_only")
CENTRE_FAULTS = Scenario("centre_faults", centre_faults={
    "error_rate": 0.10, "reset_rate": 0.05, "timeout_rate": 0.03, "timeout_seconds": 1.0, "drop_reply_rate": 0.08,
})
HOSTILE_PROXY = Scenario("hostile_proxy", proxy=HostilePlan(
    http_502=0.05, http_504=0.05, not_json=0.05, no_infcode=0.05, replay=0.06, close=0.06,
))
#: the centre's faults with four messages in flight at once (their attempts registered together)
IN_FLIGHT = Scenario("in_flight_4", centre_faults=CENTRE_FAULTS.centre_faults, in_flight=4)
BOTH = Scenario("both", centre_faults={
    "error_rate": 0.05, "reset_rate": 0.03, "timeout_rate": 0.02, "timeout_seconds": 1.0, "drop_reply_rate": 0.05,
}, proxy=HostilePlan(http_502=0.03, http_504=0.03, not_json=0.03, no_infcode=0.03, replay=0.04, close=0.04))

RUNS = [
    pytest.param(CENTRE_FAULTS, CI_SIZE, id="centre_faults"),
    pytest.param(HOSTILE_PROXY, CI_SIZE, id="hostile_proxy"),
    pytest.param(IN_FLIGHT, CI_SIZE, id="in_flight"),
    # opt-in (--exactly-once-large): the control without network faults, and the larger runs
    pytest.param(KILLS_ONLY, CI_SIZE, id="kills_only", marks=pytest.mark.exactly_once_large),
    *(pytest.param(scenario, LARGE_SIZE, id=f"{scenario.name}-large", marks=pytest.mark.exactly_once_large)
      for scenario in (KILLS_ONLY, CENTRE_FAULTS, HOSTILE_PROXY, BOTH)),
]


def _option(config: pytest.Config, name: str, env: str) -> str | None:
    value = config.getoption(name)
    if value not in (None, False):
        return str(value)
    return os.environ.get(env) or None


class References:
    """One sample HIS and its fault-free reference run per size, shared by the runs of a session
    (made on first use, inside a test, where the gateway credentials are in the environment)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: dict[str, tuple[SampleHis, Reference]] = {}

    def get(self, size: HisSize) -> tuple[SampleHis, Reference]:
        if size.name not in self._made:
            where = self.directory / size.name
            his = sample_his(where, size)
            self._made[size.name] = (his, reference_run(his, where / "reference"))
        return self._made[size.name]


@pytest.fixture(scope="session")
def references(tmp_path_factory: pytest.TempPathFactory) -> Iterator[References]:
    yield References(tmp_path_factory.mktemp("exactly-once-reference"))


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "size"), RUNS)
def test_exactly_once(request: pytest.FixtureRequest, references: References, state_url: str, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str], scenario: Scenario, size: HisSize) -> None:
    config = request.config
    if request.node.get_closest_marker("exactly_once_large") and not (
        config.getoption("--exactly-once-large") or os.environ.get("EXACTLY_ONCE_LARGE") == "1"
    ):
        pytest.skip("an opt-in exactly-once run: --exactly-once-large (or EXACTLY_ONCE_LARGE=1)")
    kills = int(_option(config, "--kills", "EXACTLY_ONCE_KILLS") or size.kills)
    seed = int(_option(config, "--exactly-once-seed", "EXACTLY_ONCE_SEED") or 1)
    store = "sqlite" if state_url.startswith("sqlite") else "postgresql"
    daemons = 1 if store == "sqlite" else 2

    his, reference = references.get(size)
    result = run_scenario(scenario=scenario, size=size, reference=reference, his=his, directory=tmp_path,
                          state_url=state_url, store=store, daemons=daemons, kills=kills, seed=seed)
    line = result.summary()
    with capsys.disabled():
        print(f"\n{line}")
    request.node.user_properties.append(("exactly_once", line))

    assert result.kills.kills == kills
    if scenario.centre_faults or scenario.proxy is not None:
        assert result.faults, f"no fault was injected: the run proves nothing\n{line}"
    verdict = result.verdict
    assert result.quiet_finished and verdict.exactly_once, (
        f"{line}\n{scenario.describe()}\n"
        + ("" if result.quiet_finished else
           f"  work was still left {result.quiet_seconds:.0f}s after the faults stopped"
           f"{f' (nothing changed for {size.stall_seconds:.0f}s)' if result.stalled else ''}\n")
        + f"{verdict.details()}\n  proxy: {result.proxy_counts}\n  daemon logs: {result.log_dir}"
    )


# -- the hostile proxy itself (fast: a stub centre behind it) -------------------------------------
class _StubCentre:
    """Answers every POST with infcode 0 and the request's msgid in ``output``; counts them."""

    def __init__(self) -> None:
        self.received: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # stdlib name
                pass

            def do_POST(self) -> None:  # stdlib name
                document = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.received.append(document["msgid"])
                refused = document["msgid"].startswith("refuse")
                body = json.dumps({"infcode": -1 if refused else 0, "err_msg": "refused" if refused else "success",
                                   "output": {"msgid": document["msgid"]}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def stub_centre() -> Iterator[_StubCentre]:
    stub = _StubCentre()
    yield stub
    stub.stop()


def _post(client: httpx.Client, url: str, msgid: str, infno: str = "2301") -> httpx.Response:
    return client.post(f"{url}/fsi/api/{infno}", content=json.dumps({"infno": infno, "msgid": msgid}).encode())


@pytest.mark.parametrize("kind", ["http_502", "http_504", "not_json", "no_infcode", "close"])
def test_hostile_proxy_forwards_then_lies(stub_centre: _StubCentre, kind: str) -> None:
    plan = HostilePlan(**cast(dict[str, Any], {kind: 1.0}))
    with HostileProxy(stub_centre.url, plan, seed=3) as proxy, httpx.Client() as client:
        if kind == "close":
            with pytest.raises(httpx.RemoteProtocolError):
                _post(client, proxy.url, "m1")
        else:
            reply = _post(client, proxy.url, "m1")
            if kind.startswith("http_"):
                assert reply.status_code == int(kind[-3:])
                assert b"<html>" in reply.content
            elif kind == "not_json":
                assert reply.status_code == 200
                with pytest.raises(ValueError):
                    json.loads(reply.content)
            else:
                assert reply.status_code == 200
                assert reply.json() == {"err_msg": "success", "output": {"msgid": "m1"}}
        assert stub_centre.received == ["m1"], "the centre gets every request before the proxy lies"
        assert proxy.injected() == {kind: 1}


def test_hostile_proxy_replays_an_answer_of_another_request(stub_centre: _StubCentre) -> None:
    with HostileProxy(stub_centre.url, HostilePlan(replay=1.0), seed=3) as proxy, httpx.Client() as client:
        first = _post(client, proxy.url, "m1")
        assert first.json()["output"] == {"msgid": "m1"}, "nothing to replay yet: the centre's own answer"
        assert _post(client, proxy.url, "m2", infno="2401").json()["output"] == {"msgid": "m2"}, "per infno"
        second = _post(client, proxy.url, "m3")
        assert second.json() == {"infcode": 0, "err_msg": "success", "output": {"msgid": "m1"}}
        refused = _post(client, proxy.url, "refuse-m4")
        assert refused.json()["infcode"] == -1, "a refusal is not turned into an acceptance by default"
        assert stub_centre.received == ["m1", "m2", "m3", "refuse-m4"]
        assert proxy.injected() == {"replay": 1}
        assert proxy.counts.replays_unavailable == 3


def test_hostile_proxy_spares_sign_ins_and_passes_through(stub_centre: _StubCentre) -> None:
    plan = HostilePlan(close=1.0, sign_in_untouched=1.0)
    with HostileProxy(stub_centre.url, plan, seed=3) as proxy, httpx.Client() as client:
        assert _post(client, proxy.url, "s1", infno="9001").json()["output"] == {"msgid": "s1"}
        proxy.set_plan(HostilePlan())
        assert _post(client, proxy.url, "m1").json() == {"infcode": 0, "err_msg": "success", "output": {"msgid": "m1"}}
        assert proxy.injected() == {}
        assert proxy.seen() == 2
        assert proxy.counts.sign_ins_spared == 1


def test_hostile_proxy_draws_the_shares_it_is_given(stub_centre: _StubCentre) -> None:
    plan = HostilePlan(http_502=0.2, not_json=0.2, close=0.2)
    with HostileProxy(stub_centre.url, plan, seed=11) as proxy, httpx.Client() as client:
        for n in range(300):
            try:
                _post(client, proxy.url, f"m{n}")
            except httpx.RemoteProtocolError:
                pass
        injected = proxy.injected()
    assert set(injected) == {"http_502", "not_json", "close"}
    assert all(40 <= count <= 80 for count in injected.values()), injected
    assert len(stub_centre.received) == 300


def test_hostile_proxy_drops_a_request_cut_short(stub_centre: _StubCentre) -> None:
    with HostileProxy(stub_centre.url, HostilePlan(), seed=3) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(b"POST /fsi/api/2301 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"infno\": \"23")
            sock.shutdown(socket.SHUT_WR)  # the adapter was killed half-way through its request
            assert sock.recv(100) == b"", "no answer"
        deadline = time.monotonic() + 5
        while proxy.counts.truncated_requests == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proxy.counts.truncated_requests == 1
        assert stub_centre.received == [], "nothing half-sent is forwarded"
        assert proxy.seen() == 0
