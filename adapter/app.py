"""Wiring: build every part of a running adapter from validated settings.

:func:`plan` resolves everything the configuration names (region, gateway, credentials,
transactions, their HIS queries, policy rules) and raises :class:`ConfigError` for anything
wrong, without opening a database or the network; ``check-config`` runs it, and
:func:`build_adapter` runs it before it opens anything, so both refuse the same things.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from adapter.catalog.store import CatalogStore
from adapter.catalog.sync import CatalogSync
from adapter.config import Settings, SourceConfig
from adapter.errors import ConfigError
from adapter.flow.build import Build
from adapter.flow.check import Check
from adapter.flow.cycle import Cycle
from adapter.flow.extract import Extract
from adapter.flow.send import Send, SendSettings
from adapter.flow.settle import Settle
from adapter.his import SqlSource
from adapter.monitor.metrics import TimedTransport
from adapter.outbound.client import CentreClient
from adapter.outbound.envelope import Institution
from adapter.outbound.files import FileTransfer
from adapter.outbound.transport import HttpTransport, tls_context
from adapter.plugin.api import RegionProfile, Settlement, SignerSpec, TransactionSpec, is_settled_figure
from adapter.plugin.manager import PluginHost
from adapter.policy.engine import ActiveRule, resolve
from adapter.policy.stage import PolicyStage
from adapter.progress import Reporter, reporter
from adapter.reconcile.run import Reconciler
from adapter.spec.check import DictionaryCheck
from adapter.spec.tables import Edition, load_edition
from adapter.state.sealing import Keyring
from adapter.state.store import StateStore


@dataclass(frozen=True)
class Plan:
    """What the configuration resolves to, checked, before anything is opened."""

    settings: Settings
    host: PluginHost
    region: RegionProfile
    gateway: SignerSpec
    credentials: Mapping[str, str]
    #: the transactions uploaded, in the configured order, with the query each reads
    specs: Mapping[str, TransactionSpec]
    sources: Mapping[str, SourceConfig]
    policy_rules: list[ActiveRule]


@dataclass
class Adapter:
    """A wired adapter; close it when done."""

    settings: Settings
    host: PluginHost
    region: RegionProfile
    store: StateStore
    client: CentreClient
    cycle: Cycle
    transport: HttpTransport
    sources: Mapping[str, SqlSource]
    #: where the progress of long work goes (bars, log lines, the store row for `status`)
    progress: Reporter

    @property
    def edition(self) -> Edition:
        """The interface edition the region follows (its code dictionaries and transaction names)."""
        return load_edition(self.region.interface_edition)

    @property
    def catalogs(self) -> CatalogStore:
        return CatalogStore(self.store)

    @property
    def catalog_sync(self) -> CatalogSync:
        return CatalogSync(self.client, self.files, self.region, self.catalogs, self.settings.catalog,
                           progress=self.progress)

    @property
    def reconciler(self) -> Reconciler:
        centre = self.settings.centre
        return Reconciler(
            client=self.client, files=self.files, store=self.store, his_url=self.settings.his.url,
            settlement_query=self.settings.require_settlement_query(),
            setl_optins=centre.setl_optins or centre.mdtrtarea_admvs, fixmedins_code=centre.fixmedins_code,
            fund_of=_fund_hook(self.region.dialect.fund_pay_sumamt), progress=self.progress,
        )

    @property
    def files(self) -> FileTransfer:
        """9101/9102 through this adapter's session and gateway."""
        return FileTransfer(self.client, self.region, self.settings.centre.fixmedins_code)

    def close(self) -> None:
        self.progress.close()
        self.cycle.send.close()
        self.transport.close()
        for source in self.sources.values():
            source.close()
        self.store.close()


def _fund_hook(hook: Callable[[Settlement], Decimal]) -> Callable[[Settlement], Decimal] | None:
    """The region's fund_pay_sumamt hook for reconciliation, or None where it is marked as the
    settlement's own figure (no settlement object a row needs building for it then)."""
    return None if is_settled_figure(hook) else hook


def host_mac() -> str:
    """This machine's MAC address as 9001 wants it (XX-XX-XX-XX-XX-XX): the sign-in's ``mac``
    is required by the edition, and ``[centre] mac`` may be left empty to send this one."""
    node = uuid.getnode()
    return "-".join(f"{(node >> shift) & 0xFF:02X}" for shift in range(40, -8, -8))


def institution_from(settings: Settings, region: RegionProfile) -> Institution:
    centre = settings.centre
    return Institution(
        fixmedins_code=centre.fixmedins_code,
        fixmedins_name=centre.fixmedins_name,
        mdtrtarea_admvs=centre.mdtrtarea_admvs,
        insuplc_admdvs=centre.insuplc_admdvs or centre.mdtrtarea_admvs,
        recer_sys_code=centre.recer_sys_code or region.recer_sys_code,
        infver=centre.infver or region.infver,
        opter_type=centre.opter_type,
        opter=centre.opter,
        opter_name=centre.opter_name,
    )


