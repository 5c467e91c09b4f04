"""Wiring: build every part of a running adapter from validated settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from adapter.config import Settings
from adapter.errors import ConfigError
from adapter.catalog.store import CatalogStore
from adapter.catalog.sync import CatalogSync
from adapter.extract.sql import SqlSource
from adapter.policy.engine import resolve
from adapter.reconcile.run import Reconciler
from adapter.policy.stage import BatchPolicy, PolicyStage
from adapter.outbound.files import FileTransfer
from adapter.outbound.client import CentreClient
from adapter.outbound.envelope import Institution
from adapter.outbound.transport import HttpTransport
from adapter.extract.sample_queries import SAMPLE_QUERIES
from adapter.pipeline import Pipeline
from adapter.record_flow import RecordFlow
from adapter.plugin.api import RegionProfile
from adapter.plugin.manager import PluginHost
from adapter.spool.store import StateStore


@dataclass
class Adapter:
    """A wired adapter; close it when done."""

    settings: Settings
    host: PluginHost
    region: RegionProfile
    store: StateStore
    pipeline: Pipeline
    transport: HttpTransport
    source: SqlSource

    @property
    def catalogs(self) -> CatalogStore:
        return CatalogStore(self.store)

    @property
    def catalog_sync(self) -> CatalogSync:
        return CatalogSync(self.pipeline.client, self.files, self.region, self.catalogs, self.settings.catalog)

    @property
    def reconciler(self) -> Reconciler:
        centre = self.settings.centre
        return Reconciler(
            client=self.pipeline.client, files=self.files, store=self.store, his_url=self.settings.his.url,
            settlement_query=self.settings.his.settlement_query,
            setl_optins=centre.setl_optins or centre.mdtrtarea_admvs, fixmedins_code=centre.fixmedins_code,
            fund_of=self.region.dialect.fund_pay_sumamt,
        )

    @property
    def files(self) -> FileTransfer:
        """9101/9102 through this adapter's session and gateway."""
        return FileTransfer(self.pipeline.client, self.region, self.settings.centre.fixmedins_code)

    def close(self) -> None:
        self.transport.close()
        self.source.close()
        self.store.close()


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


def _record_source(settings: Settings, infno: str) -> SqlSource:
    configured = settings.sources.get(infno)
    if configured is not None:
        return SqlSource(settings.his.url, configured.query, configured.watermark_column)
    if infno not in SAMPLE_QUERIES:
        raise ConfigError(f'[sources."{infno}"]: give the HIS query of transaction {infno}')
    query, column = SAMPLE_QUERIES[infno]
    return SqlSource(settings.his.url, query, column)


def build_adapter(
    settings: Settings,
    host: PluginHost | None = None,
    stop_event: threading.Event | None = None,
) -> Adapter:
    """Load plugins, resolve the region and its gateway, open the stores."""
    host = host or PluginHost.load()
    region = host.region(settings.centre.region)
    scheme = settings.centre.gateway or region.gateway
    signers = host.signers()
    if scheme not in signers:
        raise ConfigError(
            f"[centre] gateway: no loaded plugin provides the gateway scheme {scheme!r} "
            f"(known: {', '.join(sorted(signers)) or 'none'})"
        )
    spec = signers[scheme]
    missing = [name for name in spec.credentials if name not in settings.centre.credentials]
    if missing:
        raise ConfigError(
            f"[centre.credentials]: the {scheme} gateway needs {', '.join(missing)} "
            f"(write e.g. {missing[0]} = {{ env = \"VAR\" }})"
        )
    record_infnos = [infno for infno in settings.his.transactions if infno != "2301"]
    unknown = [infno for infno in record_infnos if infno not in region.transactions]
    if unknown:
        raise ConfigError(
            f"[his] transactions: region {region.name} does not describe {', '.join(unknown)} "
            f"(it has 2301, {', '.join(sorted(region.transactions))})"
        )
    signer = spec.factory(settings.centre.resolve_credentials(), region.gateway_options)
    store = StateStore(settings.state.url)
    source = SqlSource(settings.his.url, settings.his.fee_query, settings.his.watermark_column)
    transport = HttpTransport(settings.centre.timeout_seconds)
    client = CentreClient(
        store=store,
        institution=institution_from(settings, region),
        region=region,
        signer=signer,
        transport=transport,
        base_url=settings.centre.base_url,
        sign_in_input=region.dialect.sign_in_input(
            settings.centre.opter, settings.centre.mac, settings.centre.ip
        ),
        opter=settings.centre.opter,
    )
    policy = PolicyStage(store, resolve(host.policy_rules(), region.name, region.rule_set, settings.rules))
    records = RecordFlow(
        store=store,
        specs={infno: region.transactions[infno] for infno in record_infnos},
        sources={infno: _record_source(settings, infno) for infno in record_infnos},
        batch_size=settings.schedule.batch_size,
        defaults={infno: region.dialect.record_defaults(infno) for infno in record_infnos},
        policy=BatchPolicy(policy),
    )
    pipeline = Pipeline(
        settings=settings,
        store=store,
        source=source,
        client=client,
        region=region,
        rules=host.rules(),
        records=records,
        policy=policy,
        stop_event=stop_event,
    )
    return Adapter(settings, host, region, store, pipeline, transport, source)
