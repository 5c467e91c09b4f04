"""The published tables carried in the project, and the checker over them (the oracle of the
simulated centre and of the conformance tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from adapter.plugin.api import EditionDifference
from adapter.spec.check import check
from adapter.spec.tables import DEFAULT_EDITION, load_edition

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "interface-spec"
EDITION = load_edition()


def _line(**changes: object) -> dict[str, object]:
    line: dict[str, object] = {
        "feedetl_sn": "1", "mdtrt_id": "M1", "psn_no": "P1", "med_type": "2101",
        "fee_ocur_time": "2026-11-01 10:00:00", "med_list_codg": "X", "medins_list_codg": "Y",
        "det_item_fee_sumamt": "1.00", "cnt": "1", "pric": "1", "bilg_dept_codg": "A", "bilg_dept_name": "a",
        "bilg_dr_codg": "D", "bilg_dr_name": "d", "hosp_appr_flag": "1",
    }
    line.update(changes)
    return {k: v for k, v in line.items() if v is not None}


def _problems(body: object, infno: str = "2301", **kwargs: object) -> list[str]:
    return [str(p) for p in check(EDITION, infno, body, **kwargs)]  # type: ignore[arg-type]


def test_the_edition_is_named_and_complete():
    assert EDITION.about["version"] == "V1.1.27" and EDITION.name == DEFAULT_EDITION
    assert len(EDITION.transactions) == 212 and len(EDITION.dictionaries) == 304
    assert EDITION.label("insutype", "310") == "职工基本医疗保险" and EDITION.label("clr_type", "21") == "住院"
    assert "4101A" not in EDITION.transactions  # stopped on 2022-06-01


def test_a_conforming_message_has_no_problems():
    assert _problems({"feedetail": [_line()]}) == []


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"feedetail": [_line(psn_no="")]}, "feedetail[1].psn_no: 人员编号 is required"),
        ({"feedetail": [_line(cnt=None)]}, "an empty number is sent as 0"),
        ({"feedetail": [_line(extra="x")]}, "feedetail[1].extra: unknown field"),
        ({"feedetail": [_line()], "Feedetail": []}, "did you mean feedetail?"),
        ({"feedetail": _line()}, "feedetail: must be a list of objects"),
        ({"feedetail": [_line(bilg_dr_name="x" * 51)]}, "51 characters, at most 50"),
        ({"feedetail": [_line(pric="1.1234567")]}, "more than 6 decimal places"),
        ({"feedetail": [_line(det_item_fee_sumamt="12345678901234567")]}, "more than 14 integer digits"),
        ({"feedetail": [_line(fee_ocur_time="2026-11-01")]}, "is not a 日期时间型 (yyyy-MM-dd HH:mm:ss)"),
        ({"feedetail": [_line(med_type="21")]}, "'21' is not a value of 医疗类别"),
        ({"feedetail": [_line(feedetl_sn="A1")]}, "'A1' is not digits"),
        ({}, "feedetail: node is missing"),
    ],
)
def test_each_rule_names_the_field(body, words):
    assert any(words in problem for problem in _problems(body)), _problems(body)


def test_output_shapes():
    # 5204 answers a list with no node; 4103 answers one setlinfo object among other nodes.
    assert _problems({"feedetail": []}, "5204", direction="output") == [
        "must be a list of objects (this answer has no node)"]
    assert _problems([], "5204", direction="output") == []


def test_a_region_declares_its_differences():
    national = [EditionDifference("med_type", {"21": "住院"}, source="national baseline dictionary")]
    assert _problems({"feedetail": [_line(med_type="21")]}, differences=national) == []
    optional = [EditionDifference("bilg_dr_name", required=False, infno="2301", source="example")]
    assert _problems({"feedetail": [_line(bilg_dr_name=None)]}, differences=optional) == []
    assert _problems({"feedetail": [_line(bilg_dr_name=None)]}) != []


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="the reference folder is not beside this checkout")
def test_the_data_is_what_the_generator_makes_of_the_reference(tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "gen_interface_tables.py"
    subprocess.run([sys.executable, str(script), str(REFERENCE), DEFAULT_EDITION, "--out", str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("transactions.json", "dictionaries.json", "envelope.json"):
        made = json.loads((tmp_path / DEFAULT_EDITION / name).read_text(encoding="utf-8"))
        kept = json.loads((Path(__file__).resolve().parents[1] / "adapter" / "spec" / "data" / DEFAULT_EDITION
                           / name).read_text(encoding="utf-8"))
        assert made == kept, name
