"""Configuration: the example validates; every wrong key is named with its location."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from adapter.app import build_adapter
from adapter.cli import main
from adapter.config import load_settings, parse_settings
from adapter.errors import ConfigError, SecurityError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "adapter.example.toml"


def test_example_config_is_valid_with_defaults():
    settings = load_settings(EXAMPLE)
    assert settings.schedule.interval_minutes == 20
    # written "sqlite:///spool/state.db": relative to the file's folder (tests/test_config_paths.py)
    assert settings.state.url == f"sqlite:///{EXAMPLE.parent / 'spool' / 'state.db'}"
    assert settings.centre.region == "nhsa"
    assert set(settings.centre.credentials) == {"paasid", "token"}


def test_every_wrong_key_is_named_with_table_and_line():
    text = EXAMPLE.read_text(encoding="utf-8")
    text = text.replace('mdtrtarea_admvs = "431199"', 'mdtrtarea_admvs = "4311"')
    text = text.replace("interval_minutes = 20", "interval_minutes = -5\nintervall = 3")
    text = text.replace('opter_type = "1"', 'opter_type = "9"')
    with pytest.raises(ConfigError) as info:
        parse_settings(text, source="adapter.toml")
    problems = info.value.problems
    assert len(problems) == 4, problems
    joined = "\n".join(problems)
    line_of = {key: n for n, line in enumerate(text.splitlines(), 1) for key in
               ("mdtrtarea_admvs", "interval_minutes", "intervall", "opter_type") if line.startswith(key)}
    assert f"adapter.toml:{line_of['mdtrtarea_admvs']}: [centre] mdtrtarea_admvs:" in joined
    assert f"adapter.toml:{line_of['interval_minutes']}: [schedule] interval_minutes:" in joined
    assert f"adapter.toml:{line_of['intervall']}: [schedule] intervall: unknown key" in joined
    assert f"adapter.toml:{line_of['opter_type']}: [centre] opter_type:" in joined


def test_literal_credentials_are_refused():
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'token = { env = "YIBAO_TIF_TOKEN" }', 'token = "s3cret"'
    )
    with pytest.raises(ConfigError, match="written literally"):
        parse_settings(text)


def test_missing_required_table_and_bad_toml():
    with pytest.raises(ConfigError, match=r"\[his\]: required key is missing"):
        parse_settings("[centre]\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_settings("[his\nurl=")


def test_secret_reference_resolution(tmp_path, monkeypatch):
    settings = load_settings(EXAMPLE)
    monkeypatch.setenv("YIBAO_TIF_PAASID", "p")
    monkeypatch.delenv("YIBAO_TIF_TOKEN", raising=False)
    with pytest.raises(SecurityError, match="YIBAO_TIF_TOKEN is not set"):
        settings.centre.resolve_credentials()
    secret = tmp_path / "token"
    secret.write_text("from-file\n", encoding="utf-8")
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        'token = { env = "YIBAO_TIF_TOKEN" }', f'token = {{ file = "{secret}" }}'
    )
    assert parse_settings(text).centre.resolve_credentials() == {"paasid": "p", "token": "from-file"}


def test_check_config_command(tmp_path, monkeypatch):
    monkeypatch.setenv("YIBAO_TIF_PAASID", "p")
    monkeypatch.setenv("YIBAO_TIF_TOKEN", "t")
    runner = CliRunner()
    ok = runner.invoke(main, ["check-config", "--config", str(EXAMPLE)])
    assert ok.exit_code == 0, ok.output
    assert "OK (region nhsa, gateway tif, every 20 min)" in ok.output
    bad = tmp_path / "bad.toml"
    bad.write_text(EXAMPLE.read_text(encoding="utf-8").replace('region = "nhsa"', 'region = "mars"'))
    result = runner.invoke(main, ["check-config", "--config", str(bad)])
    assert result.exit_code == 1
    assert "no loaded plugin provides region 'mars'" in result.output
    monkeypatch.delenv("YIBAO_TIF_TOKEN")
    result = runner.invoke(main, ["check-config", "--config", str(EXAMPLE)])
    assert result.exit_code == 1 and "YIBAO_TIF_TOKEN is not set" in result.output


def test_check_config_refuses_what_run_would_refuse(tmp_path, monkeypatch):
    # check-config runs the same planner as `run`: an unknown transaction, or one without a
    # HIS query, is refused before the daemon is ever started.
    monkeypatch.setenv("YIBAO_TIF_PAASID", "p")
    monkeypatch.setenv("YIBAO_TIF_TOKEN", "t")
    runner = CliRunner()
    text = EXAMPLE.read_text(encoding="utf-8")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(
        text.replace('watermark_column = "line_id"', 'watermark_column = "line_id"\ntransactions = ["2301", "9999"]', 1)
    )
    result = runner.invoke(main, ["check-config", "--config", str(unknown)])
    assert result.exit_code == 1 and "does not describe 9999" in result.output
    no_query = tmp_path / "no-query.toml"
    no_query.write_text(
        text.replace('watermark_column = "line_id"', 'watermark_column = "line_id"\ntransactions = ["2301", "2401"]', 1)
    )
    result = runner.invoke(main, ["check-config", "--config", str(no_query)])
    assert result.exit_code == 1 and 'give the HIS query of transaction 2401' in result.output
    for path in (unknown, no_query):
        with pytest.raises(ConfigError):
            build_adapter(load_settings(path))
