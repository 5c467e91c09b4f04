"""Properties of mapping, checking and message building over generated HIS rows: whatever a HIS
row holds (any Unicode, control characters and lone surrogates, bytes, numbers huge or NaN,
dates of any year, text where numbers belong), no exception escapes the stages, and every
record ends either built into a message that passes the published tables (adapter/spec/check)
or parked with a reason.

The rows start as good 2301 fee lines and 2204 charge batches of the sample HIS and have a few
of their columns replaced by generated values. Dictionary-coded columns (med_type,
dscg_tkdrug_flag) only take their dictionary's values or nothing: the adapter leaves
dictionary values to the centre, so a free-text med_type would be sent (and refused there)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from adapter import jsonio
from adapter.app import Adapter, build_adapter
from adapter.config import parse_settings
from adapter.flow.report import CycleReport
from adapter.mapping.store import MappingRow, MappingStore
from adapter.records import MappingKind
from adapter.rehearsal.sample_his import generate_sample_his, sample_mapping_rows
from adapter.spec.check import check
from adapter.spec.tables import load_edition
from adapter.spool.states import RecordStatus
from adapter.state import schema
from tests.conftest import GATEWAY_CREDENTIALS, config_text, region_profile

# -- generated values -----------------------------------------------------------------------
#: every code point: controls, surrogates, unassigned ones
_ANY_CHAR = st.characters(exclude_categories=())
_TEXT = st.one_of(
    st.text(_ANY_CHAR, max_size=40),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cc",)), max_size=40),  # printable-ish
    st.sampled_from(["", " ", "\x00", "a\x00b", "\x1b[31m", "\ufeff", "NaN", "1e400", "0000", "0", "-1",
                     "2099-12-31 00:00:00", "1900-01-01 00:00:00", "9" * 40]),
)
_DECIMALS = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-10**6, max_value=10**6, places=2),
    st.sampled_from([Decimal("1e400"), Decimal("-1E+999999999"), Decimal("1e-400"), Decimal("-0"),
                     Decimal("sNaN"), Decimal("12345678901234567")]),
)
_NUMBERS = st.one_of(_DECIMALS, _DECIMALS.map(str), st.floats(), st.integers(), st.integers().map(str))
_DATES = st.one_of(
    st.datetimes(),
    st.datetimes().map(lambda when: when.strftime("%Y-%m-%d %H:%M:%S")),
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2026, 11, 30)).map(str),
)
#: what a HIS column may hand over, whatever the column
_ANYTHING = st.one_of(st.none(), _TEXT, st.binary(max_size=12), _NUMBERS, _DATES)

_ITEMS = [(code, national) for kind, code, national, _name in sample_mapping_rows() if kind == "item"]
_DEPTS = [code for kind, code, _national, _name in sample_mapping_rows() if kind == "dept"]
_DOCTORS = [code for kind, code, _national, _name in sample_mapping_rows() if kind == "doctor"]
_VISITS = ["431199000000001", "431199000000002", "431199000000003"]
#: dictionary-coded columns and the values they take
_DICTIONARY = {"med_type": st.sampled_from(["21", "11", "14", None]),
               "dscg_tkdrug_flag": st.sampled_from(["0", "1", None])}


@st.composite
def _good_line(draw: st.DrawFn) -> dict[str, Any]:
    """A 2301 row of the sample fee query that passes every check."""
    code = draw(st.sampled_from(_ITEMS))[0]
    qty, price = draw(st.integers(1, 9)), draw(st.sampled_from([Decimal("0.86"), Decimal("12.50"), Decimal("45")]))
    when = draw(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 11, 30)))
    return {
        "mdtrt_id": draw(st.sampled_from(_VISITS)), "psn_no": "43123456789012345678", "insuplc_admdvs": "431199",
        "med_type": "21", "feedetl_sn": str(draw(st.integers(1, 10**6))), "init_feedetl_sn": None,
        "drord_no": "YZ1", "fee_ocur_time": when.strftime("%Y-%m-%d %H:%M:%S"), "his_item_code": code,
        "his_item_name": "药品", "cnt": str(qty), "pric": str(price), "det_item_fee_sumamt": str(qty * price),
        "his_dept_code": draw(st.sampled_from(_DEPTS)), "his_dept_name": "内科",
        "his_doctor_code": draw(st.sampled_from(_DOCTORS)), "his_doctor_name": "王伟", "his_item_category": "drug",
        "his_std_price": str(price), "rxno": None, "prd_days": None, "dscg_tkdrug_flag": None,
        "main_diag_code": "J18.900", "injury_cause": None, "adm_time": "2026-01-01 08:00:00", "dscg_time": None,
    }


def _spoiled(good: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A good row with up to four of its columns replaced by generated values."""
    @st.composite
    def spoil(draw: st.DrawFn) -> dict[str, Any]:
        row = draw(good)
        for column in draw(st.lists(st.sampled_from(sorted(row)), max_size=4, unique=True)):
            row[column] = draw(_DICTIONARY.get(column, _ANYTHING))
        return row
    return spoil()


