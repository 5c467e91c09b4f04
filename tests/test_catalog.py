"""Catalogue downloads end to end against the simulated centre: incremental sync, every
refusal of a broken or hostile file (the active version untouched), rollback, diff, import."""

from __future__ import annotations

from dataclasses import replace

import pytest
from adapter_nhsa.catalogues import WESTERN_AND_PATENT_DRUGS as DRUGS
from click.testing import CliRunner
from sqlalchemy import select

from adapter.catalog.reader import CatalogFile, ZipLimits
from adapter.catalog.store import CatalogRefused
from adapter.cli import main
from adapter.errors import FileFormatError
from adapter.rehearsal.sample_catalogues import CatalogRow, drug_codes, write_catalog
from adapter.rehearsal.sample_his import SAMPLE_CATALOGUE_VERSION
from tests.conftest import config_text, import_sample_mapping, set_faults

NEXT = "202612010001"


@pytest.fixture
def adapter(make_adapter, centre, sample_his, tmp_path):
    made = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                        centre_url=centre.url)
    import_sample_mapping(made, sample_his)
    return made


def test_sync_downloads_validates_and_switches_then_is_up_to_date(adapter, centre):
    result = adapter.catalog_sync.sync("1301")

    published = centre.ledger.catalogues["1301"]
    assert result.outcome == "switched"
    assert result.version.ver == SAMPLE_CATALOGUE_VERSION
    assert result.version.rows_total == result.rows_in_file == len(published)
    assert adapter.catalogs.entry("1301", published[0].code)["name"] == published[0].name
    # The 1301 call asked for everything newer than the regional first version, then 9102.
    assert centre.ledger.accepted["1301"] == centre.ledger.accepted["9102"] == 1

    again = adapter.catalog_sync.sync("1301")
    assert again.outcome == "up to date" and again.version.id == result.version.id
    assert centre.ledger.accepted["9102"] == 1


def test_incremental_download_merges_into_a_new_version_and_diff_names_affected_items(
    make_adapter, centre, sample_his, state_url
):
    # On SQLite and on PostgreSQL: the merge, the switch and rollback are SQL of the store.
    adapter = make_adapter(his_url=sample_his.url, state_url=state_url, centre_url=centre.url)
    import_sample_mapping(adapter, sample_his)
    first = adapter.catalog_sync.sync("1301").version
    published = centre.ledger.catalogues["1301"]
    mapped = published[0]  # a sample HIS drug: the mapping points at it
    new_code = next(drug_codes(1, 900_000))
    published += [replace(mapped, valid="0", version=NEXT), CatalogRow(new_code, "新增药品", NEXT)]

    second = adapter.catalog_sync.sync("1301").version

    assert second.rows_in_file == 2 and second.rows_total == first.rows_total + 1
    assert second.ver == NEXT
    diff = adapter.catalogs.diff("1301")
    assert [d["code"] for d in diff.added] == [new_code]
    assert [d["code"] for d in diff.retired] == [mapped.code]
    assert diff.affected[mapped.code] == ["YP0001"]
    # rollback returns to the first version; there is nothing before that
    back = adapter.catalogs.rollback("1301")
    assert back.id == first.id and adapter.catalogs.entry("1301", new_code) is None
    with pytest.raises(Exception, match="no earlier version"):
        adapter.catalogs.rollback("1301")


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("not_zip", "not a readable zip archive"),
        ("truncated", "zip"),
        ("two_members", "expected one text file in the archive, found 2"),
        ("zip_slip", "has a path; refused (zip slip)"),
        ("not_txt", ".xlsx' is not a .txt file"),
        ("bomb", "a zip bomb?"),
        ("mixed_encoding", "mixed encodings"),
        ("few_columns", "columns, 1301 needs at least 97"),
        ("bad_code", "column 1: code 'NOT-A-CODE' is not a 1301 national code"),
        ("bad_date", "column 37: '2021/13/45' is not a date"),
        ("empty_required", "column 4: required column is empty"),
        ("duplicate", "already on line 1"),
        ("count_mismatch", "but the centre declared data_cnt="),
    ],
)
def test_broken_or_hostile_first_download_is_refused(adapter, centre, fault, words):
    set_faults(centre, catalogue_fault=fault)

    with pytest.raises(CatalogRefused) as refused:
        adapter.catalog_sync.sync("1301")

    assert words in str(refused.value)
    assert adapter.catalogs.active("1301") is None
    kept = [v for v in adapter.catalogs.versions("1301")]
    assert [v.status for v in kept] == ["refused"]
    assert adapter.catalogs.report(kept[0].id)["total"] >= 1


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("regression", f"version 0 is below the active version {SAMPLE_CATALOGUE_VERSION}"),
        ("mass_retire", r"would retire 20 of the active codes \(9.6%, more than 5%\)"),
    ],
)
def test_bad_update_leaves_the_active_version_in_use(adapter, centre, fault, words):
    good = adapter.catalog_sync.sync("1301").version
    published = centre.ledger.catalogues["1301"]
    published[:20] = [replace(row, version=NEXT) for row in published[:20]]
    set_faults(centre, catalogue_fault=fault)

    with pytest.raises(CatalogRefused, match=words):
        adapter.catalog_sync.sync("1301")

    assert adapter.catalogs.active("1301").id == good.id
    if fault == "mass_retire":
        # Held whole, not used: the diff shows what it would do, and a person accepts it.
        held = [v for v in adapter.catalogs.versions("1301") if v.status == "held"]
        assert len(held) == 1
        diff = adapter.catalogs.diff("1301", new_id=held[0].id)
        assert len(diff.retired) == 20 and diff.old_id == good.id
        assert diff.affected  # sample HIS drugs are among them
        accepted = adapter.catalogs.accept(held[0].id)
        assert accepted.id == held[0].id and adapter.catalogs.entry("1301", published[0].code)["valid"] == "0"
        with pytest.raises(Exception, match="is not held"):
            adapter.catalogs.accept(held[0].id)


