"""One exactly-once run: a sample HIS, a simulated centre (faults injected by the centre itself,
or by the hostile proxy in front of it), one or two daemons as real processes killed at random,
then a quiet phase without faults until nothing is left to send, and the verdict against a
fault-free reference run of the same HIS.

Everything is started on loopback with port 0 and stopped in ``finally`` blocks; every daemon
life logs to a file of the run's directory (named in a failure message).
"""

from __future__ import annotations

import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from adapter.app import build_adapter
from adapter.config import load_settings
from adapter.mapping.store import MappingRow, MappingStore
from adapter.records import MappingKind
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.server import SimulatedCentre
from adapter.rehearsal.demo import DEMO_TRANSACTIONS
from adapter.rehearsal.sample_his import SampleHis, counter_settlements, generate_sample_his
from tests.conftest import centre_secrets, config_text, region_profile
from tests.harness.accounting import (
    FINAL,
    Reference,
    StateReader,
    Verdict,
    centre_items,
    centre_repeats,
    compare,
)
from tests.harness.daemon_process import DaemonProcess, HarnessError, KillPlan, KillReport, kill_at_random
from tests.harness.hostile_proxy import HostilePlan, HostileProxy
from tests.helpers import run_until_done

#: A HIS drug mapped to a code the centre treats as retired: the centre's business rejection
#: (parked with its err_msg) happens in every run, faults or not.
RETIRED_CODE = "XJ01XDT045A001010104642"
RETIRED_HIS_ITEM = "YP0004"


@dataclass(frozen=True)
class HisSize:
    name: str
    visits: int
    lines_per_visit: int
    kills: int
    #: the quiet phase's limit (the work left after the chaos, without faults)
    quiet_timeout_seconds: float
    #: ... and how long it may go without any record or message changing state (no faults: work
    #: left that long is stuck)
    stall_seconds: float = 30.0
    seed: int = 20261


@dataclass(frozen=True)
class Scenario:
    name: str
    #: FaultPlan keyword arguments of the centre during the chaos
    centre_faults: dict[str, Any] = field(default_factory=dict)
    #: None: the daemons talk to the centre directly
    proxy: HostilePlan | None = None
    #: ``[schedule] in_flight`` of the daemons (messages of several visits sent at once)
    in_flight: int = 1

    def describe(self) -> str:
        parts = []
        if self.centre_faults:
            parts.append("centre " + ", ".join(f"{k}={v}" for k, v in self.centre_faults.items()))
        if self.proxy is not None:
            parts.append("proxy " + self.proxy.describe())
        if self.in_flight > 1:
            parts.append(f"{self.in_flight} in flight")
        return "; ".join(parts) or "no faults"


@dataclass
class RunResult:
    scenario: Scenario
    size: HisSize
    store: str
    daemons: int
    #: the base seed (``--exactly-once-seed``): the same one gives the same streams of fault and kill
    #: draws (which request a draw falls on still depends on timing)
    seed: int
    kills: KillReport
    faults: dict[str, int]
    verdict: Verdict
    seconds: float
    chaos_seconds: float
    quiet_seconds: float
    quiet_finished: bool
    #: the quiet phase ended because nothing changed for ``HisSize.stall_seconds``
    stalled: bool
    lives: int
    log_dir: Path
    reference_seconds: float
    proxy_counts: dict[str, Any] | None = None

    def summary(self) -> str:
        faults = ",".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"
        return (f"exactly-once {self.store}/{self.scenario.name}/{self.size.name} daemons={self.daemons} "
                f"seed={self.seed} kills={self.kills.kills}(busy={self.kills.busy},timed={self.kills.timed},"
                f"idle={self.kills.idle}) faults{{{faults}}} {self.verdict.summary()} "
                f"time={self.seconds:.1f}s(chaos={self.chaos_seconds:.1f}s,quiet={self.quiet_seconds:.1f}s"
                f"{'' if self.quiet_finished else ',STALLED' if self.stalled else ',TIMED OUT'}"
                f",reference={self.reference_seconds:.1f}s)")


