"""A bad row parks itself, not the cycle; parked lines come back.

Every case goes through a real SQLite HIS and real cycles against the simulated centre: the bad
row is parked malformed with the column and the reason, the good rows of the same batch reach
the centre, and once the row is fixed in the HIS (its watermark moved, or `spool recheck`) it
reaches the centre exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text, update

from adapter import jsonio
from adapter.cli import main
from adapter.errors import SourceError
from adapter.flow.report import CycleReport
from adapter.his import SqlSource
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.sample_his import SampleHis, generate_sample_his
from adapter.rehearsal.sample_queries import FEE_LINES
from adapter.spool.states import ParkKind, RecordStatus
from adapter.state import schema
from tests.conftest import config_text, import_sample_mapping
from tests.helpers import fee_lines, run_until_done


@pytest.fixture
def his(tmp_path: Path) -> SampleHis:
    """A small HIS whose every row is good (3 stays, 21 fee lines with a refund each)."""
    return generate_sample_his(f"sqlite:///{tmp_path / 'his.db'}", visits=3, lines_per_visit=6, seed=7,
                               unmapped_share=0, invalid_share=0, malformed_share=0)


def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def _victims(url: str, count: int) -> list[Any]:
    """Lines that are neither refunds nor refunded (spoiling one holds back no other line)."""
    return _sql(url, """
        SELECT f.line_id, v.mdtrt_id, f.feedetl_sn, f.qty, f.amount, f.visit_id FROM fee_lines f
        JOIN inpatient_visits v ON v.visit_id = f.visit_id
        WHERE f.init_feedetl_sn IS NULL AND NOT EXISTS (
            SELECT 1 FROM fee_lines r WHERE r.visit_id = f.visit_id AND r.init_feedetl_sn = f.feedetl_sn)
        ORDER BY f.line_id""")[1:count + 1]


def _all_keys(url: str) -> set[tuple[str, str]]:
    return {(row.mdtrt_id, row.feedetl_sn) for row in _sql(
        url, "SELECT v.mdtrt_id, f.feedetl_sn FROM fee_lines f JOIN inpatient_visits v USING (visit_id)")}


def _record(adapter: Any, feedetl_sn: str) -> Any:
    found = [row for row in fee_lines(adapter) if row.feedetl_sn == feedetl_sn]
    assert len(found) == 1, found
    return found[0]


#: (what the HIS row holds, the column the reason must name, what it must say)
BAD_VALUES = [
    pytest.param("item_code = CAST(x'ff' AS TEXT)", "his_item_code", "is not UTF-8 text (bytes ff)", id="not-utf8"),
    pytest.param("order_no = x'fffe41'", "drord_no", "is not UTF-8 text (bytes ff fe 41)", id="blob"),
    pytest.param("order_no = 'YZ' || char(0) || '1'", "drord_no", "control character U+0000 at position 3",
                 id="nul"),
    pytest.param("order_no = 'YZ' || char(27) || '1'", "drord_no", "control character U+001B", id="escape"),
    pytest.param("qty = '1e400'", "cnt", "'1e400' has 401 digits before the decimal point, at most 12 allowed (16,4)",
                 id="overflow"),
    pytest.param("qty = '1e999999999'", "cnt", "has 1000000000 digits before the decimal point", id="huge-exponent"),
    pytest.param("qty = 'NaN'", "cnt", "'NaN' is not a finite number", id="nan"),
    pytest.param("qty = '-Infinity'", "cnt", "'-Infinity' is not a finite number", id="infinity"),
    pytest.param("qty = 9e999", "cnt", "is not a finite number", id="real-infinity"),
    pytest.param("qty = 'abc'", "cnt", "cnt 'abc' is not a number", id="text"),
    pytest.param("amount = '123456789012345.00'", "det_item_fee_sumamt",
                 "has 15 digits before the decimal point, at most 14 allowed (16,2)", id="digits"),
    pytest.param("charged_at = '1900-01-01 00:00:00'", "fee_ocur_time", "is before 2000-01-01", id="1900"),
    pytest.param("charged_at = '2099-12-31 00:00:00'", "fee_ocur_time", "more than a day in the future", id="2099"),
]


@pytest.mark.parametrize(("assignment", "column", "words"), BAD_VALUES)
def test_a_bad_value_parks_its_row_and_the_rest_arrive(make_adapter, centre, his, sqlite_state_url,
                                                        assignment, column, words):
    (victim,) = _victims(his.url, 1)
    expected = _all_keys(his.url) - {(victim.mdtrt_id, victim.feedetl_sn)}
    _sql(his.url, f"UPDATE fee_lines SET {assignment} WHERE line_id = :id", id=victim.line_id)
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)

    report = run_until_done(adapter)

    assert report.errors == []
    bad = _record(adapter, victim.feedetl_sn)
    assert (bad.status, bad.park_kind) == (RecordStatus.PARKED.value, ParkKind.MALFORMED.value)
    assert f"column {column}" in bad.park_reason and words in bad.park_reason, bad.park_reason
    assert set(centre.ledger.fee_lines) == expected
    assert centre.ledger.duplicate_lines == 0
    json.loads(bad.raw)  # what was stored of it is plain JSON, readable by a person


def test_every_kind_of_bad_value_in_one_batch(make_adapter, centre, his, state_url):
    # All at once, on SQLite and PostgreSQL state stores (PostgreSQL refuses a NUL in text and
    # a key longer than its column: one such value used to fail the batch's insert).
    victims = _victims(his.url, len(BAD_VALUES) + 1)
    for victim, case in zip(victims, BAD_VALUES, strict=False):
        _sql(his.url, f"UPDATE fee_lines SET {case.values[0]} WHERE line_id = :id", id=victim.line_id)
    keyed = victims[-1]  # and a serial far too long for the ledger's key
    _sql(his.url, "UPDATE fee_lines SET feedetl_sn = :sn WHERE line_id = :id", sn="9" * 300, id=keyed.line_id)
    adapter = make_adapter(his_url=his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)

    report = run_until_done(adapter)

    assert report.errors == []
    spoiled = {(v.mdtrt_id, v.feedetl_sn) for v in victims}
    assert set(centre.ledger.fee_lines) == _all_keys(his.url) - spoiled - {(keyed.mdtrt_id, "9" * 300)}
    parked = [row for row in fee_lines(adapter) if row.status == RecordStatus.PARKED.value]
    assert len(parked) == len(victims)
    assert {row.park_kind for row in parked} == {ParkKind.MALFORMED.value}
    long_key = next(row for row in parked if row.business_key == f"#{keyed.line_id}")
    assert "business key is 316 characters" in long_key.park_reason


def test_a_fee_line_whose_visit_row_is_missing_arrives_and_is_parked(make_adapter, centre, his, sqlite_state_url):
    (victim,) = _victims(his.url, 1)
    expected = _all_keys(his.url) - {(victim.mdtrt_id, victim.feedetl_sn)}
    _sql(his.url, "UPDATE fee_lines SET visit_id = 999 WHERE line_id = :id", id=victim.line_id)
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)

    run_until_done(adapter)

    orphan = _record(adapter, victim.feedetl_sn)
    assert (orphan.status, orphan.park_kind) == (RecordStatus.PARKED.value, ParkKind.MALFORMED.value)
    assert orphan.business_key == f"#{victim.line_id}"  # no visit, so no mdtrt_id: kept by its place
    assert "no value for mdtrt_id, psn_no" in orphan.park_reason
    assert set(centre.ledger.fee_lines) == expected


def test_a_record_the_checks_cannot_read_is_parked_there(make_adapter, centre, his, sqlite_state_url):
    # A HIS row stored before rows were read defensively (an older version stored this one as
    # it came): the check stage parks it, and the rest of its chunk goes on.
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)
    adapter.cycle.extract.run(CycleReport())
    first, second = fee_lines(adapter)[:2]
    with adapter.store.begin() as conn:
        for row, change in ((first, {"cnt": "1e400"}), (second, {"drord_no": "YZ\x00"})):
            raw = {**json.loads(row.raw), **change}
            conn.execute(update(schema.record).where(schema.record.c.id == row.id).values(
                raw=json.dumps(raw, ensure_ascii=False)))

    report = run_until_done(adapter)

    assert report.errors == []
    by_id = {row.id: row for row in fee_lines(adapter)}
    assert "column cnt '1e400' has 401 digits" in by_id[first.id].park_reason
    assert "column drord_no holds a control character U+0000" in by_id[second.id].park_reason
    assert {by_id[first.id].park_kind, by_id[second.id].park_kind} == {ParkKind.MALFORMED.value}
    assert len(centre.ledger.fee_lines) == len(by_id) - 2


def test_a_record_that_cannot_be_built_into_a_message_is_parked_there(make_adapter, centre, his, sqlite_state_url):
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)
    adapter.cycle.extract.run(CycleReport())
    adapter.cycle.check.run(CycleReport())
    broken, area = [row for row in fee_lines(adapter) if row.status == RecordStatus.READY.value][:2]
    with adapter.store.begin() as conn:
        conn.execute(update(schema.record).where(schema.record.c.id == broken.id).values(payload="{}"))
        conn.execute(update(schema.record).where(schema.record.c.id == area.id).values(
            raw=json.dumps({**json.loads(area.raw), "insuplc_admdvs": "4311990000"})))

    report = run_until_done(adapter)

    assert report.errors == []
    by_id = {row.id: row for row in fee_lines(adapter)}
    assert "has no feedetail list" in by_id[broken.id].park_reason
    assert "insuplc_admdvs '4311990000' is not a 6-digit area code" in by_id[area.id].park_reason
    assert {by_id[broken.id].park_kind, by_id[area.id].park_kind} == {ParkKind.MALFORMED.value}
    assert len(centre.ledger.fee_lines) == len(by_id) - 2


def test_a_blob_that_is_utf8_is_read_as_text(make_adapter, centre, his, sqlite_state_url):
    (victim,) = _victims(his.url, 1)
    _sql(his.url, "UPDATE fee_lines SET order_no = CAST('YZ医嘱9' AS BLOB) WHERE line_id = :id", id=victim.line_id)
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)

    run_until_done(adapter)

    assert centre.ledger.fee_lines[(victim.mdtrt_id, victim.feedetl_sn)].drord_no == "YZ医嘱9"


# -- parked lines come back -----------------------------------------------------------------
#: the sample fee query, read in the order rows were last changed (an updated-at watermark)
_BY_CHANGE = (FEE_LINES.replace("SELECT f.line_id            AS line_id,",
                                "SELECT f.line_id AS line_id, f.changed AS changed,")
              .replace("WHERE f.line_id > :watermark\nORDER BY f.line_id",
                       "WHERE f.changed > :watermark\nORDER BY f.changed"))


def _changed_watermark(url: str) -> str:
    _sql(url, "ALTER TABLE fee_lines ADD COLUMN changed INTEGER")
    _sql(url, "UPDATE fee_lines SET changed = line_id")
    return f"fee_query = '''{_BY_CHANGE}'''\nwatermark_column = \"changed\""


def _fix(url: str, line: Any, **values: Any) -> None:
    """Change a HIS row and move its updated-at watermark past every other row."""
    assignments = ", ".join(f"{name} = :{name}" for name in values)
    _sql(url, f"UPDATE fee_lines SET {assignments}, changed = (SELECT max(changed) + 1 FROM fee_lines) "
              "WHERE line_id = :id", id=line.line_id, **values)


def test_a_row_fixed_in_the_his_replaces_its_parked_record(make_adapter, make_centre, his, state_url):
    malformed, invalid, sent, rejected = _victims(his.url, 4)
    centre = make_centre()
    extra = _changed_watermark(his.url)
    _sql(his.url, "UPDATE fee_lines SET qty = '1e400' WHERE line_id = :id", id=malformed.line_id)
    _sql(his.url, "UPDATE fee_lines SET amount = '9999.99' WHERE line_id = :id", id=invalid.line_id)
    _sql(his.url, "UPDATE fee_lines SET item_code = 'YP0999' WHERE line_id = :id", id=rejected.line_id)
    adapter = make_adapter(his_url=his.url, state_url=state_url, centre_url=centre.url, his_extra=extra)
    import_sample_mapping(adapter, his)
    from adapter.mapping.store import MappingRow, MappingStore
    from adapter.records import MappingKind

    # YP0999 is mapped to a code the centre refuses: that line is parked as rejected.
    MappingStore(adapter.store).upsert([MappingRow(MappingKind.ITEM, "YP0999", "XJ01CAA040E001010109999", "")])
    centre.faults = FaultPlan(reject_codes=frozenset({"XJ01CAA040E001010109999"}))
    run_until_done(adapter)
    kinds = {sn: _record(adapter, sn).park_kind for sn in (malformed.feedetl_sn, invalid.feedetl_sn,
                                                          rejected.feedetl_sn)}
    assert kinds == {malformed.feedetl_sn: ParkKind.MALFORMED.value, invalid.feedetl_sn: ParkKind.INVALID.value,
                     rejected.feedetl_sn: ParkKind.REJECTED.value}
    before = {sn: _record(adapter, sn) for sn in (sent.feedetl_sn, rejected.feedetl_sn)}

    # Fixed in the HIS: their watermark moves, and the query returns them again. So do a line
    # already sent and the rejected one, changed too: those must stay as they are.
    _fix(his.url, malformed, qty=malformed.qty)
    _fix(his.url, invalid, amount=invalid.amount)
    _fix(his.url, sent, order_no="CHANGED")
    _fix(his.url, rejected, order_no="CHANGED")
    report = run_until_done(adapter)

    assert report.extracted == 2 and report.duplicates_skipped == 2
    for line in (malformed, invalid):
        record = _record(adapter, line.feedetl_sn)
        assert (record.status, record.park_kind, record.park_reason) == (RecordStatus.SENT.value, None, None)
        assert (line.mdtrt_id, line.feedetl_sn) in centre.ledger.fee_lines
    for sn, was in before.items():
        now = _record(adapter, sn)
        assert (now.status, now.raw, now.updated_at) == (was.status, was.raw, was.updated_at)
    assert centre.ledger.duplicate_lines == 0
    assert set(centre.ledger.fee_lines) == _all_keys(his.url) - {(rejected.mdtrt_id, rejected.feedetl_sn)}


def _config(tmp_path: Path, his: SampleHis, state_url: str, centre_url: str) -> Path:
    path = tmp_path / "adapter.toml"
    path.write_text(config_text(his_url=his.url, state_url=state_url, centre_url=centre_url), encoding="utf-8")
    return path


def test_spool_recheck_reads_fixed_rows_again_by_their_key(make_adapter, centre, his, tmp_path, state_url):
    overflow, orphan, invalid = _victims(his.url, 3)
    _sql(his.url, "UPDATE fee_lines SET qty = '1e400' WHERE line_id = :id", id=overflow.line_id)
    _sql(his.url, "UPDATE fee_lines SET visit_id = 999 WHERE line_id = :id", id=orphan.line_id)
    _sql(his.url, "UPDATE fee_lines SET amount = '9999.99' WHERE line_id = :id", id=invalid.line_id)
    adapter = make_adapter(his_url=his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)
    run_until_done(adapter)
    parked = {sn: _record(adapter, sn) for sn in (overflow.feedetl_sn, orphan.feedetl_sn, invalid.feedetl_sn)}
    assert {r.status for r in parked.values()} == {RecordStatus.PARKED.value}
    sent = next(r for r in fee_lines(adapter) if r.status == RecordStatus.SENT.value)
    config = _config(tmp_path, his, state_url, centre.url)
    runner = CliRunner()

    # Not fixed yet: read again, and parked again by the checks.
    result = runner.invoke(main, ["spool", "recheck", str(parked[invalid.feedetl_sn].id), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "read again from the HIS; checked at the next cycle" in result.output
    run_until_done(adapter)
    assert _record(adapter, invalid.feedetl_sn).park_kind == ParkKind.INVALID.value

    # Fixed in the HIS, behind the watermark (line_id does not move): recheck brings them back,
    # the orphan by its place in the HIS since it has no business key.
    _sql(his.url, "UPDATE fee_lines SET qty = :qty WHERE line_id = :id", qty=overflow.qty, id=overflow.line_id)
    _sql(his.url, "UPDATE fee_lines SET visit_id = :visit WHERE line_id = :id", visit=orphan.visit_id,
         id=orphan.line_id)
    _sql(his.url, "UPDATE fee_lines SET amount = :amount WHERE line_id = :id", amount=invalid.amount,
         id=invalid.line_id)
    result = runner.invoke(main, ["spool", "recheck", "--all", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "3 record(s) read again from the HIS" in result.output
    run_until_done(adapter)

    for line in (overflow, orphan, invalid):
        record = _record(adapter, line.feedetl_sn)
        assert record.status == RecordStatus.SENT.value
        assert record.business_key == f"{line.mdtrt_id}|{line.feedetl_sn}"
        assert (line.mdtrt_id, line.feedetl_sn) in centre.ledger.fee_lines
    assert centre.ledger.duplicate_lines == 0
    assert set(centre.ledger.fee_lines) == _all_keys(his.url)

    # Nothing left to recheck; a record that is not parked, or not there, is said to be so.
    result = runner.invoke(main, ["spool", "recheck", str(sent.id), "424242", "--config", str(config)])
    assert result.exit_code == 3, result.output
    assert f"record {sent.id} 2301 {sent.business_key}: is sent, not parked malformed" in result.output
    assert "record 424242: no such record" in result.output
    assert "0 record(s) read again" in result.output
    result = runner.invoke(main, ["spool", "recheck", "--config", str(config)])
    assert result.exit_code == 2 and "name record IDs or give --all" in result.output


def test_recheck_says_when_a_query_cannot_be_read_by_its_key(his):
    source = SqlSource(his.url, FEE_LINES + "-- a comment at the end\n", "line_id")
    try:
        rows = source.read_by_keys(["mdtrt_id", "feedetl_sn"], [("431199000000001", "0000010001")], "21")
        assert [(row["mdtrt_id"], row["feedetl_sn"]) for row in rows] == [("431199000000001", "0000010001")]
        with pytest.raises(SourceError, match="returns no column medins_list_codg, so its rows cannot be read"):
            source.read_by_keys(["medins_list_codg"], [("YP0001",)], "21")
    finally:
        source.close()


def test_a_payload_holds_no_python_bytes_repr(make_adapter, centre, his, sqlite_state_url):
    # Before: a BLOB was sent as "b'\\xff...'". Now no stored payload holds such a thing.
    adapter = make_adapter(his_url=his.url, state_url=sqlite_state_url, centre_url=centre.url)
    import_sample_mapping(adapter, his)
    _sql(his.url, "UPDATE fee_lines SET order_no = x'ff' WHERE line_id = 1")
    run_until_done(adapter)
    with adapter.store.begin() as conn:
        payloads = [jsonio.loads(p) for p in conn.execute(select(schema.record.c.payload)).scalars() if p]
    assert payloads and not any("b'" in json.dumps(p, default=str) for p in payloads)