def test_mass_change_accepted_up_front(adapter, centre):
    adapter.catalog_sync.sync("1301")
    published = centre.ledger.catalogues["1301"]
    published[:] = [replace(row, version=NEXT, valid="0") for row in published]
    version = adapter.catalog_sync.sync("1301", accept_mass_change=True).version
    assert version.status == "active" and version.ver == NEXT


def test_gbk_download_is_converted_and_reported(adapter, centre):
    set_faults(centre, catalogue_fault="gbk")
    version = adapter.catalog_sync.sync("1301").version
    assert version.encoding == "gb18030"
    first = centre.ledger.catalogues["1301"][0]
    assert adapter.catalogs.entry("1301", first.code)["name"] == first.name


def test_bom_and_crlf_are_tolerated(adapter, centre):
    set_faults(centre, catalogue_fault="bom_crlf")
    version = adapter.catalog_sync.sync("1301").version
    first = centre.ledger.catalogues["1301"][0]
    assert version.rows_total == len(centre.ledger.catalogues["1301"])
    assert adapter.catalogs.entry("1301", first.code)["name"] == first.name  # no BOM glued to the code


def test_gbk_is_refused_when_configured(tmp_path):
    path = tmp_path / "gbk.zip"
    write_catalog(path, DRUGS, [CatalogRow(next(drug_codes(1)), "阿莫西林", "1")], encoding="gb18030")
    rows = CatalogFile(path, ZipLimits(accept_gb18030=False)).rows()
    with pytest.raises(FileFormatError, match="line 1: not UTF-8"):
        list(rows)


def test_import_by_hand_through_the_cli(tmp_path, centre, sample_his):
    config = tmp_path / "adapter.toml"
    config.write_text(config_text(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                                  centre_url=centre.url), encoding="utf-8")
    good = tmp_path / "1301_full.txt.zip"
    write_catalog(good, DRUGS, [CatalogRow(code, f"药品{n}", "1") for n, code in enumerate(drug_codes(30))])
    bad = tmp_path / "1301_bad.txt.zip"
    write_catalog(bad, DRUGS, [CatalogRow("X123", "坏编码", "2")])
    runner = CliRunner()

    imported = runner.invoke(main, ["catalog", "import", str(good), "--kind", "1301", "--config", str(config)])
    refused = runner.invoke(main, ["catalog", "import", str(bad), "--kind", "1301", "--config", str(config)])
    listed = runner.invoke(main, ["catalog", "list", "--all", "--config", str(config)])

    assert imported.exit_code == 0, imported.output
    assert "switched to version 1 from 1301_full.txt.zip (30 rows in the file, 30 in the catalogue)" in imported.output
    assert refused.exit_code == 1
    assert "1301_bad.txt line 1 column 1: code 'X123' is not a 1301 national code" in refused.output
    assert "the active version is unchanged" in refused.output
    assert "active" in listed.output and "refused" in listed.output