def sample_his(directory: Path, size: HisSize) -> SampleHis:
    directory.mkdir(parents=True, exist_ok=True)
    return generate_sample_his(f"sqlite:///{directory / 'his.db'}", visits=size.visits,
                               lines_per_visit=size.lines_per_visit, seed=size.seed)


def mapping_rows(his: SampleHis) -> list[MappingRow]:
    return [MappingRow(MappingKind(kind), code, RETIRED_CODE if code == RETIRED_HIS_ITEM else national, name)
            for kind, code, national, name in his.mapping_rows]


def write_config(path: Path, *, his_url: str, state_url: str, centre_url: str, in_flight: int = 1) -> Path:
    transactions = ", ".join(f'"{infno}"' for infno in DEMO_TRANSACTIONS)
    path.write_text(
        config_text(his_url=his_url, state_url=state_url, centre_url=centre_url,
                    schedule=f"interval_minutes = 0.02\nbatch_size = 100\nin_flight = {in_flight}",
                    his_extra=f"transactions = [{transactions}]")
        + '\n[logging]\nlevel = "INFO"\n',
        encoding="utf-8",
    )
    return path


def make_centre(his: SampleHis, **faults: Any) -> SimulatedCentre:
    profile = region_profile("nhsa")
    centre = SimulatedCentre(gateway=profile.gateway, secrets=centre_secrets(profile.gateway), region=profile,
                             faults=FaultPlan(reject_codes=frozenset({RETIRED_CODE}), **faults))
    # the settlements the sample's counter made with the centre (their lists are 4101s)
    centre.ledger.settled_at_counter(counter_settlements(his.url))
    return centre.start()


def prepare_state(config: Path, his: SampleHis) -> None:
    """Create the state database (schema at the newest revision) and import the mapping, in
    this process, before any daemon starts."""
    adapter = build_adapter(load_settings(config))
    try:
        MappingStore(adapter.store).upsert(mapping_rows(his))
    finally:
        adapter.close()


def reference_run(his: SampleHis, directory: Path) -> Reference:
    """The same HIS uploaded in this process to a centre without faults, until nothing is left."""
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    centre = make_centre(his)
    reader = None
    try:
        state_url = f"sqlite:///{directory / 'reference-state.db'}"
        config = write_config(directory / "reference.toml", his_url=his.url, state_url=state_url,
                              centre_url=centre.url)
        adapter = build_adapter(load_settings(config))
        try:
            MappingStore(adapter.store).upsert(mapping_rows(his))
            run_until_done(adapter, limit_seconds=300)
        finally:
            adapter.close()
        reader = StateReader(state_url)
        state = reader.view()
        items, repeats = centre_items(centre.ledger), centre_repeats(centre.ledger)
    finally:
        if reader is not None:
            reader.close()
        centre.stop()
    unfinished = {key: r.status for key, r in state.records.items() if r.status not in FINAL}
    if repeats or unfinished or state.unfinished_messages:
        raise HarnessError(f"the fault-free reference run is not clean: repeats {dict(repeats)}, "
                           f"records not final {len(unfinished)}, messages unfinished {state.unfinished_messages}")
    return Reference(items=items, records=state.records, seconds=time.monotonic() - started)


