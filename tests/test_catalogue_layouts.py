"""The national catalogue specs come from the edition's layouts: every 13xx download has one,
its columns are the edition's, and a kind that was not hand-written before (1306 医用耗材)
downloads, validates and switches end to end against the simulated centre."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest
from adapter_nhsa import catalogues as nhsa
from adapter_nhsa.catalogues import CATALOGUES, EDITION, GENERIC_CODE, LAYOUTS

from adapter.catalog.check import stale_mappings
from adapter.catalog.store import CatalogRefused
from adapter.plugin.catalogues import CatalogSpec
from adapter.rehearsal.sample_catalogues import CatalogRow, consumable_codes, drug_codes
from adapter.spec.tables import load_edition
from tests.conftest import import_sample_mapping, set_faults

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path("/work/shared/reference/interface-spec")
LAYOUT_FILE = ROOT / "plugins" / "adapter-nhsa" / "adapter_nhsa" / "catalogue_layouts.json"
VERSION, NEXT = "202611010001", "202612010001"


def _script() -> ModuleType:
    path = ROOT / "scripts" / "gen_catalogue_layouts.py"
    spec = importlib.util.spec_from_file_location("gen_catalogue_layouts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _labels(kind: str) -> dict[int, str]:
    return {int(n): str(label) for n, label in LAYOUTS["kinds"][kind]["columns"]}


def _fields(kind: str) -> tuple[str, ...]:
    return tuple(str(code) for code, _label in LAYOUTS["kinds"][kind]["fields"])


# -- the layouts are the edition's ---------------------------------------------------------------
@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the published reference is not on this machine")
def test_the_committed_layouts_are_what_the_script_makes_of_the_reference():
    assert _script().render(REFERENCE, EDITION) == LAYOUT_FILE.read_text(encoding="utf-8")


def test_every_13xx_download_of_the_edition_has_a_spec_with_its_layout():
    """Against the edition as the project carries it (adapter/spec/data): the same 13xx
    transactions, the same columns parsed from their filename notes, the same output fields."""
    script = _script()
    edition = json.loads((ROOT / "adapter" / "spec" / "data" / EDITION / "transactions.json")
                         .read_text(encoding="utf-8"))["transactions"]
    downloads = {infno: entry for infno, entry in edition.items()
                 if infno.startswith("13") and not entry.get("deprecated")}
    assert LAYOUTS["about"]["edition"] == EDITION == nhsa_profile_edition()
    assert set(downloads) == set(LAYOUTS["kinds"]) == set(CATALOGUES)
    assert {"1306", "1306A", "1309", "1310", "1311", "1313", "1314", "1315", "1320", "1327"} <= set(CATALOGUES)
    for infno, entry in downloads.items():
        parsed = script.layout(infno, entry)
        kept = LAYOUTS["kinds"][infno]
        assert parsed.get("columns") == kept.get("columns") and parsed.get("fields") == kept.get("fields"), infno
    assert load_edition(EDITION).transactions["1306"].name == LAYOUTS["kinds"]["1306"]["name"]


def nhsa_profile_edition() -> str:
    from adapter_nhsa.hooks import NHSA

    return NHSA.interface_edition


@pytest.mark.parametrize("kind", sorted(k for k, v in LAYOUTS["kinds"].items() if "columns" in v))
def test_file_spec_columns_are_the_editions(kind: str):
    spec, labels = CATALOGUES[kind], _labels(kind)
    assert not spec.paged and spec.columns == len(labels) == max(labels)
    assert labels[spec.version_column] == "版本号"
    assert spec.valid_column is not None and labels[spec.valid_column] == "有效标志"
    assert (labels[spec.begin_column] if spec.begin_column else None) == (
        "开始日期" if "开始日期" in labels.values() else None)
    assert (labels[spec.end_column] if spec.end_column else None) == (
        "结束日期" if "结束日期" in labels.values() else None)
    code_label = labels[spec.code_column]
    if code_label in ("唯一记录号", "数据唯一记录号"):  # kept by record; the kind's code must be there
        assert spec.role == "reference" and len(spec.required) == 1
        assert labels[spec.required[0]].endswith(("码", "ID", "号")), labels[spec.required[0]]
    else:
        assert code_label.endswith(("编码", "代码", "码")), code_label
    assert spec.name_column in labels and spec.name_column != spec.code_column


@pytest.mark.parametrize("kind", sorted(k for k, v in LAYOUTS["kinds"].items() if "fields" in v))
def test_paged_spec_fields_are_the_editions(kind: str):
    spec, fields = CATALOGUES[kind], _fields(kind)
    assert spec.paged_fields == fields and spec.columns == len(fields)

    def at(column: int | None) -> str | None:
        return fields[column - 1] if column else None

    assert (at(spec.version_column), at(spec.valid_column), at(spec.begin_column), at(spec.end_column)) == (
        "updt_time", "vali_flag", "begndate", "enddate")
    assert [at(c) for c in spec.date_columns] == ["updt_time"]
    if kind == "1318":
        assert (at(spec.code_column), at(spec.price_column), spec.role) == (
            "hilist_code", "hilist_pric_uplmt_amt", "price_caps")
        assert {at(c) for c in spec.required} == {"hilist_pric_uplmt_amt", "rid"}
    else:
        assert at(spec.code_column) == "rid" and spec.role == "reference"
        assert {at(c) for c in spec.required} <= {"hilist_code", "med_list_codg"}


# -- what the hand-written specs did, they still do ----------------------------------------------
def _hand_written() -> dict[str, CatalogSpec]:
    """The specs as they were written by hand before the layouts were data (column numbers
    from the reference); 1305 had 16 columns where the edition lists 19."""
    return {
        "1301": CatalogSpec(
            kind="1301", name="西药中成药", columns=97, code_column=1, name_column=4, version_column=83,
            code_pattern=r"X[A-Z][0-9]{2}[A-Z0-9]{2}[A-Z0-9][A-Z0-9]{3}[A-Z][0-9]{3}[0-9]{9}|Z[A-Z0-9]{19,22}",
            valid_column=79, begin_column=37, end_column=38, restricted_column=57, number_columns=(33, 42)),
        "1305": CatalogSpec(
            kind="1305", name="医疗服务项目", columns=19, code_column=1, name_column=10, version_column=15,
            code_pattern=r"[0-9]{15}(-[0-9A-Za-z.]{1,30})?", valid_column=7, begin_column=12, end_column=13),
        "1307": CatalogSpec(
            kind="1307", name="疾病与诊断", columns=24, code_column=11, name_column=12, version_column=23,
            code_pattern=r"[A-Z][0-9]{2}(\.[0-9x]{1,3}(x[0-9]{3})?)?", valid_column=19),
        "1308": CatalogSpec(
            kind="1308", name="手术操作", columns=24, code_column=11, name_column=12, version_column=23,
            code_pattern=r"[0-9]{2}(\.[0-9x]{1,4}(x[0-9]{3})?)?", valid_column=19),
    }


@pytest.mark.parametrize("kind", ["1301", "1305", "1307", "1308"])
def test_the_formerly_hand_written_file_specs_are_unchanged(kind: str):
    assert CATALOGUES[kind] == _hand_written()[kind]
    assert nhsa.WESTERN_AND_PATENT_DRUGS is CATALOGUES["1301"] and nhsa.SERVICE_ITEMS is CATALOGUES["1305"]


def test_roles_codes_only_where_a_code_format_tells_the_kind_apart():
    roles = {kind: spec.role for kind, spec in CATALOGUES.items()}
    assert {k for k, r in roles.items() if r == "codes"} == {"1301", "1305", "1306", "1306A", "1307", "1308"}
    assert {k for k, r in roles.items() if r == "price_caps"} == {"1318"}
    codes = {kind: spec for kind, spec in CATALOGUES.items() if spec.role == "codes"}
    assert all(spec.code_pattern != GENERIC_CODE for spec in codes.values())
    samples = {"1301": next(drug_codes(1)), "1305": "001105000010000", "1306": next(consumable_codes(1)),
               "1306A": "C" + "0" * 26, "1307": "A01.000x001", "1308": "00.0100x001"}
    for kind, code in samples.items():  # each code belongs to its own kind only (1306 takes both lengths)
        assert {k for k, spec in codes.items() if spec.code_ok(code)} == ({kind, "1306"} if kind == "1306A" else {kind})


def test_generic_code_pattern_takes_codes_and_refuses_shifted_columns():
    spec = CATALOGUES["1314"]
    assert all(spec.code_ok(code) for code in ("A01.01.01.01", "BNW010", "M80000/0", "T000100011"))
    assert not any(spec.code_ok(code) for code in ("NOT-A-CODE", "感冒", "", " A01", "A" * 70 + "1"))


# -- a new kind end to end ---------------------------------------------------------------------
@pytest.fixture
def adapter(make_adapter, centre, sample_his, tmp_path):
    made = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                        centre_url=centre.url)
    import_sample_mapping(made, sample_his)
    return made


def _consumables(sample_his) -> list[CatalogRow]:
    """What the centre publishes for 1306: the sample HIS's consumables and 50 others."""
    mapped = [CatalogRow(national, name, VERSION) for kind, _his, national, name in sample_his.mapping_rows
              if kind == "item" and national.startswith("C")]
    assert mapped
    return mapped + [CatalogRow(code, f"示例耗材{n}", VERSION) for n, code in enumerate(consumable_codes(50, 1000))]


