"""Plugins: nhsa arrives through the entry-point group; a broken plugin is reported and skipped;
every hook is documented and tested."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.cli import main
from adapter.plugin import hookimpl, spec
from adapter.plugin.api import RegionProfile, SignerSpec
from adapter.plugin.manager import PluginHost
from adapter.plugin.rules import Rule

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(spec) if name.startswith("adapter_"))


def _install_fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, module_src: str) -> None:
    """A real (unzipped) distribution on sys.path, found by importlib.metadata."""
    dist = tmp_path / f"{name}-0.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.9\n")
    (dist / "entry_points.txt").write_text(f"[yibao_adapter]\n{name} = {name}_mod\n")
    (tmp_path / f"{name}_mod.py").write_text(module_src)
    monkeypatch.syspath_prepend(str(tmp_path))


def test_nhsa_is_loaded_through_the_entry_point_group():
    host = PluginHost.load()
    info = {p.name: p for p in host.plugins()}
    assert info["nhsa"].status == "loaded"
    assert info["nhsa"].origin == "adapter-nhsa (adapter_nhsa.hooks)"
    assert info["nhsa"].hooks == ["adapter_register_regions"]
    assert host.region("nhsa").gateway == "tif"


def test_plugin_that_fails_to_import_is_reported_and_skipped(tmp_path, monkeypatch):
    _install_fake_dist(tmp_path, monkeypatch, "brokenregion", "raise ImportError('no module gmssl')\n")
    host = PluginHost.load()
    info = {p.name: p for p in host.plugins()}
    assert info["brokenregion"].status == "failed"
    assert "ImportError: no module gmssl" in info["brokenregion"].error
    assert "nhsa" in host.regions()  # the others still work

    result = CliRunner().invoke(main, ["plugins", "list", "--json"])
    assert result.exit_code == 0
    listed = {p["name"]: p for p in json.loads(result.stdout)}
    assert listed["brokenregion"]["status"] == "failed"
    assert listed["nhsa"]["version"] == "0.1.0"


def test_disabled_and_allow_list_switches(monkeypatch):
    monkeypatch.setenv("ADAPTER_DISABLED_PLUGINS", "nhsa")
    host = PluginHost.load()
    assert {p.name: p.status for p in host.plugins()}["nhsa"] == "disabled"
    assert "nhsa" not in host.regions()
    monkeypatch.delenv("ADAPTER_DISABLED_PLUGINS")
    monkeypatch.setenv("ADAPTER_LOAD_PLUGINS", "")
    assert "nhsa" not in {p.name for p in PluginHost.load().plugins()}


class _RaisingPlugin:
    @hookimpl
    def adapter_register_rules(self, register):
        raise RuntimeError("bad rule table")


def test_hook_adapter_register_rules():
    host = PluginHost.load()
    host.register(_RaisingPlugin(), name="raising", version="1", origin="test")
    rules = host.rules()  # the raising plugin is disabled, the built-ins stay
    assert "amount-matches" in {rule.id for rule in rules.rules}
    assert {p.name: p.status for p in host.plugins()}["raising"] == "failed"

    class Extra:
        @hookimpl
        def adapter_register_rules(self, register):
            register(Rule("no-weekend", "no fees on Sundays", lambda line: []))

    host = PluginHost.load()
    host.register(Extra(), name="extra", version="1", origin="test")
    assert "no-weekend" in {rule.id for rule in host.rules().rules}


def test_hook_adapter_register_policy_rules():
    from adapter.plugin.policy import PolicyRule
    from adapter.plugin.rules import Severity

    builtin = {rule.id for rule in PluginHost.load().policy_rules()}
    assert {"duplicate-charge", "dispensing-days", "split-hospitalisation"} <= builtin

    class Extra:
        @hookimpl
        def adapter_register_policy_rules(self, register):
            register(PolicyRule("no-sunday-surgery", "no elective surgery on Sundays", "local", Severity.WARN,
                                (), (), lambda stay, params: []))

    host = PluginHost.load()
    host.register(Extra(), name="extra", version="1", origin="test")
    assert "no-sunday-surgery" in {rule.id for rule in host.policy_rules()}


def test_hook_adapter_alert(caplog):
    calls = []

    class Pager:
        @hookimpl
        def adapter_alert(self, kind, message, details):
            calls.append((kind, details))

    class Broken:
        @hookimpl
        def adapter_alert(self, kind, message, details):
            raise RuntimeError("SMS gateway down")

    host = PluginHost.load()
    host.register(Pager(), name="pager", version="1", origin="test")
    host.register(Broken(), name="broken", version="1", origin="test")
    with caplog.at_level("ERROR"):
        host.alert("reconcile_mismatch", "does not balance", {"run": 7})
    assert calls == [("reconcile_mismatch", {"run": 7})]  # the broken one did not stop it
    assert "ALERT reconcile_mismatch: does not balance" in caplog.text  # the built-in log line
    assert "alert plugin broken failed: SMS gateway down" in caplog.text


def test_hook_adapter_register_regions():
    nhsa = PluginHost.load().region("nhsa")

    class Province:
        @hookimpl
        def adapter_register_regions(self, register):
            register(RegionProfile(name="hebei", description="per-path", dialect=nhsa.dialect,
                                   url_style="per_path", paths={"2301": "/fsi/api/hospFeeDtlService/feeDtlUp"}))

    host = PluginHost.load()
    host.register(Province(), name="hebei", version="1", origin="test")
    hebei = host.region("hebei")
    assert hebei.url_for("http://127.0.0.1:1/ebus/rio_fsi", "2301") == (
        "http://127.0.0.1:1/ebus/rio_fsi/fsi/api/hospFeeDtlService/feeDtlUp"
    )
    assert nhsa.url_for("http://127.0.0.1:1/", "2301") == (
        "http://127.0.0.1:1/fsi/api/rsfComIfsService/callService"
    )


def test_hook_adapter_register_signers():
    class Scheme:
        @hookimpl
        def adapter_register_signers(self, register):
            register(SignerSpec("none", "no headers", (), lambda creds, options: _NoHeaders()))

    host = PluginHost.load()
    host.register(Scheme(), name="scheme", version="1", origin="test")
    assert set(host.signers()) == {"tif", "csb", "zhejiang", "none"}
    assert host.signers()["none"].factory({}, {}).headers(b"{}", "2301") == {}


class _NoHeaders:
    def headers(self, body: bytes, infno: str) -> dict[str, str]:
        return {}


def test_every_hook_is_documented_with_its_signature():
    doc = (ROOT / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    for name in HOOKS:
        assert re.search(rf"^### `{name}\([a-z, ]+\)`", doc, re.M), f"{name} is not documented"


def test_every_hook_has_a_test():
    source = Path(__file__).read_text(encoding="utf-8")
    for name in HOOKS:
        assert f"def test_hook_{name}(" in source, f"{name} has no test_hook_{name}"
