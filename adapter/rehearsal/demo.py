"""``demo``: the whole flow with no setup, against the simulated centre with faults injected.

It builds a sample HIS database and mapping in a directory, starts the simulated centre
in-process on loopback, writes a configuration, and runs cycles until nothing is left to send.
The sample HIS holds a few stays that break every built-in policy rule, so the run ends with
findings; it writes the month's self-inspection and transmission compliance reports (HTML and
XLSX) into the directory.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from adapter.app import build_adapter
from adapter.config import load_settings
from adapter.daemon import Daemon
from adapter.flow.report import CycleReport
from adapter.mapping.importer import read_mapping_csv
from adapter.mapping.store import MappingStore
from adapter.monitor.status import unsent_count
from adapter.plugin.manager import PluginHost
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.server import SimulatedCentre
from adapter.rehearsal.sample_his import SampleHis, counter_settlements, generate_sample_his, write_mapping_csv
from adapter.rehearsal.sample_queries import sample_sources_toml, settlement_query_toml
from adapter.spool import outbox
from adapter.spool.states import UNSENT_RECORD_STATES, RecordStatus
from adapter.state import schema
from adapter.state.store import StateStore, utcnow

#: What the demo uploads (see the [his] transactions comment in the template).
DEMO_TRANSACTIONS = (
    "2201", "2203", "2204", "2205", "2401", "2301", "2302", "2402", "4101",
    "3501", "3502", "3503", "3504", "3505", "3506", "3507",
)

#: The month of the sample HIS's data, reconciled and reported on at the end.
DEMO_MONTH = (2026, 11)
#: the reports the demo writes into its directory: what -> file name
DEMO_REPORTS = {
    "self-inspection (HTML)": "self-inspection.html", "self-inspection (XLSX)": "self-inspection.xlsx",
    "self-inspection by doctor (HTML)": "self-inspection-by-doctor.html",
    "transmission compliance (HTML)": "transmission.html", "transmission compliance (XLSX)": "transmission.xlsx",
}

#: The demo maps one HIS drug to a code the simulated centre treats as retired, so the
#: business-rejection path (parked with the centre's err_msg) shows up too.
DEMO_RETIRED_CODE = "XJ01XDT045A001010104642"

CONFIG_TEMPLATE = """\
# Written by `yibao-adapter demo`; a working example of a complete configuration.
[his]
url = "sqlite:///{his_db}"
# Every transaction the sample HIS has data for, in the order a visit needs them: register
# before charging, charge before cancelling or discharging, settle last.
transactions = [{transactions}]
{settlement_query}

[centre]
region = "nhsa"
base_url = "{centre_url}"
fixmedins_code = "H43111100255"
fixmedins_name = "示例县人民医院"
mdtrtarea_admvs = "431199"
opter = "0001"
opter_name = "演示经办人"
timeout_seconds = 0.3
lines_per_message = 10

[centre.credentials]
paasid = {{ file = "{secrets}/paasid" }}
token = {{ file = "{secrets}/token" }}

[state]
url = "sqlite:///{state_db}"

[schedule]
interval_minutes = 20
batch_size = 200
retry_base_seconds = 0.2
retry_cap_seconds = 1.0
in_process_attempts = 2
in_process_wait_seconds = 0.05
# four visits' messages on their way at once (each visit's own still in order)
in_flight = 4

[catalog]
kinds = ["1301", "1305", "1307", "1318"]