def plan(
    settings: Settings, host: PluginHost | None = None, default_sources: Mapping[str, SourceConfig] | None = None,
) -> Plan:
    """Resolve and check the configuration. ``default_sources``: queries for transactions the
    configuration gives none for (the rehearsal's sample schema; never on the production path)."""
    host = host or PluginHost.load()
    region = host.region(settings.centre.region)
    scheme = settings.centre.gateway or region.gateway
    signers = host.signers()
    if scheme not in signers:
        raise ConfigError(
            f"[centre] gateway: no loaded plugin provides the gateway scheme {scheme!r} "
            f"(known: {', '.join(sorted(signers)) or 'none'})"
        )
    gateway = signers[scheme]
    missing = [name for name in gateway.credentials if name not in settings.centre.credentials]
    if missing:
        raise ConfigError(
            f"[centre.credentials]: the {scheme} gateway needs {', '.join(missing)} "
            f"(write e.g. {missing[0]} = {{ env = \"VAR\" }})"
        )
    infnos = list(dict.fromkeys(settings.his.transactions))
    unknown = [infno for infno in infnos if infno not in region.transactions]
    if unknown:
        raise ConfigError(
            f"[his] transactions: region {region.name} does not describe {', '.join(unknown)} "
            f"(it has {', '.join(sorted(region.transactions))})"
        )
    sources = {}
    for infno in infnos:
        source = settings.source_for(infno) or (default_sources or {}).get(infno)
        if source is None:
            hint = '[his] fee_query or [sources."2301"]' if infno == "2301" else f'[sources."{infno}"]'
            raise ConfigError(f"{hint}: give the HIS query of transaction {infno} (it is in [his] transactions)")
        sources[infno] = source
    credentials = settings.centre.resolve_credentials()
    Keyring.from_settings(settings.state)  # the sealing keys: there, private and well formed
    if settings.centre.tls_verify:  # the CA bundle: there and holding certificates (off: nothing to read)
        tls_context(True, settings.centre.ca_bundle)
    policy_rules = resolve(host.policy_rules(), region.name, region.rule_set, settings.rules)
    return Plan(settings, host, region, gateway, credentials, {i: region.transactions[i] for i in infnos},
                sources, policy_rules)


def build_adapter(
    settings: Settings,
    host: PluginHost | None = None,
    stop_event: threading.Event | None = None,
    default_sources: Mapping[str, SourceConfig] | None = None,
    interactive: bool = False,
) -> Adapter:
    """Plan, then open the state store, the HIS sources and the centre client and wire the cycle.
    ``interactive``: a command a person started, whose long work shows bars when stderr is a
    terminal (else, as the daemon's, a log line); its progress is written for `status` either way."""
    checked = plan(settings, host, default_sources)
    region, schedule, centre = checked.region, settings.schedule, settings.centre
    stop_event = stop_event or threading.Event()
    signer = checked.gateway.factory(checked.credentials, region.gateway_options)
    # an HttpTransport that times each request (/metrics); before the store is opened, as an
    # unreadable [centre] ca_bundle refuses to start
    transport = TimedTransport(centre.timeout_seconds, tls_verify=centre.tls_verify, ca_bundle=centre.ca_bundle)
    store = StateStore.configured(settings.state)
    sources = {infno: SqlSource(settings.his.url, source.query, source.watermark_column,
                                countable=settings.progress.count_his_backlog)
               for infno, source in checked.sources.items()}
    progress = reporter(store, settings.progress.every_seconds, interactive=interactive)
    client = CentreClient(
        store=store,
        institution=institution_from(settings, region),
        region=region,
        signer=signer,
        transport=transport,
        base_url=centre.base_url,
        sign_in_input=region.dialect.sign_in_input(centre.opter, centre.mac or host_mac(), centre.ip),
        opter=centre.opter,
        answer_clock_tolerance=timedelta(seconds=centre.answer_clock_tolerance_seconds),
    )
    specs = checked.specs
    send_settings = SendSettings(centre.timeout_seconds, schedule.in_process_attempts,
                                 schedule.in_process_wait_seconds, schedule.retry_base_seconds,
                                 schedule.retry_cap_seconds, schedule.in_flight)
    cycle = Cycle(
        extract=Extract(store, specs, sources, schedule.batch_size, stop_event, progress),
        check=Check(
            store=store, specs=specs, rules=checked.host.rules(), catalogues=region.catalogues,
            policy=PolicyStage(store, checked.policy_rules),
            defaults={infno: region.dialect.record_defaults(infno) for infno in specs},
            exp_content=region.dialect.exp_content, stop_event=stop_event, empty_number=region.empty_number,
            code_readings=region.code_readings,
            dictionaries=DictionaryCheck(load_edition(region.interface_edition), region.table_changes),
            progress=progress,
        ),
        build=Build(store, specs, centre.lines_per_message, progress),
        send=Send(
            store=store, client=client, region=region, stop_event=stop_event,
            settings=send_settings, progress=progress,
        ),
        settle=Settle(store=store, region=region, specs=specs, retry_base_seconds=schedule.retry_base_seconds,
                      retry_cap_seconds=schedule.retry_cap_seconds,
                      inquire_after_seconds=send_settings.inquire_after_seconds),
        stop_event=stop_event,
    )
    return Adapter(settings, checked.host, region, store, client, cycle, transport, sources, progress)
