"""Fixtures: a real sample HIS database, a real state store (SQLite file or PostgreSQL), and
the simulated centre on loopback. Nothing is mocked."""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.app import Adapter, build_adapter
from adapter.config import Settings, parse_settings
from adapter.mapping.store import MappingRow, MappingStore
from adapter.plugin.api import RegionProfile
from adapter.plugin.manager import PluginHost
from adapter.records import MappingKind
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.server import SimulatedCentre
from adapter.rehearsal.sample_his import SampleHis, generate_sample_his
from adapter.rehearsal.sample_queries import sample_sources_toml, settlement_query_toml

PAASID = "test_hosp"
TOKEN = "test-token-not-a-secret"
PG_ENV = "ADAPTER_TEST_PG_URL"

#: Test credentials per gateway scheme: (caller id credential, secret credential) in order.
GATEWAY_CREDENTIALS = {
    "tif": {"paasid": PAASID, "token": TOKEN},
    "csb": {"access_key": "test-ak", "secret_key": "test-sk-not-a-secret"},
    "zhejiang": {"key": "H43111100255", "secret": "test-zj-secret"},
}
#: The place-of-treatment area each region's tests use (the centre checks it).
REGION_AREA = {"nhsa": "431199", "guangdong": "440300", "hunan": "431199", "zhejiang": "330100", "jiangxi": "360100"}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("exactly-once", "tests/test_exactly_once.py (daemons killed at random)")
    group.addoption("--kills", type=int, default=None,
                    help="SIGKILLs per exactly-once run (default 20, large runs 60; env EXACTLY_ONCE_KILLS)")
    group.addoption("--exactly-once-seed", type=int, default=None,
                    help="base seed of the faults and the kills (default 1; env EXACTLY_ONCE_SEED)")
    group.addoption("--exactly-once-large", action="store_true", default=False,
                    help="also run the opt-in exactly-once runs: larger ones, and the kills-only control "
                         "(env EXACTLY_ONCE_LARGE=1)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exactly_once_large: an opt-in exactly-once run (--exactly-once-large)")


@functools.cache
def plugin_host() -> PluginHost:
    return PluginHost.load()


def region_profile(name: str) -> RegionProfile:
    return plugin_host().region(name)


def centre_secrets(scheme: str) -> dict[str, str]:
    """What the simulated gateway accepts: caller id -> secret."""
    caller, secret = GATEWAY_CREDENTIALS[scheme].values()
    return {caller: secret}


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for credentials in GATEWAY_CREDENTIALS.values():
        for name, value in credentials.items():
            monkeypatch.setenv(f"TEST_GW_{name.upper()}", value)


def _postgres_database() -> Iterator[str]:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set; CI must run the PostgreSQL tests")
        pytest.skip(f"{PG_ENV} not set (run `make test` to start a throwaway PostgreSQL)")
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"yibao_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The state store, once as a SQLite file and once as a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def sqlite_state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def sample_his(tmp_path: Path) -> SampleHis:
    return generate_sample_his(
        f"sqlite:///{tmp_path / 'his.db'}",
        visits=8,
        lines_per_visit=10,
        seed=11,
        unmapped_share=0.08,
        invalid_share=0.05,
        malformed_share=0.04,
    )


def start_centre(region: str = "nhsa", **faults: Any) -> SimulatedCentre:
    """A simulated centre acting as ``region``'s gateway (scheme, URL style, infver, areas)."""
    profile = region_profile(region)
    return SimulatedCentre(
        gateway=profile.gateway,
        secrets=centre_secrets(profile.gateway),
        region=profile,
        faults=FaultPlan(**faults),
    ).start()


def make_strict_centre(region: str = "nhsa", **faults: Any) -> SimulatedCentre:
    """A simulated centre that checks every request against the published tables."""
    profile = region_profile(region)
    return SimulatedCentre(gateway=profile.gateway, secrets=centre_secrets(profile.gateway), region=profile,
                           faults=FaultPlan(**faults), check_tables=True).start()


@pytest.fixture
def centre() -> Iterator[SimulatedCentre]:
    server = start_centre("nhsa")
    yield server
    server.stop()


@pytest.fixture
def make_centre() -> Iterator[Callable[..., SimulatedCentre]]:
    started: list[SimulatedCentre] = []

    def make(region: str = "nhsa", **faults: Any) -> SimulatedCentre:
        server = start_centre(region, **faults)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def config_text(
    *, his_url: str, state_url: str, centre_url: str, extra_centre: str = "", schedule: str = "",
    region: str = "nhsa", his_extra: str = "",
) -> str:
    scheme = region_profile(region).gateway
    credentials = "\n".join(
        f'{name} = {{ env = "TEST_GW_{name.upper()}" }}' for name in GATEWAY_CREDENTIALS[scheme]
    )
    # The sample HIS schema's queries (the rehearsal's), unless the test writes its own.
    sample = "" if "settlement_query" in his_extra else settlement_query_toml()
    sources = sample_sources_toml(skip=("2301",) if "fee_query" in his_extra else ())
    return f"""
[his]
url = "{his_url}"
{sample}
{his_extra}

[centre]
region = "{region}"
base_url = "{centre_url}"
fixmedins_code = "H43111100255"
fixmedins_name = "测试医院"
mdtrtarea_admvs = "{REGION_AREA[region]}"
opter = "0001"
opter_name = "测试"
timeout_seconds = 0.8
lines_per_message = 5
{extra_centre}

[centre.credentials]
{credentials}

[state]
url = "{state_url}"

[schedule]
retry_base_seconds = 0.05
retry_cap_seconds = 0.2
in_process_attempts = 2
in_process_wait_seconds = 0.01
{schedule}

{sources}
"""


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    def make(**kwargs: Any) -> Settings:
        return parse_settings(config_text(**kwargs))

    return make


@pytest.fixture
def make_adapter(make_settings: Callable[..., Settings]) -> Iterator[Callable[..., Adapter]]:
    made: list[Adapter] = []

    def make(**kwargs: Any) -> Adapter:
        adapter = build_adapter(make_settings(**kwargs))
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        adapter.close()


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The root logger as it was, after a test that configured logging (the CLI does)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)


def import_sample_mapping(adapter: Adapter, his: SampleHis) -> None:
    MappingStore(adapter.store).upsert(
        MappingRow(MappingKind(kind), code, national, name) for kind, code, national, name in his.mapping_rows
    )


def set_faults(centre: SimulatedCentre, **kwargs: Any) -> None:
    centre.faults = FaultPlan(**kwargs)
