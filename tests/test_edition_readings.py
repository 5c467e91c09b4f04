"""Where the edition contradicts itself, each region takes one reading, as data with its source
(``RegionProfile.edition_readings``), and the adapter and the simulated centre read it alike."""

from __future__ import annotations

import pytest

from adapter.plugin.api import EditionDifference
from adapter.rehearsal.centre.checks import Refusal
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.rehearsal.centre.protocol import check_envelope
from adapter.spec.check import DictionaryCheck, check, dictionary_values, envelope_fields
from adapter.spec.tables import load_edition
from tests.conftest import region_profile

EDITION = load_edition()
REGIONS = ("nhsa", "hunan", "guangdong", "jiangxi", "zhejiang")


def _statement(clr_type: str) -> dict[str, object]:
    return {"data": {"insutype": "310", "clr_type": clr_type, "setl_optins": "430100",
                     "stmt_begndate": "2026-11-01", "stmt_enddate": "2026-11-30", "medfee_sumamt": "10.00",
                     "fund_pay_sumamt": "8.00", "acct_pay": "0", "fixmedins_setl_cnt": "1",
                     "fixmedins_refd_setl_flag": "0"}}


def _doubled_tables_read_by_fields() -> set[str]:
    """Codes with a second table (``code#2``) that some dictionary-flagged field reads."""
    doubled = {key.split("#")[0] for key in EDITION.dictionaries if "#" in key}
    return {f.code for t in EDITION.transactions.values() for n in (*t.input, *t.output)
            for f in n.fields if f.dict and f.code in doubled}


def test_the_second_table_under_a_code_is_never_read_by_default():
    field = next(f for n in EDITION.transactions["3201"].input for f in n.fields if f.code == "clr_type")
    values = dictionary_values(EDITION, field)
    assert "21" in values and "310411" not in values  # 6.23 only, not 6.220 (异地购药) as well


@pytest.mark.parametrize("name", REGIONS)
def test_every_region_names_the_table_a_doubled_code_reads(name):
    region = region_profile(name)
    named = {d.field for d in region.edition_readings if d.table}
    assert _doubled_tables_read_by_fields() == {"clr_type"}
    assert _doubled_tables_read_by_fields() <= named, name
    assert all(d.source for d in region.edition_readings), "every reading names its source"


def test_hunan_refuses_a_cross_region_pharmacy_clearing_type_in_3201():
    region = region_profile("hunan")
    assert region.edition_differences == ()  # the edition exactly; readings only where it contradicts itself
    adapter_check = DictionaryCheck(EDITION, region.table_changes)
    assert adapter_check.problems("3201", _statement("21")) == []
    [problem] = adapter_check.problems("3201", _statement("310411"))
    assert "clr_type '310411'" in problem
    # the simulated centre reads the tables the same way, from the tables
    centre = [str(p) for p in check(EDITION, "3201", _statement("310411"), differences=region.table_changes)]
    assert [p for p in centre if "clr_type" in p] and check(EDITION, "3201", _statement("21"),
                                                           differences=region.table_changes) == []


def test_a_region_may_read_the_other_table():
    pharmacy = [EditionDifference("clr_type", table="clr_type#2", infno="3201", source="example")]
    assert DictionaryCheck(EDITION, pharmacy).problems("3201", _statement("310411")) == []
    assert DictionaryCheck(EDITION, pharmacy).problems("3201", _statement("21")) != []
    with pytest.raises(KeyError, match="no dictionary"):
        DictionaryCheck(EDITION, [EditionDifference("clr_type", table="clr_type#9", source="x")]).problems(
            "3201", _statement("21"))


def _envelope(infno: str, opter_type: str = "1") -> dict[str, object]:
    return {"infno": infno, "msgid": "H43010100001" + "20261201101500" + "0001", "mdtrtarea_admvs": "430100",
            "insuplc_admdvs": "", "recer_sys_code": "99", "dev_no": "", "dev_safe_info": "", "cainfo": "",
            "signtype": "", "infver": "1.0.0", "opter_type": opter_type, "opter": "0001", "opter_name": "测试",
            "inf_time": "2026-12-01 10:15:00", "fixmedins_code": "H43010100001", "fixmedins_name": "测试医院",
            "sign_no": "", "input": {}}


def test_the_envelope_is_read_with_the_regions_readings():
    changes = region_profile("hunan").table_changes
    _, fields = envelope_fields(EDITION, changes)
    assert next(f for f in fields if f.code == "infno").length == "6"
    # 9001 needs no session, so the envelope check alone decides
    assert check_envelope(_envelope("9001", opter_type="3"), CentreLedger(), FaultPlan(), EDITION, changes) == "9001"
    with pytest.raises(Refusal, match="infno"):
        check_envelope(_envelope("1234567"), CentreLedger(), FaultPlan(), EDITION, changes)
    with pytest.raises(Refusal, match="infno"):  # the table as printed: 字符型 4
        check_envelope(_envelope("1306A"), CentreLedger(), FaultPlan(), EDITION)
    with pytest.raises(Refusal, match="签到"):  # past the header: 1306A is a transaction code here
        check_envelope(_envelope("1306A"), CentreLedger(), FaultPlan(), EDITION, changes)


def test_outpatient_registration_settlement_takes_med_type_12_where_the_edition_says_so():
    changes = region_profile("hunan").table_changes
    reading = DictionaryCheck(EDITION, changes)
    assert not [p for p in reading.problems("2207", {"data": {"med_type": "12"}}) if "med_type" in p]
    as_printed = DictionaryCheck(EDITION)
    assert [p for p in as_printed.problems("2207", {"data": {"med_type": "12"}}) if "med_type" in p]