[logging]
level = "WARNING"
"""


@dataclass
class DemoResult:
    directory: Path
    his: SampleHis
    report: CycleReport
    cycles: int
    seconds: float
    centre_totals: dict[str, Any]
    lines_by_status: dict[str, int]
    parked_by_kind: dict[str, int]
    parked_examples: dict[str, str] = field(default_factory=dict)
    #: infno -> status -> records (the transactions other than 2301)
    records_by_status: dict[str, dict[str, int]] = field(default_factory=dict)
    #: catalogue kind -> (active version, rows), synced by the daemon's first cycle
    catalogues: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: the month-end reconciliation (3201/3202) after the uploads, if the centre answered
    reconciliation: Any = None
    #: every policy rule in force -> its findings in the month (0 where it found nothing)
    findings_by_rule: dict[str, int] = field(default_factory=dict)
    #: the reports written (DEMO_REPORTS' keys -> their paths)
    reports: dict[str, Path] = field(default_factory=dict)

    @property
    def rules_not_shown(self) -> list[str]:
        """Rules in force that found nothing in the sample (the sample plants a case for each)."""
        return [rule for rule, count in self.findings_by_rule.items() if not count]

    @property
    def reports_missing(self) -> list[str]:
        return [what for what in DEMO_REPORTS if not (what in self.reports and self.reports[what].is_file())]

    @property
    def complete(self) -> bool:
        """Every line and record the centre was willing to take is acked, exactly once."""
        unsent = [state.value for state in UNSENT_RECORD_STATES]
        if any(self.lines_by_status.get(status, 0) for status in unsent):
            return False
        if any(counts.get(status, 0) for counts in self.records_by_status.values() for status in unsent):
            return False
        if len(self.catalogues) < 4:  # every configured catalogue was downloaded and switched in
            return False
        if self.reconciliation is None or not self.reconciliation.balanced:
            return False
        totals = self.centre_totals
        inpatient_lines: int = totals["fee_lines"] - totals["outpatient_fee_lines"]
        # Lines the HIS cancelled (its 2302s sent); the centre's own count includes the
        # withdrawals of lines whose reply was lost, which were sent again.
        withdrawn: int = self.records_by_status.get("2302", {}).get(RecordStatus.SENT.value, 0)
        duplicates: int = totals["fee_lines_duplicates"]
        return (
            inpatient_lines == self.lines_by_status.get(RecordStatus.SENT.value, 0) - withdrawn
            and duplicates == 0
        )


def run_demo(
    directory: Path,
    visits: int = 30,
    seed: int = 7,
    error_rate: float = 0.1,
    reset_rate: float = 0.05,
    timeout_rate: float = 0.02,
    drop_reply_rate: float = 0.05,
    time_limit_seconds: float = 300.0,
) -> DemoResult:
    directory.mkdir(parents=True, exist_ok=True)
    his_db = directory / "his.db"
    state_db = directory / "state.db"
    for stale in (his_db, state_db):
        stale.unlink(missing_ok=True)
    secret_dir = directory / "secrets"
    secret_dir.mkdir(exist_ok=True)
    token = secrets.token_hex(16)
    (secret_dir / "paasid").write_text("demo_hosp\n", encoding="utf-8")
    (secret_dir / "token").write_text(token + "\n", encoding="utf-8")

    his = generate_sample_his(f"sqlite:///{his_db}", visits=visits, seed=seed, with_rule_cases=True)
    rows = [
        (kind, code, DEMO_RETIRED_CODE if code == "YP0004" else national, name)
        for kind, code, national, name in his.mapping_rows
    ]
    mapping_csv = write_mapping_csv(directory / "mapping.csv", rows)

    faults = FaultPlan(
        error_rate=error_rate,
        reset_rate=reset_rate,
        timeout_rate=timeout_rate,
        timeout_seconds=0.5,  # longer than the adapter's 0.3 s: it gives up first
        latency_ms=20,
        reject_codes=frozenset({DEMO_RETIRED_CODE}),
        seed=seed,
        drop_reply_rate=drop_reply_rate,
        require_admission=True,
    )
    started = time.monotonic()
    region = PluginHost.load().region("nhsa")
    with SimulatedCentre(secrets={"demo_hosp": token}, region=region, faults=faults) as centre:
        # the sample's settlements were made with the centre at the counter (2304): the lists
        # the adapter uploads (4101) are theirs, and reconciliation compares against them
        centre.ledger.settled_at_counter(counter_settlements(his.url))
        config_path = directory / "adapter.toml"
        config_path.write_text(
            CONFIG_TEMPLATE.format(
                his_db=his_db, centre_url=centre.url, secrets=secret_dir, state_db=state_db,
                transactions=", ".join(f'"{infno}"' for infno in DEMO_TRANSACTIONS),
                settlement_query=settlement_query_toml(),
            ) + "\n# The sample HIS schema's queries, one per transaction.\n" + sample_sources_toml(),
            encoding="utf-8",
        )
        settings = load_settings(config_path)
        adapter = build_adapter(settings)
        try:
            MappingStore(adapter.store).upsert(read_mapping_csv(mapping_csv))
            daemon = Daemon(adapter)
            report = daemon.run_once()
            cycles = 1
            def catalogues_missing() -> bool:
                return len(daemon.catalogs_synced_at) < len(settings.catalog.kinds)

            while (unsent_count(adapter.store) or catalogues_missing()) and (
                time.monotonic() - started < time_limit_seconds
            ):
                due = outbox.next_due_at(adapter.store)
                if due is not None:
                    wait = (due - utcnow()).total_seconds()
                    if wait > 0:
                        time.sleep(min(wait, 1.0))
                daemon.sync_catalogues_if_due()  # a kind the centre did not answer for is retried
                report.add(adapter.cycle.run())
                cycles += 1
            lines_by_status, parked_by_kind, examples = _line_summary(adapter.store)
            records_by_status = _record_summary(adapter.store)
            # Month-end comes after the uploads: the centre is asked with its faults off, as a
            # whole reconciliation (a 3201 per group, a 3202 drill-down) rarely got through a
            # centre failing a third of its calls, and the demo spent most of its time retrying.
            centre.faults = FaultPlan(seed=seed)
            reconciliation = _reconcile(adapter)
            catalogues = {v.kind: (v.ver, v.rows_total) for v in adapter.catalogs.versions() if v.status == "active"}
            findings_by_rule, reports = write_reports(adapter, directory)
        finally:
            adapter.close()
        totals = centre.ledger.totals()
    return DemoResult(
        directory=directory,
        his=his,
        report=report,
        cycles=cycles,
        seconds=time.monotonic() - started,
        centre_totals=totals,
        lines_by_status=lines_by_status,
        parked_by_kind=parked_by_kind,
        parked_examples=examples,
        records_by_status=records_by_status,
        catalogues=catalogues,
        reconciliation=reconciliation,
        findings_by_rule=findings_by_rule,
        reports=reports,
    )


def _reconcile(adapter: Any) -> Any:
    """Month-end reconciliation of the demo's November against the centre; the injected
    faults may fail a call, so it is tried a few times like the daemon would."""
    from adapter.errors import DeliveryError
    from adapter.reconcile.local import Period

    for attempt in range(20):
        try:
            return adapter.reconciler.run(Period.month(*DEMO_MONTH))
        except DeliveryError:
            time.sleep(0.1 * (attempt + 1))
    return None


def write_reports(adapter: Any, directory: Path) -> tuple[dict[str, int], dict[str, Path]]:
    """The month's self-inspection (also grouped by doctor) and transmission compliance
    reports, written into ``directory`` as the CLI writes them (``rules report``, ``report
    transmission``); returns the findings of every rule in force, and where each report is."""
    from adapter.policy import report as inspection
    from adapter.policy.engine import resolve
    from adapter.reconcile.local import Period
    from adapter.reports import transmission
    from adapter.reports.layout import Hospital

    settings, region = adapter.settings, adapter.region
    period = Period.month(*DEMO_MONTH)
    active = [a for a in resolve(adapter.host.policy_rules(), region.name, region.rule_set, settings.rules)
              if a.enabled]
    hospital = Hospital(settings.centre.fixmedins_code, settings.centre.fixmedins_name)
    found = inspection.build_report(
        adapter.store, period.start, period.end, region=region.name,
        descriptions={a.rule.id: a.rule.description for a in active}, his_url=settings.his.url,
        settlement_query=settings.his.settlement_query, penalty_table=region.penalty_table,
        penalty_source=region.penalty_source, transactions=region.transactions)
    names = {infno: table.name for infno, table in adapter.edition.transactions.items()}
    uploads = transmission.build_report(adapter.store, period.start, period.end, region=region, names=names)
    contents: dict[str, str | bytes] = {
        "self-inspection (HTML)": inspection.as_html(found, hospital),
        "self-inspection (XLSX)": inspection.as_xlsx(found, hospital),
        "self-inspection by doctor (HTML)": inspection.grouped_html(inspection.grouped(found, "doctor"), hospital),
        "transmission compliance (HTML)": transmission.as_html(uploads, hospital),
        "transmission compliance (XLSX)": transmission.as_xlsx(uploads, hospital),
    }
    written = {}
    for what, content in contents.items():
        path = directory / DEMO_REPORTS[what]
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        written[what] = path
    counts = {g.key: g.findings for g in found.by_rule}
    return {a.rule.id: counts.get(a.rule.id, 0) for a in active} | counts, written


def _record_summary(store: StateStore) -> dict[str, dict[str, int]]:
    record = schema.record
    with store.begin() as conn:
        rows = conn.execute(
            select(record.c.infno, record.c.status, func.count())
            .where(record.c.infno != "2301").group_by(record.c.infno, record.c.status)
        ).all()
    summary: dict[str, dict[str, int]] = {}
    for infno, status, count in rows:
        summary.setdefault(infno, {})[status] = int(count)
    return summary


def _line_summary(store: StateStore) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    line = schema.record
    fee = line.c.infno == "2301"
    with store.begin() as conn:
        by_status: dict[str, int] = dict(
            conn.execute(select(line.c.status, func.count()).where(fee).group_by(line.c.status)).all()
        )
        parked = conn.execute(
            select(line.c.park_kind, func.count(), func.min(line.c.park_reason))
            .where(fee, line.c.status == RecordStatus.PARKED.value)
            .group_by(line.c.park_kind)
        ).all()
    return (
        {k: int(v) for k, v in by_status.items()},
        {kind: int(n) for kind, n, _ in parked},
        {kind: reason for kind, _, reason in parked},
    )
