"""What used to exist on the 2301 path only now serves every transaction through the one flow:
the registered rules and the catalogue check see the fee lines of 2204 batches, and a HIS row
without a business key is kept (parked) instead of being dropped as a duplicate."""

from __future__ import annotations

import json
from dataclasses import replace

from sqlalchemy import create_engine, insert, select, text

from adapter.mapping.store import MappingRow, MappingStore
from adapter.records import MappingKind
from adapter.rehearsal.sample_his import fee_lines
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from tests.conftest import import_sample_mapping
from tests.helpers import fee_lines as ledger_fee_lines
from tests.helpers import run_until_done

OUTPATIENT = 'transactions = ["2201", "2203", "2204", "2205"]'
RETIRED = "XA10BAE002A001010102911"  # YP0007 in the sample catalogue
NEXT = "202612010001"


def _batches(adapter):
    with adapter.store.begin() as conn:
        return conn.execute(select(schema.record).where(schema.record.c.infno == "2204")).all()


def _items(row) -> set[str]:
    return {str(entry.get("medins_list_codg")) for entry in json.loads(row.raw)["feedetail"]}


def test_registered_rules_check_the_lines_of_outpatient_batches(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=OUTPATIENT)
    import_sample_mapping(adapter, sample_his)
    MappingStore(adapter.store).upsert([MappingRow(MappingKind.ITEM, "YP0008", "BADCODE", "坏编码")])

    run_until_done(adapter)

    batches = _batches(adapter)
    bad = [b for b in batches if "YP0008" in _items(b)]
    assert bad and all(b.status == RecordStatus.PARKED.value and b.park_kind == ParkKind.INVALID.value for b in bad)
    assert all("[code-formats]" in b.park_reason for b in bad)
    assert all(b.status == RecordStatus.SENT.value for b in batches if b not in bad)
    assert "BADCODE" not in {line.med_list_codg for line in centre.ledger.fee_lines.values()}


def test_the_catalogue_check_sees_the_lines_of_outpatient_batches(make_adapter, centre, sample_his, tmp_path):
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra=OUTPATIENT)
    import_sample_mapping(adapter, sample_his)
    adapter.catalog_sync.sync("1301")
    published = centre.ledger.catalogues["1301"]
    published[:] = [replace(row, valid="0", version=NEXT) if row.code == RETIRED else row for row in published]
    adapter.catalog_sync.sync("1301")

    run_until_done(adapter)

    retired = [b for b in _batches(adapter) if "YP0007" in _items(b)]
    assert retired and all(b.status == RecordStatus.PARKED.value for b in retired)
    assert all(f"national code {RETIRED} is retired in catalogue 1301" in b.park_reason for b in retired)
    assert RETIRED not in {line.med_list_codg for line in centre.ledger.fee_lines.values()}


def test_rows_without_a_business_key_are_kept_apart(make_adapter, centre, sample_his, tmp_path):
    # Two fee lines of one stay that lack feedetl_sn share no key: each is parked as malformed,
    # keyed by its place in the HIS, and neither is taken for a duplicate of the other.
    engine = create_engine(sample_his.url)
    with engine.begin() as conn:
        visit = conn.execute(text("SELECT visit_id FROM inpatient_visits ORDER BY visit_id LIMIT 1")).scalar_one()
        conn.execute(insert(fee_lines), [
            {"visit_id": visit, "feedetl_sn": " ", "item_code": "ZL0001", "qty": "1", "unit_price": "45.00",
             "amount": "45.00", "charged_at": "2026-11-21 09:00:00", "dept_code": "NK01", "doctor_code": "YS000"}
            for _ in range(2)
        ])
    engine.dispose()
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)

    report = run_until_done(adapter)

    keyless = [r for r in ledger_fee_lines(adapter) if r.business_key.startswith("#")]
    assert len(keyless) == 2 and report.duplicates_skipped == 0
    assert all(r.park_kind == ParkKind.MALFORMED.value and "feedetl_sn" in r.park_reason for r in keyless)
