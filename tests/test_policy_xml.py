"""Regional XML policy files: read without DTDs, entities or network, validated against the
region's XSD; a valid file's local price limits park lines priced above them."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter.catalog.policy_xml import read_policy
from adapter.catalog.store import CatalogRefused
from adapter.errors import FileFormatError
from tests.conftest import import_sample_mapping, region_profile

SPEC = region_profile("zhejiang").policies["policy:price-limits"]
GOOD = """<?xml version="1.0" encoding="UTF-8"?>
<priceLimits region="330000" version="2026.11" effective="2026-11-01">
  <item code="001105000010000" name="床位费(三人间)" maxPrice="40.00"/>
  <item code="250101015000000" name="血常规" maxPrice="25.00"/>
</priceLimits>
"""
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<priceLimits region="330000" version="1" effective="2026-11-01">
<item code="&lol3;" name="x" maxPrice="1"/></priceLimits>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE priceLimits [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<priceLimits region="330000" version="1" effective="2026-11-01">
<item code="001105000010000" name="&secret;" maxPrice="1"/></priceLimits>
"""
EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE priceLimits SYSTEM "http://127.0.0.1:9/evil.dtd">
<priceLimits region="330000" version="1" effective="2026-11-01"/>
"""


def _file(tmp_path: Path, text: str, name: str = "limits.xml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_gives_its_items(tmp_path):
    version, entries = read_policy(_file(tmp_path, GOOD), SPEC)
    assert version == "2026.11"
    assert [(e["code"], e["price_cap"], e["line_no"]) for e in entries] == [
        ("001105000010000", "40.00", 3), ("250101015000000", "25.00", 4)]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BILLION_LAUGHS, "line 2: a DTD or entity declaration; refused"),
        (XXE, "line 2: a DTD or entity declaration; refused"),
        (EXTERNAL_DTD, "line 2: a DTD or entity declaration; refused"),
        ("<priceLimits region='330000'", "line 1 column 29: not well-formed XML"),
        (GOOD.replace('maxPrice="25.00"', 'maxPrice="-1"'), "does not match price_limits.xsd: line 4 column 0"),
        (GOOD.replace('code="250101015000000"', 'code="25010"'), "line 4"),
        (GOOD.replace(' effective="2026-11-01"', ""), "effective"),
    ],
)
def test_hostile_or_invalid_files_are_refused(tmp_path, text, words):
    with pytest.raises(FileFormatError, match=words.replace("(", r"\(")):
        read_policy(_file(tmp_path, text), SPEC)


def test_local_price_limit_parks_lines_priced_above_it(make_adapter, make_centre, sample_his, tmp_path):
    from adapter.spool.states import RecordStatus
    from tests.helpers import lines_by_status, run_until_done

    centre = make_centre("zhejiang")
    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, region="zhejiang")
    import_sample_mapping(adapter, sample_his)
    version, entries = read_policy(_file(tmp_path, GOOD), SPEC)  # 床位费 is 45.00 in the HIS, limit 40.00
    adapter.catalogs.ingest_entries(SPEC.kind, version, entries, source="test", filename="limits.xml")
    with pytest.raises(CatalogRefused, match="below the active version"):
        adapter.catalogs.ingest_entries(SPEC.kind, "2025.01", entries, source="test", filename="old.xml")

    run_until_done(adapter)

    parked = [r for r in lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
              if "[over-standard-price]" in (r.park_reason or "")]
    assert parked
    assert all("above the policy:price-limits limit of 001105000010000 40.00" in r.park_reason for r in parked)
    assert "001105000010000" not in {line.med_list_codg for line in centre.ledger.fee_lines.values()}


def test_import_through_the_cli(tmp_path, make_centre, sample_his):
    from click.testing import CliRunner

    from adapter.cli import main
    from tests.conftest import config_text

    centre = make_centre("zhejiang")
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url=centre.url, region="zhejiang"), encoding="utf-8")
    runner = CliRunner()
    args = ["catalog", "import", "--kind", "policy:price-limits", "--config", str(config)]

    good = runner.invoke(main, [*args[:2], str(_file(tmp_path, GOOD)), *args[2:]])
    bomb = runner.invoke(main, [*args[:2], str(_file(tmp_path, BILLION_LAUGHS, "bomb.xml")), *args[2:]])
    listed = runner.invoke(main, ["catalog", "list", "--config", str(config)])

    assert good.exit_code == 0, good.output
    assert "policy:price-limits: switched to version 2026.11 from limits.xml (2 rows" in good.output
    assert bomb.exit_code == 1 and "bomb.xml line 2: a DTD or entity declaration; refused" in bomb.output
    assert "policy:price-limits" in listed.output and "2026.11" in listed.output