def test_outgoing_lines_are_checked_against_the_active_catalogue(adapter, centre, sample_his):
    from adapter.catalog.check import stale_mappings
    from adapter.spool.states import RecordStatus
    from tests.helpers import lines_by_status, run_until_done

    adapter.catalog_sync.sync("1301")
    published = centre.ledger.catalogues["1301"]
    retired = "XA10BAE002A001010102911"  # YP0007, 二甲双胍片
    restricted = "XJ01CAA040E001010101919"  # YP0001, 阿莫西林胶囊
    published[:] = [
        replace(row, valid="0", version=NEXT) if row.code == retired
        else replace(row, restricted="限门诊二线用药", version=NEXT) if row.code == restricted
        else row
        for row in published
    ]
    adapter.catalog_sync.sync("1301")

    report = run_until_done(adapter)

    parked = [r for r in lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
              if "[catalogue-valid]" in (r.park_reason or "")]
    assert parked and all(f"national code {retired} is retired in catalogue 1301" in r.park_reason for r in parked)
    assert retired not in {line.med_list_codg for line in centre.ledger.fee_lines.values()}
    assert restricted in {line.med_list_codg for line in centre.ledger.fee_lines.values()}
    assert report.warnings > 0  # restricted use is reported, the line still goes
    assert [(s.his_code, s.reason) for s in stale_mappings(adapter.store, adapter.region.catalogues)] == [
        ("YP0007", f"retired in catalogue 1301 (version {NEXT})")
    ]


def test_daemon_syncs_configured_catalogues_and_survives_a_refusal(make_adapter, centre, sample_his, tmp_path):
    from adapter.daemon import Daemon

    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra='\n[catalog]\nkinds = ["1307", "1301"]\n')
    import_sample_mapping(adapter, sample_his)
    set_faults(centre, catalogue_fault="bad_code")  # every kind's file is bad this time
    daemon = Daemon(adapter)
    daemon.run_once()
    assert adapter.catalogs.active("1301") is None and adapter.catalogs.active("1307") is None
    assert len(centre.ledger.fee_lines) > 0  # uploads went on regardless

    set_faults(centre)
    daemon.run_once()  # not due yet: interval_hours has not passed since the refusal
    assert adapter.catalogs.active("1301") is None
    daemon.catalogs_synced_at.clear()
    daemon.run_once()
    assert adapter.catalogs.active("1301") is not None and adapter.catalogs.active("1307") is not None


def test_daemon_retries_a_catalogue_the_centre_did_not_answer_for_at_the_next_cycle(
    make_adapter, centre, sample_his, tmp_path
):
    from adapter.daemon import Daemon

    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra='\n[catalog]\nkinds = ["1301"]\n')
    set_faults(centre, error_rate=1.0)
    daemon = Daemon(adapter)
    daemon.run_once()
    assert adapter.catalogs.active("1301") is None and "1301" not in daemon.catalogs_synced_at
    set_faults(centre)
    daemon.run_once()
    assert adapter.catalogs.active("1301") is not None


