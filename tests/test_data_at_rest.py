"""Data at rest: the state database holds psn_no, names and diagnoses.

A SQLite state file (with its -wal and -shm) and the folders made for it are the adapter's
user's alone, whatever the umask, and a loose one is tightened; payloads and HIS rows are
sealed with AES-GCM under a key file that must be private, through key rotations and
`db rekey`, with rows written before sealing still read; a configuration holding a password
must be private; and -v keeps the configured log format and file. Real files, real modes,
real PostgreSQL for the sealing round trips.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, insert, select, text

from adapter.app import build_adapter
from adapter.cli import main
from adapter.config import StateConfig, load_settings, parse_settings
from adapter.errors import SecurityError
from adapter.logs import JsonFormatter
from adapter.spool import outbox
from adapter.state import schema
from adapter.state.sealing import Keyring, key_id, read_key_file, sealed_key_id, write_key_file
from adapter.state.store import StateStore, utcnow
from tests.conftest import config_text, import_sample_mapping
from tests.helpers import run_until_done

SEALED = (("message", "payload"), ("record", "raw"), ("record", "payload"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """umask 000: whatever the modes are, the code chose them."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _key(path: Path) -> Path:
    write_key_file(path)
    return path


def _stored(url: str) -> dict[tuple[str, str], list[str]]:
    """Every stored value of the sealed columns, as the database holds it (no unsealing)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {(table, column): [row[0] for row in conn.execute(
                text(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY id"))]
                for table, column in SEALED}
    finally:
        engine.dispose()


def _add_record(store: StateStore, key: str, raw: dict[str, str]) -> int:
    now = utcnow()
    with store.begin() as conn:
        record_id = conn.execute(insert(schema.record).values(
            infno="2301", business_key=key, group_key=f"visit:{key}", status="ready", raw=json.dumps(raw),
            payload=json.dumps({"feedetail": [{"feedetl_sn": key}]}), created_at=now, updated_at=now,
        ).returning(schema.record.c.id)).scalar_one()
        outbox.spool_message(conn, infno="2301", group_key=f"visit:{key}", payload={"psn_no": raw["psn_no"]},
                             record_ids=[record_id])
    return int(record_id)


def _read_all(store: StateStore) -> tuple[list[str], list[dict[str, object]]]:
    with store.begin() as conn:
        raws = [row.raw for row in conn.execute(select(schema.record.c.raw).order_by(schema.record.c.id))]
        payloads = [json.loads(row.payload) for row in
                    conn.execute(select(schema.message.c.payload).order_by(schema.message.c.id))]
    return raws, payloads


# -- (a) the SQLite state file ------------------------------------------------------------
def test_a_new_state_file_its_folders_and_wal_are_private(tmp_path, permissive_umask):
    os.chmod(tmp_path, 0o755)
    path = tmp_path / "spool" / "yibao" / "state.db"
    store = StateStore(f"sqlite:///{path}")
    try:
        _add_record(store, "A1", {"psn_no": "43000000000000000001"})
        with store.begin() as conn:  # the write-ahead log and its index exist while a connection is open
            conn.execute(select(schema.record.c.id)).all()
            for suffix in ("-wal", "-shm"):
                companion = path.with_name(path.name + suffix)
                assert companion.exists() and _mode(companion) == 0o600, suffix
    finally:
        store.close()
    assert _mode(path) == 0o600
    assert _mode(path.parent) == _mode(path.parent.parent) == 0o700
    assert _mode(tmp_path) == 0o755  # a folder that was there is not the adapter's to change


def test_a_loose_state_file_is_tightened_with_a_warning(tmp_path, caplog):
    path = tmp_path / "state.db"
    StateStore(f"sqlite:///{path}").close()
    held = sqlite3.connect(path)  # keeps -wal and -shm in place
    held.execute("PRAGMA journal_mode=WAL")
    held.execute("CREATE TABLE IF NOT EXISTS scratch (x)")
    held.execute("INSERT INTO scratch VALUES (1)")
    held.commit()
    loose = [path, path.with_name("state.db-wal"), path.with_name("state.db-shm")]
    try:
        for each in loose:
            os.chmod(each, 0o644)
        with caplog.at_level(logging.WARNING, logger="adapter.state.private"):
            StateStore(f"sqlite:///{path}").close()
        for each in loose:
            assert _mode(each) == 0o600, each
        warned = [r for r in caplog.records if getattr(r, "action", "") == "state_file_permissions"]
        assert {Path(r.args[0]) for r in warned} == set(loose)  # type: ignore[index]
        assert "could be read by group or others (mode 0644)" in warned[0].getMessage()
    finally:
        held.close()


# -- (b) sealing --------------------------------------------------------------------------
def test_payloads_and_his_rows_are_sealed_through_a_whole_cycle(tmp_path, state_url, centre, sample_his):
    key = _key(tmp_path / "state.key")
    text_ = config_text(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    text_ = text_.replace(f'url = "{state_url}"', f'url = "{state_url}"\nkey_file = "{key}"')
    adapter = build_adapter(parse_settings(text_))
    try:
        import_sample_mapping(adapter, sample_his)
        run_until_done(adapter)
        with adapter.store.begin() as conn:
            sent = conn.execute(select(schema.record.c.raw).where(schema.record.c.status == "sent")).all()
    finally:
        adapter.close()
    assert len(centre.ledger.fee_lines) == len(sent) > 0  # the centre got what was sealed here
    his = create_engine(sample_his.url)
    with his.connect() as conn:
        psn_nos = {row[0] for row in conn.execute(text("SELECT psn_no FROM patients"))}
    his.dispose()
    kid = key_id(read_key_file(key))
    stored = _stored(state_url)
    assert all(stored[column] for column in SEALED), stored
    for column, values in stored.items():
        for value in values:
            assert value.startswith(f"yb1:{kid}:"), (column, value[:40])
            assert not any(psn_no in value for psn_no in psn_nos)


def test_rows_written_before_sealing_still_read_and_keys_rotate_with_rekey(tmp_path, state_url):
    first, second = _key(tmp_path / "first.key"), _key(tmp_path / "second.key")
    first_id, second_id = key_id(read_key_file(first)), key_id(read_key_file(second))
    # Written before sealing was switched on: plain.
    store = StateStore(state_url)
    _add_record(store, "P1", {"psn_no": "43000000000000000001", "main_diag_code": "J18.900"})
    store.close()
    assert sealed_key_id(_stored(state_url)["record", "raw"][0]) is None
    # Sealing on: the plain row still reads, the new one is sealed with the first key.
    store = StateStore.configured(StateConfig(url=state_url, key_file=str(first)))
    _add_record(store, "S1", {"psn_no": "43000000000000000002", "main_diag_code": "I10.x00"})
    raws, payloads = _read_all(store)
    store.close()
    assert [json.loads(raw)["psn_no"] for raw in raws] == ["43000000000000000001", "43000000000000000002"]
    assert [p["psn_no"] for p in payloads] == ["43000000000000000001", "43000000000000000002"]
    assert [sealed_key_id(v) for v in _stored(state_url)["record", "raw"]] == [None, first_id]
    # A new key, the first kept for reading: both read, new values take the second key.
    rotated = StateConfig(url=state_url, key_file=str(second), old_key_files=[str(first)])
    store = StateStore.configured(rotated)
    _add_record(store, "S2", {"psn_no": "43000000000000000003", "main_diag_code": "E11.900"})
    assert len(_read_all(store)[0]) == 3
    store.close()
    assert [sealed_key_id(v) for v in _stored(state_url)["record", "raw"]] == [None, first_id, second_id]
    # `db rekey` re-seals everything (the plain row too) with the second key.
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url="sqlite:///unused.db", state_url=state_url, centre_url="http://127.0.0.1:9")
                      .replace(f'url = "{state_url}"', f'url = "{state_url}"\nkey_file = "{second}"\n'
                                                        f'old_key_files = ["{first}"]'), encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["db", "rekey", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"record.raw: 2 value(s) sealed with key {second_id} again, 1 already were" in result.output
    assert "run `db rekey` again to confirm" in result.output
    for values in _stored(state_url).values():
        assert {sealed_key_id(v) for v in values} == {second_id}
    again = runner.invoke(main, ["db", "rekey", "--config", str(config)])
    assert "record.raw: 0 value(s)" in again.output and "old_key_files can be emptied" in again.output
    # The first key can go now; every row still reads.
    store = StateStore.configured(StateConfig(url=state_url, key_file=str(second)))
    raws, payloads = _read_all(store)
    store.close()
    assert [json.loads(raw)["main_diag_code"] for raw in raws] == ["J18.900", "I10.x00", "E11.900"]
    # Without the key a sealed value is refused, naming the key it needs.
    store = StateStore(state_url)
    try:
        with pytest.raises(SecurityError, match=f"sealed with key {second_id}, which is not among the keys"):
            _read_all(store)
    finally:
        store.close()
    # Switching sealing off: rekey with the key only kept for reading stores everything plain.
    config.write_text(config.read_text(encoding="utf-8").replace(
        f'key_file = "{second}"\nold_key_files = ["{first}"]', f'old_key_files = ["{second}"]'), encoding="utf-8")
    result = runner.invoke(main, ["db", "rekey", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "record.raw: 3 value(s) stored plain again" in result.output
    assert {sealed_key_id(v) for values in _stored(state_url).values() for v in values} == {None}


def test_a_sealed_value_that_was_altered_or_moved_does_not_open(tmp_path, state_url):
    key = _key(tmp_path / "state.key")
    store = StateStore.configured(StateConfig(url=state_url, key_file=str(key)))
    try:
        record_id = _add_record(store, "T1", {"psn_no": "43000000000000000001"})
        raw = _stored(state_url)["record", "raw"][0]
        tampered = raw[:-6] + ("A" if raw[-6] != "A" else "B") + raw[-5:]
        with store.begin() as conn:  # written around the sealing, as someone with the file could
            conn.execute(text("UPDATE record SET raw = :raw, payload = :payload WHERE id = :id"),
                         {"raw": tampered, "payload": raw, "id": record_id})
        with pytest.raises(SecurityError, match=r"record\.raw holds a sealed value .* that does not open"):
            _read_all(store)
        with store.begin() as conn:
            conn.execute(text("UPDATE record SET raw = :raw WHERE id = :id"), {"raw": raw, "id": record_id})
        assert json.loads(_read_all(store)[0][0])["psn_no"] == "43000000000000000001"
        with pytest.raises(SecurityError, match=r"record\.payload holds a sealed value .* copied from another column"):
            with store.begin() as conn:
                conn.execute(select(schema.record.c.payload)).all()
    finally:
        store.close()


def test_key_files_must_be_private_and_well_formed(tmp_path, monkeypatch):
    key = _key(tmp_path / "state.key")
    assert _mode(key) == 0o600
    with pytest.raises(SecurityError, match="never overwritten"):
        write_key_file(key)
    os.chmod(key, 0o640)
    settings = StateConfig(url=f"sqlite:///{tmp_path / 'state.db'}", key_file=str(key))
    with pytest.raises(SecurityError, match=rf"sealing key file can be read or changed by group or others "
                                            rf"\(mode 0640\); chmod 600 {key}"):
        StateStore.configured(settings)
    os.chmod(key, 0o600)
    assert Keyring.from_settings(settings).seals
    short = tmp_path / "short.key"
    short.write_text("c2hvcnQ=\n", encoding="ascii")
    os.chmod(short, 0o600)
    with pytest.raises(SecurityError, match="a sealing key is 32 bytes, this one is 5"):
        Keyring.from_settings(StateConfig(key_file=str(short)))
    with pytest.raises(SecurityError, match=r"cannot read the sealing key file .*missing\.key"):
        Keyring.from_settings(StateConfig(key_file=str(tmp_path / "missing.key")))
    with pytest.raises(SecurityError, match="the same key"):
        Keyring.from_settings(StateConfig(key_file=str(key), old_key_files=[str(key)]))
    # check-config refuses what `run` would.
    monkeypatch.setenv("YIBAO_TIF_PAASID", "p")
    monkeypatch.setenv("YIBAO_TIF_TOKEN", "t")
    example = (Path(__file__).resolve().parents[1] / "config" / "adapter.example.toml").read_text(encoding="utf-8")
    config = tmp_path / "adapter.toml"
    config.write_text(example.replace('url = "sqlite:///spool/state.db"',
                                      f'url = "sqlite:///{tmp_path / "s.db"}"\nkey_file = "{key}"'), encoding="utf-8")
    os.chmod(key, 0o644)
    result = CliRunner().invoke(main, ["check-config", "--config", str(config)])
    assert result.exit_code == 1 and f"chmod 600 {key}" in result.output


def test_db_keygen_writes_a_private_key(tmp_path):
    key = tmp_path / "new.key"
    result = CliRunner().invoke(main, ["db", "keygen", str(key)])
    assert result.exit_code == 0, result.output
    assert _mode(key) == 0o600 and f"wrote sealing key {key_id(read_key_file(key))} to {key}" in result.output
    assert CliRunner().invoke(main, ["db", "keygen", str(key)]).exit_code == 1


# -- (c) a configuration holding a secret ---------------------------------------------------
def test_a_configuration_holding_a_password_must_be_private(tmp_path):
    config = tmp_path / "adapter.toml"
    with_password = config_text(his_url="postgresql+psycopg://his:s3cret@127.0.0.1/his",
                                state_url=f"sqlite:///{tmp_path / 'state.db'}", centre_url="http://127.0.0.1:9")
    config.write_text(with_password, encoding="utf-8")
    os.chmod(config, 0o644)
    with pytest.raises(SecurityError) as refused:
        load_settings(config)
    assert "holds a password ([his] url)" in str(refused.value) and f"chmod 600 {config}" in str(refused.value)
    assert "s3cret" not in str(refused.value)
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 1 and f"chmod 600 {config}" in result.output
    os.chmod(config, 0o600)
    assert load_settings(config).inline_secrets() == ["[his] url"]
    # Without a password (credentials are references) the mode is the operator's choice.
    config.write_text(with_password.replace("his:s3cret@", "his@"), encoding="utf-8")
    os.chmod(config, 0o644)
    assert load_settings(config).inline_secrets() == []


# -- (d) -v and [logging] -------------------------------------------------------------------
def test_verbose_raises_the_level_and_keeps_the_configured_format_and_file(tmp_path, restore_logging):
    log = tmp_path / "adapter.log"
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url="sqlite:///unused.db", state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url="http://127.0.0.1:9")
                      + f'\n[logging]\nlevel = "WARNING"\nformat = "json"\nfile = "{log}"\n', encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(main, ["status", "--config", str(config)]).exit_code == 0
    assert not log.read_text(encoding="utf-8")  # WARNING: nothing to say
    assert _mode(log) == 0o600
    result = runner.invoke(main, ["-v", "status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    root = logging.getLogger()
    assert root.level == logging.DEBUG
    (handler,) = root.handlers
    assert isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == log
    assert isinstance(handler.formatter, JsonFormatter)
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert any(line["level"] == "DEBUG" and line.get("action") == "state_open" for line in lines), lines
