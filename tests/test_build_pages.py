"""The build stage takes ready records a page at a time (memory flat in the backlog) and still
spools every record once, each visit's messages in phase order (registration, details,
closing) and in ledger order; a cancel waits for the ack of what it cancels."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from adapter.flow import build
from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.helpers import run_until_done

INPATIENT = 'transactions = ["2401", "2301", "2302", "2402"]'


def _spooled(adapter):
    with adapter.store.begin() as conn:
        return conn.execute(
            select(schema.record.c.id, schema.record.c.infno, schema.record.c.group_key, schema.record.c.status,
                   schema.record.c.message_id)
        ).all()


def test_small_pages_spool_every_record_once_in_phase_and_ledger_order(make_adapter, centre, sample_his,
                                                                       tmp_path, monkeypatch):
    monkeypatch.setattr(build, "CHUNK", 7)  # many pages, boundaries inside visits
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=INPATIENT)
    import_sample_mapping(adapter, sample_his)

    run_until_done(adapter)

    rows = _spooled(adapter)
    sent = [row for row in rows if row.status == RecordStatus.SENT.value]
    assert len({row.infno for row in sent}) >= 3 and len(sent) > 3 * 7
    assert not [row for row in rows if row.status in (RecordStatus.READY.value, RecordStatus.QUEUED.value)]
    phase = {infno: spec.phase for infno, spec in adapter.cycle.build.specs.items()}
    by_group = defaultdict(list)
    for row in sorted(sent, key=lambda row: row.message_id):
        by_group[row.group_key].append(row)
    for group, members in by_group.items():
        # a cancel (2302) waits for the ack of what it cancels, so it may follow the discharge
        phases = [phase[row.infno] for row in members if row.infno != "2302"]
        assert phases == sorted(phases), str((group, [(r.id, r.infno, r.message_id) for r in members]))
        details = [row.id for row in members if row.infno == "2301"]
        assert details == sorted(details), group
    # the centre holds each line once (less those the HIS cancelled)
    assert len(centre.ledger.fee_lines) + centre.ledger.cancelled_lines["2302"] == len(
        [row for row in sent if row.infno == "2301"])