def test_paged_price_caps_are_fetched_page_by_page_and_enforced(make_adapter, centre, sample_his, tmp_path):
    from adapter.spool.states import RecordStatus
    from tests.helpers import lines_by_status, run_until_done

    adapter = make_adapter(his_url=sample_his.url, state_url=f"sqlite:///{tmp_path / 'state.db'}",
                           centre_url=centre.url, his_extra="\n[catalog]\npage_size = 4\n")
    import_sample_mapping(adapter, sample_his)
    caps = centre.ledger.catalogues["1318"]

    first = adapter.catalog_sync.sync("1318").version

    assert first.rows_total == len(caps) and first.ver == "2026-11-01 00:00:00"
    assert centre.ledger.accepted["1318"] == -(-len(caps) // 4)  # one call per page
    assert adapter.catalog_sync.sync("1318").outcome == "up to date"
    # The centre lowers the cap of 一次性输液器 (2.80 in the HIS) below its price.
    target = next(c for c in caps if c["hilist_code"] == "C0201020020000200002")
    target.update(hilist_pric_uplmt_amt="2.50", updt_time="2026-11-15 08:00:00")
    second = adapter.catalog_sync.sync("1318").version
    assert second.rows_in_file == 1 and second.rows_total == len(caps) and second.ver == "2026-11-15 08:00:00"

    run_until_done(adapter)

    parked = [r for r in lines_by_status(adapter).get(RecordStatus.PARKED.value, [])
              if "[over-standard-price]" in (r.park_reason or "")]
    assert parked and all("above the 1318 limit of C0201020020000200002 2.50" in r.park_reason for r in parked)
    with adapter.store.begin() as conn:  # and the finding is on record for the self-inspection report
        from adapter.state import schema
        found = conn.execute(select(schema.finding.c.amount).where(
            schema.finding.c.rule_id == "over-standard-price")).scalars().all()
    assert len(found) == len(parked)


@pytest.mark.parametrize(("fault", "words"), [("bad_code", "code '?' is not a 1318 national code"),
                                               ("count_mismatch", "declared recordCounts=")])
def test_bad_paged_download_is_refused(adapter, centre, fault, words):
    set_faults(centre, catalogue_fault=fault)
    with pytest.raises(CatalogRefused, match=words.replace("?", r"\?")):
        adapter.catalog_sync.sync("1318")
    assert adapter.catalogs.active("1318") is None


def test_reference_list_keeps_one_record_per_rid_and_checks_nothing(adapter, centre, sample_his):
    from tests.helpers import lines_by_status, run_until_done

    published = centre.ledger.catalogues["1312"]
    kept_code = published[0]["hilist_code"]
    published[:] = [item for item in published if item["hilist_code"] == kept_code]  # two areas, one code

    version = adapter.catalog_sync.sync("1312").version
    run_until_done(adapter)

    assert version.rows_total == 2  # one record per rid, though the code repeats
    # A reference list is not a code catalogue: lines with codes it lacks are not refused.
    parked = lines_by_status(adapter).get("parked", [])
    assert not [r for r in parked if "[catalogue-" in (r.park_reason or "")]
    assert {line.med_list_codg for line in centre.ledger.fee_lines.values()} - {kept_code}


def test_extra_trailing_columns_are_tolerated(tmp_path):
    from adapter_nhsa.catalogues import SERVICE_ITEMS

    from adapter.plugin.catalogues import CatalogSpec

    wider = CatalogSpec(**{**{f: getattr(SERVICE_ITEMS, f) for f in (
        "kind", "name", "code_column", "name_column", "version_column", "code_pattern", "valid_column",
        "begin_column", "end_column")}, "columns": SERVICE_ITEMS.columns + 3})
    path = tmp_path / "1305_newer_spec.txt.zip"
    write_catalog(path, wider, [CatalogRow("001105000010000", "床位费", "1")])
    rows = list(CatalogFile(path).rows())
    assert len(rows[0][1]) == SERVICE_ITEMS.columns + 3
    from adapter.catalog.staging import ENTRY_COLUMNS
    from adapter.catalog.store import _RowChecker
    checker = _RowChecker(SERVICE_ITEMS, path.name, "")
    entry = checker.entry(*rows[0])
    assert entry is not None and entry[ENTRY_COLUMNS.index("code")] == "001105000010000" and checker.total == 0


def _refused_problems(store_url, spec, path, declared_rows=None):
    from adapter.catalog.store import CatalogStore
    from adapter.state.store import StateStore

    store = StateStore(store_url)
    try:
        catalogs = CatalogStore(store)
        with pytest.raises(CatalogRefused) as refused:
            catalogs.ingest(spec, CatalogFile(path), source="test", declared_rows=declared_rows)
        assert catalogs.active(spec.kind) is None
        (version,) = catalogs.versions(spec.kind)
        return refused.value, version, catalogs.report(version.id)
    finally:
        store.close()


def test_problems_of_a_large_file_come_in_file_order_with_duplicates_where_they_were_found(tmp_path, state_url):
    # Pins the report of a file with problems spread over more than one staging batch (5,000
    # valid rows): each row's own problems as it is read; duplicates of a code within a batch
    # name the batch's first line, duplicates of an earlier batch name the code's first line,
    # and a batch's duplicates are reported when the batch is complete.
    from adapter_nhsa.catalogues import SERVICE_ITEMS

    codes = [f"{n:015d}" for n in range(12_000)]
    rows = [CatalogRow(code, "项目", "1") for code in codes]
    rows[2] = replace(rows[2], begin="2021/13/45")           # line 3: a bad date, not staged
    rows[9] = replace(rows[9], code=codes[1])                # line 10: same batch as line 2
    rows[5999] = replace(rows[5999], code=codes[4])          # line 6000: batch 2, first in batch 1
    rows[6000] = replace(rows[6000], code=codes[4])          # line 6001: batch 2 again
    rows[6999] = replace(rows[6999], end="someday")          # line 7000
    rows[10_999] = replace(rows[10_999], code="NOT-A-CODE")  # line 11000
    path = tmp_path / "1305_problems.txt.zip"
    write_catalog(path, SERVICE_ITEMS, rows)

    refused, version, report = _refused_problems(state_url, SERVICE_ITEMS, path, declared_rows=12_001)

    name = "1305_problems.txt"
    assert [str(p) for p in refused.problems] == report["problems"] == [
        f"{name} line 3 column 12: '2021/13/45' is not a date (yyyy-MM-dd)",
        f"{name} line 10 column 1: code {codes[1]} already on line 2",
        f"{name} line 7000 column 13: 'someday' is not a date (yyyy-MM-dd)",
        f"{name} line 6001 column 1: code {codes[4]} already on line 6000",
        f"{name} line 6000 column 1: code {codes[4]} already on line 5",
        f"{name} line 11000 column 1: code 'NOT-A-CODE' is not a 1305 national code",
        f"{name} line 0: the file has 12000 rows but the centre declared data_cnt=12001",
    ]
    assert refused.total == report["total"] == 7
    assert version.status == "refused" and version.rows_in_file == 12_000


def test_report_keeps_the_first_fifty_problems_of_many(tmp_path, state_url):
    from adapter_nhsa.catalogues import SERVICE_ITEMS

    codes = [f"{n:015d}" for n in range(6_000)]
    rows = [CatalogRow(code, "项目", "1") for code in codes]
    for n in range(100, 130):  # 30 duplicates of line 1, reported when the first batch is staged
        rows[n] = replace(rows[n], code=codes[0])
    for n in range(200, 240):  # 40 bad dates, reported as they are read
        rows[n] = replace(rows[n], begin="2021-02-30")
    path = tmp_path / "1305_many.txt.zip"
    write_catalog(path, SERVICE_ITEMS, rows)

    refused, _, report = _refused_problems(state_url, SERVICE_ITEMS, path)

    lines = [p.line for p in refused.problems]
    assert lines == [*range(201, 241), *range(101, 111)]
    assert len(report["problems"]) == 50 and refused.total == report["total"] == 70


def test_a_policy_list_with_a_code_twice_is_refused(tmp_path, state_url):
    from adapter.catalog.store import CatalogStore
    from adapter.state.store import StateStore

    def item(code, line):
        return {"code": code, "name": "限价", "row_version": "2", "begin_date": None, "end_date": None,
                "valid": "1", "restricted": "", "price_cap": "9.50", "line_no": line}

    store = StateStore(state_url)
    try:
        catalogs = CatalogStore(store)
        with pytest.raises(CatalogRefused) as refused:
            catalogs.ingest_entries("policy:p", "2", [item("A1", 3), item("B2", 4), item("A1", 7)],
                                    source="test", filename="prices.xml")
        assert [str(p) for p in refused.value.problems] == ["prices.xml line 7 column 1: code A1 already on line 3"]
        assert catalogs.active("policy:p") is None
        version = catalogs.ingest_entries("policy:p", "2", [item("A1", 3), item("B2", 4)],
                                          source="test", filename="prices.xml")
        assert version.rows_total == 2 and catalogs.entry("policy:p", "B2")["price_cap"] == "9.50"
    finally:
        store.close()