@st.composite
def _good_batch(draw: st.DrawFn) -> dict[str, Any]:
    """A 2204 row of the sample outpatient query: a charge batch, its lines as JSON text."""
    visit = draw(st.sampled_from(_VISITS))
    batch = f"MZ{draw(st.integers(1, 10**6))}"
    entries = []
    for sn in range(1, draw(st.integers(1, 3)) + 1):
        line = draw(_good_line())
        entry = {"feedetl_sn": str(sn), "mdtrt_id": visit, "psn_no": line["psn_no"], "chrg_bchno": batch,
                 "dise_codg": "", "rxno": "", "rx_circ_flag": "0", "fee_ocur_time": line["fee_ocur_time"],
                 "medins_list_codg": line["his_item_code"], "det_item_fee_sumamt": line["det_item_fee_sumamt"],
                 "cnt": line["cnt"], "pric": line["pric"], "bilg_dept_codg": line["his_dept_code"],
                 "bilg_dept_name": "内科", "bilg_dr_codg": line["his_doctor_code"], "bilg_dr_name": "王伟",
                 "prd_days": None, "_category": "drug", "_std_price": line["pric"], "_item_name": "药品",
                 "_main_diag": "J06.900"}
        for column in draw(st.lists(st.sampled_from(sorted(entry)), max_size=2, unique=True)):
            entry[column] = draw(st.one_of(st.none(), _TEXT, _NUMBERS.map(str), _DATES.map(str)))
        entries.append(entry)
    feedetail: Any = json.dumps(entries, ensure_ascii=False)
    if draw(st.integers(0, 9)) == 0:  # now and then the JSON column itself is broken
        feedetail = draw(st.one_of(_TEXT, st.binary(max_size=12), st.just('{"not": "a list"}'),
                                   st.just(feedetail[:-3]), st.just("[1, 2]")))
    return {"mdtrt_id": visit, "chrg_bchno": batch, "insuplc_admdvs": "431199", "feedetail": feedetail}


class _GivenRows:
    """A HIS query returning the rows a test gives it, after the watermark (what Extract reads)."""

    def __init__(self, watermark_column: str) -> None:
        self.watermark_column = watermark_column
        self.rows: list[dict[str, Any]] = []

    def read_after(self, watermark: str, limit: int) -> list[dict[str, Any]]:
        return [row for row in self.rows if row[self.watermark_column] > int(watermark)][:limit]

    def close(self) -> None:
        pass