def run_scenario(*, scenario: Scenario, size: HisSize, reference: Reference, his: SampleHis, directory: Path,
                 state_url: str, store: str, daemons: int, kills: int, seed: int) -> RunResult:
    """The chaos, the quiet phase and the verdict; every process and server is stopped on the way out."""
    started = time.monotonic()
    directory.mkdir(parents=True, exist_ok=True)
    log_dir = directory / "logs"
    log_dir.mkdir(exist_ok=True)
    # a copy of the reference's HIS (the adapter only reads it)
    shutil.copyfile(make_url(his.url).database or "", directory / "his.db")
    his = SampleHis(url=f"sqlite:///{directory / 'his.db'}", mapping_rows=his.mapping_rows)
    # one seed per run, derived from the base seed and the run's name (stable across processes)
    run_seed = seed + zlib.crc32(f"{store}/{scenario.name}/{size.name}".encode())
    centre = make_centre(his, seed=run_seed, **scenario.centre_faults)
    proxy: HostileProxy | None = None
    processes: list[DaemonProcess] = []
    reader: StateReader | None = None
    try:
        if scenario.proxy is not None:
            proxy = HostileProxy(centre.url, scenario.proxy, seed=run_seed + 1).start()
        config = write_config(directory / "adapter.toml", his_url=his.url, state_url=state_url,
                              centre_url=proxy.url if proxy is not None else centre.url,
                              in_flight=scenario.in_flight)
        prepare_state(config, his)
        reader = StateReader(state_url)
        processes = [DaemonProcess(f"daemon{i + 1}", config, log_dir) for i in range(daemons)]
        for process in processes:
            process.start()

        def activity() -> int:
            if proxy is not None:
                return proxy.seen()
            with centre.ledger.lock:
                return (sum(centre.ledger.requests.values()) + sum(centre.ledger.rejected.values())
                        + sum(centre.ledger.faults.values()))

        chaos_started = time.monotonic()
        kill_report = kill_at_random(processes, KillPlan(kills=kills, seed=run_seed + 2), activity)
        chaos_seconds = time.monotonic() - chaos_started

        # the quiet phase: no faults (the retired code stays retired: that is data, not a fault)
        with centre.ledger.lock:
            faults = {k: v for k, v in centre.ledger.faults.items() if v}
        centre.faults = FaultPlan(reject_codes=frozenset({RETIRED_CODE}), seed=run_seed)
        proxy_counts = None
        if proxy is not None:
            proxy.set_plan(HostilePlan())
            faults.update(proxy.injected())
            proxy_counts = proxy.snapshot()
        expected_records = len(reference.records)
        quiet_started = time.monotonic()

        quiet_finished, stalled = _quiet_phase(reader, expected_records, size, processes)
        quiet_seconds = time.monotonic() - quiet_started
        for process in processes:
            process.check_alive()
            process.stop()
        items, repeats = centre_items(centre.ledger), centre_repeats(centre.ledger)
        verdict = compare(reference, items, repeats, reader.view())
    finally:
        for process in processes:
            process.stop(timeout=10)
        if reader is not None:
            reader.close()
        if proxy is not None:
            proxy.stop()
        centre.stop()
    return RunResult(
        scenario=scenario, size=size, store=store, daemons=daemons, seed=seed, kills=kill_report,
        faults=faults, verdict=verdict, seconds=time.monotonic() - started, chaos_seconds=chaos_seconds,
        quiet_seconds=quiet_seconds, quiet_finished=quiet_finished, stalled=stalled,
        lives=sum(p.lives for p in processes), log_dir=log_dir, reference_seconds=reference.seconds,
        proxy_counts=proxy_counts,
    )


def _quiet_phase(reader: StateReader, expected_records: int, size: HisSize,
                 processes: list[DaemonProcess]) -> tuple[bool, bool]:
    """Wait until every record is extracted and nothing is left to send: (finished, stalled)."""
    deadline = time.monotonic() + size.quiet_timeout_seconds
    last_states: object = None
    changed_at = time.monotonic()
    while True:
        records, left, states = reader.progress()
        if records >= expected_records and left == 0:
            return True, False
        now = time.monotonic()
        if states != last_states:
            last_states, changed_at = states, now
        elif now - changed_at >= size.stall_seconds:
            return False, True
        if now >= deadline:
            return False, False
        for process in processes:
            process.check_alive()
        time.sleep(0.25)
