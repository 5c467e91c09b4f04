"""Upgrades lose nothing: a state database written by 0.1.0 (a real one, tests/fixtures, with
lines sent, parked, queued, in flight and unknown) is upgraded in place, at start and by
`db upgrade`, every row kept, and the daemon carries on where it stopped."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from adapter.cli import main
from adapter.errors import StateStoreError
from adapter.spool import outbox
from adapter.state import schema
from adapter.state.store import StateStore
from adapter.state.upgrade import head_revision
from tests.conftest import config_text
from tests.helpers import run_until_done
from tests.legacy_state import build_legacy_state, legacy_facts


def _rows(store: StateStore, table):
    with store.begin() as conn:
        return conn.execute(select(table)).all()


def test_a_0_1_0_database_is_upgraded_in_place_with_every_row_kept(state_url, tmp_path, centre, sample_his):
    build_legacy_state(state_url)
    facts = legacy_facts()
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=sample_his.url, state_url=state_url, centre_url=centre.url),
                      encoding="utf-8")
    runner = CliRunner()
    status = runner.invoke(main, ["db", "status", "--config", str(config)])
    assert status.exit_code == 0 and "revision 0001" in status.output and "needs `db upgrade`" in status.output
    result = runner.invoke(main, ["db", "upgrade", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"upgraded from revision 0001 to {head_revision()}" in result.output

    store = StateStore(state_url)  # opening it again (at start) finds nothing to do
    try:
        assert not store.upgrade.changed
        records = _rows(store, schema.record)
        lines = [r for r in records if r.infno == "2301"]
        # Every fee line is a 2301 record with its state; a ready line is checked again (new).
        expected: Counter[tuple[str, str | None]] = Counter()
        for (status, kind), n in facts["fee_line_state"].items():
            expected["new" if status == "ready" else status, kind] += n
        assert Counter((r.status, r.park_kind) for r in lines) == expected
        assert {tuple(r.business_key.split("|")) for r in lines if not r.business_key.startswith("#")} \
            == {k for k in facts["fee_line_keys"] if k[0] and k[1]}
        assert len(lines) == facts["row_counts"]["fee_line"]
        assert {tuple(r.business_key.split("|")): r.message_id for r in lines if r.message_id is not None} \
            == facts["fee_line_message"]
        for row in lines:
            if row.status in ("queued", "sent") and row.message_id is not None:
                entry = json.loads(row.payload)["feedetail"][0]
                assert entry["feedetl_sn"] == row.business_key.split("|")[1]
        # Every other row is where it was.
        others = [r for r in records if r.infno != "2301"]
        assert Counter((r.infno, r.status, r.park_kind) for r in others) == Counter(facts["record_state"])
        assert Counter(r.status for r in _rows(store, schema.message)) == Counter(facts["message_status"])
        assert {r.msgid for r in _rows(store, schema.attempt)} == facts["attempt_msgids"]
        assert len(_rows(store, schema.mapping)) == facts["mappings"]
        assert {r.his_key: r.mdtrt_id for r in _rows(store, schema.visit)} == facts["visits"]
        assert {r.fixmedins_code: r.sign_no for r in _rows(store, schema.session)} == facts["sessions"]
        assert [(r.id, r.kind, r.ver, r.status, r.rows_total) for r in _rows(store, schema.catalog_version)] \
            == facts["catalog_versions"]
        assert len(_rows(store, schema.catalog_entry)) == sum(facts["catalog_entries"].values())
        assert len(_rows(store, schema.recon_run)) == len(facts["recon_runs"])
        watermarks = {r.source: r.value for r in _rows(store, schema.watermark)}
        legacy = dict(facts["watermarks"])
        legacy["his.2301"] = legacy.pop("his.fee_lines")
        assert watermarks == legacy
        # Findings still point at their lines.
        by_id = {r.id: r for r in records}
        findings = _rows(store, schema.finding)
        assert {(f.rule_id, f.stay_key, f.feedetl_sn, f.outcome) for f in findings} == facts["findings"]
        for found in findings:
            if found.line_id is not None:
                assert by_id[found.line_id].business_key.endswith("|" + found.feedetl_sn)
    finally:
        store.close()


def test_the_daemon_carries_on_after_the_upgrade(make_adapter, state_url, centre, sample_his):
    build_legacy_state(state_url)
    facts = legacy_facts()
    # The transactions the 0.1.0 installation uploaded (its ledger has records of each), its
    # 4101A settlement lists now uploaded as the edition's 4101 (4101A was stopped in 2022).
    infnos = sorted({"4101" if infno == "4101A" else infno for infno, _status in facts["record_status"]} | {"2301"})
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url,
                           his_extra="transactions = [" + ", ".join(f'"{i}"' for i in infnos) + "]")
    assert adapter.store.upgrade.before == "0001"  # upgraded when the adapter opened it
    legacy_new = {r.id for r in _rows(adapter.store, schema.record) if r.infno == "2301" and r.status == "new"}
    assert legacy_new  # the ready and new lines of 0.1.0
    # What the daemon does at start, then its cycles: the message left in flight is recovered
    # (and asked about), every queued message is settled, the lines that were waiting are
    # checked and go out too, until nothing is left to send.
    assert outbox.recover_in_flight(adapter.store) == facts["message_status"].get("in_flight", 0)
    run_until_done(adapter, limit_seconds=30)
    messages = {r.id: r.status for r in _rows(adapter.store, schema.message)}
    assert set(messages.values()) <= {"acked", "parked"}
    assert sum(1 for status in messages.values() if status == "acked") > facts["message_status"]["acked"]
    records = _rows(adapter.store, schema.record)
    for row in records:
        if row.message_id is not None and messages[row.message_id] == "acked":
            assert row.status == "sent", row
    assert not [r for r in records if r.id in legacy_new and r.status == "new"]
    assert not [r for r in records if r.status in ("new", "ready", "queued")]


def test_a_database_newer_than_the_code_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    StateStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(StateStoreError, match="revision 0099, which this version of yibao-adapter does not know"):
        StateStore(url)
