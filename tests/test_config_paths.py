"""Relative paths in the configuration resolve against the configuration file's folder, never
the working directory: `status` run from another folder reads the same state database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from adapter.config import load_settings, parse_settings, sqlite_url_against
from adapter.errors import ConfigError
from tests.conftest import config_text

BIN = Path(sys.executable).with_name("yibao-adapter")


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "adapter.toml"
    config.write_text(text, encoding="utf-8")
    return config


def _relative_config(extra_state: str = "", state_url: str | None = "sqlite:///spool/state.db") -> str:
    text = config_text(his_url="sqlite:///his/his.db", state_url=state_url or "", centre_url="http://127.0.0.1:9",
                       extra_centre='ca_bundle = "tls/ca.pem"')
    text = text.replace('paasid = { env = "TEST_GW_PAASID" }', 'paasid = { file = "secrets/paasid" }')
    if state_url is None:
        text = text.replace('[state]\nurl = ""\n', "[state]\n")
    text = text.replace("[state]\n", f"[state]\n{extra_state}\n", 1)
    return text + """
[logging]
file = "logs/adapter.log"

[monitor]
token = { file = "secrets/monitor" }

[alerts]
state_file = "alerts.json"

[alerts.webhook]
url = "http://127.0.0.1:9/hook"
token = { file = "../shared/webhook" }

[alerts.smtp]
host = "127.0.0.1"
sender = "a@example.org"
to = ["b@example.org"]
username = "u"
password = { env = "SMTP_PASSWORD" }
"""


def test_every_relative_path_resolves_against_the_configuration_folder(tmp_path, monkeypatch):
    folder = tmp_path / "etc" / "yibao"
    config = _write(folder, _relative_config('key_file = "keys/state.key"\nold_key_files = ["keys/old.key", "/abs/k"]'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(config)
    assert make_url(settings.his.url).database == str(folder / "his" / "his.db")
    assert make_url(settings.state.url).database == str(folder / "spool" / "state.db")
    assert settings.state.url == f"sqlite:///{folder}/spool/state.db"
    assert settings.state.key_file == str(folder / "keys" / "state.key")
    assert settings.state.old_key_files == [str(folder / "keys" / "old.key"), "/abs/k"]
    assert settings.logging.file == str(folder / "logs" / "adapter.log")
    assert settings.alerts.state_file == str(folder / "alerts.json")
    assert settings.centre.ca_bundle == str(folder / "tls" / "ca.pem")
    assert settings.centre.credentials["paasid"].file == str(folder / "secrets" / "paasid")
    assert settings.centre.credentials["token"].env == "TEST_GW_TOKEN"  # a reference to the environment stays
    assert settings.monitor.token is not None and settings.monitor.token.file == str(folder / "secrets" / "monitor")
    assert settings.alerts.webhook is not None and settings.alerts.webhook.token is not None
    assert settings.alerts.webhook.token.file == str(tmp_path / "etc" / "shared" / "webhook")  # .. normalised
    assert settings.alerts.smtp is not None and settings.alerts.smtp.password is not None
    assert settings.alerts.smtp.password.env == "SMTP_PASSWORD"
    # The credential file is read from there, wherever the process stands.
    (folder / "secrets").mkdir()
    (folder / "secrets" / "paasid").write_text("from-the-config-folder\n", encoding="utf-8")
    assert settings.centre.resolve_credentials()["paasid"] == "from-the-config-folder"
    assert not any(elsewhere.iterdir())


def test_the_default_state_database_is_in_the_configuration_folder(tmp_path, monkeypatch):
    folder = tmp_path / "conf"
    config = _write(folder, _relative_config(state_url=None))
    monkeypatch.chdir(tmp_path)
    assert "url" not in config.read_text(encoding="utf-8").split("[state]")[1].split("[")[0]
    assert load_settings(config).state.url == f"sqlite:///{folder}/spool/state.db"
    # A configuration named by a relative path: its folder, made absolute once.
    assert load_settings(Path("conf") / "adapter.toml").state.url == f"sqlite:///{folder}/spool/state.db"


def test_parse_settings_alone_leaves_paths_as_written():
    # Only load_settings knows the file, so only it resolves; text parsed on its own is as written.
    settings = parse_settings(_relative_config())
    assert settings.state.url == "sqlite:///spool/state.db" and settings.logging.file == "logs/adapter.log"


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///spool/state.db", "sqlite:////cfg/spool/state.db"),
    ("sqlite:///../var/state.db?timeout=30", "sqlite:////var/state.db?timeout=30"),
    ("sqlite+pysqlite:///his.db", "sqlite+pysqlite:////cfg/his.db"),
    ("sqlite:///file:his.db?mode=ro&uri=true", "sqlite:///file:/cfg/his.db?mode=ro&uri=true"),
    ("sqlite:////abs/state.db", "sqlite:////abs/state.db"),
    ("sqlite://", "sqlite://"),
    ("sqlite:///:memory:", "sqlite:///:memory:"),
    ("sqlite:///file:shared?mode=memory&cache=shared&uri=true", "sqlite:///file:shared?mode=memory&cache=shared&uri=true"),
    ("postgresql+psycopg://yibao@127.0.0.1/state", "postgresql+psycopg://yibao@127.0.0.1/state"),
    ("mssql+pyodbc://his@HISDSN", "mssql+pyodbc://his@HISDSN"),
])
def test_sqlite_urls(url, expected):
    assert sqlite_url_against(url, Path("/cfg")) == expected


def test_a_folder_with_url_characters_stays_that_folder(tmp_path):
    folder = tmp_path / "医保 50%?#"
    resolved = sqlite_url_against("sqlite:///state.db", folder)
    assert make_url(resolved).database == str(folder / "state.db")


def test_ca_bundle_with_tls_verify_off_is_refused():
    text = config_text(his_url="sqlite://", state_url="sqlite://", centre_url="https://127.0.0.1:9",
                       extra_centre='tls_verify = false\nca_bundle = "ca.pem"')
    with pytest.raises(ConfigError, match="ca_bundle is given but tls_verify = false"):
        parse_settings(text)


def test_status_from_another_folder_reads_the_configured_database(tmp_path):
    """The real command, as cron or a person in another folder runs it."""
    folder = tmp_path / "x"
    config = _write(folder, config_text(his_url="sqlite:///his.db", state_url="sqlite:///spool/state.db",
                                        centre_url="http://127.0.0.1:9"))
    cwd = tmp_path / "somewhere-else"
    cwd.mkdir()
    env = {**os.environ, "TEST_GW_PAASID": "p", "TEST_GW_TOKEN": "t"}
    env.pop("ADAPTER_CONFIG", None)
    result = subprocess.run([str(BIN), "status", "--config", str(config)], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(cwd.iterdir()) == []  # no spool/state.db here
    assert (folder / "spool" / "state.db").is_file()
    # Relative to the working directory the same command finds the same database.
    again = subprocess.run([str(BIN), "status", "--config", "x/adapter.toml"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert not (tmp_path / "spool").exists()