def test_consumables_download_validate_switch_and_check_lines(adapter, centre, sample_his):
    from tests.helpers import lines_by_status, run_until_done

    published = centre.ledger.catalogues["1306"] = _consumables(sample_his)

    first = adapter.catalog_sync.sync("1306")

    assert first.outcome == "switched" and first.version.ver == VERSION
    assert first.version.rows_total == first.rows_in_file == len(published)
    assert adapter.catalogs.entry("1306", published[0].code)["name"] == published[0].name
    assert centre.ledger.accepted["1306"] == centre.ledger.accepted["9102"] == 1
    assert adapter.catalog_sync.sync("1306").outcome == "up to date"

    # A file with a code that is not a consumable code is refused whole; the active one stays.
    published.append(CatalogRow(next(consumable_codes(1, 5000)), "新耗材", NEXT))
    set_faults(centre, catalogue_fault="bad_code")
    with pytest.raises(CatalogRefused, match="column 1: code 'NOT-A-CODE' is not a 1306 national code"):
        adapter.catalog_sync.sync("1306")
    assert adapter.catalogs.active("1306").id == first.version.id
    set_faults(centre)

    # The centre retires a mapped consumable: the next download switches, lines using it park.
    retired = published[0]
    published[0] = replace(retired, valid="0", version=NEXT)
    second = adapter.catalog_sync.sync("1306").version
    assert second.rows_in_file == 2 and second.rows_total == len(published) and second.ver == NEXT
    assert [d["code"] for d in adapter.catalogs.diff("1306").retired] == [retired.code]
    assert [(s.national_code, s.reason) for s in stale_mappings(adapter.store, adapter.region.catalogues)] == [
        (retired.code, f"retired in catalogue 1306 (version {NEXT})")]

    run_until_done(adapter)

    parked = [r for r in lines_by_status(adapter).get("parked", []) if "[catalogue-valid]" in (r.park_reason or "")]
    assert parked and all(f"national code {retired.code} is retired in catalogue 1306" in r.park_reason
                          for r in parked)
    assert retired.code not in {line.med_list_codg for line in centre.ledger.fee_lines.values()}
    assert {row.code for row in published[1:3]} & {line.med_list_codg for line in centre.ledger.fee_lines.values()}