# -- the stages ------------------------------------------------------------------------------
class _Stages:
    """The wired adapter, with a repr short enough for hypothesis to print a failing example."""

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter

    def __repr__(self) -> str:
        return "<the 2301 and 2204 stages>"


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Stages]:
    """The real extract, check and build stages of the national profile (2301, 2204) on a
    SQLite state store; the HIS queries are replaced by the generated rows. Nothing is sent."""
    for name, value in GATEWAY_CREDENTIALS["tif"].items():  # module scope: before the autouse fixture
        os.environ.setdefault(f"TEST_GW_{name.upper()}", value)
    folder = tmp_path_factory.mktemp("properties")
    his = generate_sample_his(f"sqlite:///{folder / 'his.db'}", visits=1, lines_per_visit=1)
    built = build_adapter(parse_settings(config_text(
        his_url=his.url, state_url=f"sqlite:///{folder / 'state.db'}", centre_url="http://127.0.0.1:9",
        his_extra='transactions = ["2204", "2301"]')))
    MappingStore(built.store).upsert(MappingRow(MappingKind(kind), code, national, name)
                                     for kind, code, national, name in sample_mapping_rows())
    built.cycle.extract.sources = {"2301": _GivenRows("line_id"), "2204": _GivenRows("first_line")}  # type: ignore[dict-item]
    yield _Stages(built)
    built.close()


def _run(stages: _Stages, lines: list[dict[str, Any]], batches: list[dict[str, Any]]) -> None:
    adapter = stages.adapter
    with adapter.store.begin() as conn:
        for table in (schema.record, schema.message, schema.watermark, schema.finding, schema.policy_stay):
            conn.execute(delete(table))
    sources = adapter.cycle.extract.sources
    sources["2301"].rows = [{"line_id": i, **row} for i, row in enumerate(lines, start=1)]  # type: ignore[attr-defined]
    sources["2204"].rows = [{"first_line": i, **row} for i, row in enumerate(batches, start=1)]  # type: ignore[attr-defined]
    report = CycleReport()
    adapter.cycle.extract.run(report)
    adapter.cycle.check.run(report)
    adapter.cycle.build.run(report)


def _assert_every_record_built_or_parked(stages: _Stages) -> None:
    region = region_profile("nhsa")
    edition = load_edition(region.interface_edition)
    record, message = schema.record, schema.message
    with stages.adapter.store.begin() as conn:
        records = conn.execute(select(record.c.id, record.c.infno, record.c.status, record.c.park_kind,
                                      record.c.park_reason, record.c.message_id)).all()
        messages = conn.execute(select(message.c.id, message.c.infno, message.c.payload)).all()
    for row in records:
        assert row.status in (RecordStatus.QUEUED.value, RecordStatus.PARKED.value), row
        if row.status == RecordStatus.PARKED.value:
            assert row.park_kind and (row.park_reason or "").strip(), row
        else:
            assert row.message_id is not None, row
    for row in messages:
        problems = check(edition, row.infno, jsonio.loads(row.payload), differences=region.table_changes)
        assert not problems, (row.infno, [str(p) for p in problems], row.payload)


_SETTINGS = settings(max_examples=100, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(lines=st.lists(_spoiled(_good_line()), min_size=1, max_size=6))
def test_fee_lines_are_built_or_parked_whatever_they_hold(stages, lines):
    _run(stages, lines, [])
    _assert_every_record_built_or_parked(stages)


@_SETTINGS
@given(batches=st.lists(_spoiled(_good_batch()), min_size=1, max_size=4))
def test_charge_batches_are_built_or_parked_whatever_they_hold(stages, batches):
    _run(stages, [], batches)
    _assert_every_record_built_or_parked(stages)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_good_line(), min_size=1, max_size=4,
                     unique_by=lambda line: (line["mdtrt_id"], line["his_item_code"])))
def test_good_rows_are_built(stages, lines):
    # The generator's good rows are good (one charge of an item per stay: the policy rules park
    # a second one as a duplicate charge), so the properties above exercise the built path too.
    _run(stages, lines, [])
    with stages.adapter.store.begin() as conn:
        statuses = conn.execute(select(schema.record.c.status, schema.record.c.park_reason)).all()
    assert statuses and all(row.status == RecordStatus.QUEUED.value for row in statuses), statuses
    _assert_every_record_built_or_parked(stages)
