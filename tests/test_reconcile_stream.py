"""Reconciliation without holding the month: settlements read from the HIS in pages, kept
compressed per clearing agency x clearing type, the detail file zipped as it is written, and
only the settlements result.txt names read back. Each gives what reading everything at once
gave."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path

import pytest

from adapter.errors import SourceError
from adapter.reconcile.local import HisSettlement, read_settlements, settlement_pages
from adapter.reconcile.month import Month, SeenFilter
from adapter.reconcile.run import Drill, _named, classify, place
from adapter.zipped_text import text_from_zip, zip_chunks, zip_text
from tests.test_reconcile import NOVEMBER, settled  # noqa: F401 (a fixture)

QUERY = "SELECT * FROM settlements WHERE setl_time >= :start AND setl_time < :end ORDER BY seq"


def _his(path: Path, rows: list[tuple]) -> str:
    """A HIS of its own: (setl_id, mdtrt_id, psn_no, insutype, day, medfee, fund, acct, cash, msgid)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE settlements (seq INTEGER, setl_id TEXT, mdtrt_id TEXT, psn_no TEXT, insutype TEXT, "
                 "clr_type TEXT, setl_time TEXT, medfee_sumamt TEXT, fund_pay_sumamt TEXT, acct_pay TEXT, "
                 "psn_cash_pay TEXT, refd_setl_flag TEXT, msgid TEXT)")
    conn.executemany("INSERT INTO settlements VALUES (?, ?, ?, ?, ?, '21', ?, ?, ?, ?, ?, '0', ?)", [
        (seq, s, m, p, t, f"2026-11-{day:02d} 10:00:00", medfee, fund, acct, cash, msgid)
        for seq, (s, m, p, t, day, medfee, fund, acct, cash, msgid) in enumerate(rows)])
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def _row(n: int, **changes: object) -> tuple:
    fields = {"setl_id": f"S{n}", "mdtrt_id": f"M{n}", "psn_no": f"P{n % 4}", "insutype": "310" if n % 3 else "390",
              "day": 1 + n % 5, "medfee": f"{100 + n}.10", "fund": f"{70 + n}.05", "acct": "10.00", "cash": "20.05",
              "msgid": f"H{n:029d}"}
    fields.update(changes)
    return tuple(fields.values())


def test_pages_smaller_than_the_month_read_the_same_settlements(tmp_path):
    his = _his(tmp_path / "his.db", [_row(n) for n in range(11)] + [_row(3, medfee="7")])
    whole = read_settlements(his, QUERY, NOVEMBER, setl_optins="431199")
    pages = list(settlement_pages(his, QUERY, NOVEMBER, setl_optins="431199", page_size=4,
                                  mdtrt_ids_of=lambda keys: {"M2": "C2"} if "M2" in keys else {}))
    assert [len(page) for page in pages] == [4, 4, 4]
    paged = [s for page in pages for s in page]
    assert [s.mdtrt_id for s in paged] == [("C2" if s.mdtrt_id == "M2" else s.mdtrt_id) for s in whole]
    assert [s for s in paged if s.setl_id != "S2"] == [s for s in whole if s.setl_id != "S2"]
    assert paged[-1].medfee_sumamt == Decimal("7") and paged[0].setl_optins == "431199"


@pytest.mark.parametrize(("change", "words"), [
    ({"medfee": "abc"}, "settlement row 6 of the settlement query is unreadable"),
    ({"msgid": "H" * 31}, "settlement row 6 of the settlement query: msgid 'HHHH"),
])
def test_a_bad_row_in_a_later_page_is_named_by_its_row(tmp_path, change, words):
    his = _his(tmp_path / "his.db", [_row(n, **(change if n == 5 else {})) for n in range(9)])
    with pytest.raises(SourceError, match=words):
        read_settlements(his, QUERY, NOVEMBER)
    with pytest.raises(SourceError, match=words):
        list(settlement_pages(his, QUERY, NOVEMBER, page_size=2))


def _settlement(n: int, **changes: object) -> HisSettlement:
    fields = {"setl_id": f"S{n}", "mdtrt_id": f"M{n}", "psn_no": f"P{n}", "insutype": "310", "clr_type": "21",
              "setl_time": f"2026-11-{1 + n % 3:02d} 08:00:00", "medfee_sumamt": Decimal(f"{n}.50"),
              "fund_pay_sumamt": Decimal("1.25"), "acct_pay": Decimal("0"), "psn_cash_pay": Decimal("0.10"),
              "refd_setl_flag": "0", "setl_optins": "431199", "msgid": f"H{n}"}
    fields.update(changes)
    return HisSettlement(**fields)  # type: ignore[arg-type]


def test_the_kept_month_finds_what_the_whole_list_finds():
    # S1 is twice in the HIS, in different pages; a result row names S7 by its msgid only; S99
    # is only at the centre, of a stay the HIS does not know; S9 is another agency's.
    everything = [_settlement(n) for n in range(8)] + [_settlement(1, medfee_sumamt=Decimal("9"))]
    everything += [_settlement(9, setl_optins="439900", insutype="390"), _settlement(10, insutype="390")]
    month = Month()
    for at in range(0, len(everything), 3):
        month.add_page(everything[at:at + 3])
    kept = month.partitions[("431199", "21")]
    mine = [s for s in everything if s.setl_optins == "431199"]
    assert kept.count == len(mine) and [s for batch in kept.batches() for s in map(kept.settlement, batch)] == mine
    result = [
        {"psn_no": "P2", "mdtrt_id": "M2", "setl_id": "S2", "msgid": "", "stmt_rslt": "1", "refd_setl_flag": "0",
         "memo": "", "medfee_sumamt": "99", "fund_pay_sumamt": "1.25", "acct_pay": "0"},
        {"psn_no": "P7", "mdtrt_id": "", "setl_id": "", "msgid": "H7", "stmt_rslt": "1", "refd_setl_flag": "1",
         "memo": "", "medfee_sumamt": "7.50", "fund_pay_sumamt": "1.25", "acct_pay": "0"},
        {"psn_no": "P10", "mdtrt_id": "M99", "setl_id": "S99", "msgid": "", "stmt_rslt": "1", "refd_setl_flag": "0",
         "memo": "", "medfee_sumamt": "3", "fund_pay_sumamt": "1", "acct_pay": "0"},
    ]
    named = _named(kept, result, month.seen.candidates)
    assert {"S1", "S2", "S7"} <= {s.setl_id for s in named} and len(named) < len(mine)
    found = classify(named, result, {"S2": "HOURS"})
    assert [asdict(d) for d in found] == [asdict(d) for d in classify(mine, result, {"S2": "HOURS"})]
    assert [(d.setl_id, d.kind) for d in found] == [("S1", "duplicate"), ("S2", "amount"), ("S7", "refund_flag"),
                                                    ("S99", "only_centre")]
    # the one only the centre has names no insurance type: its person's settlement (S10, 390) does
    from adapter.reconcile.run import PairResult

    def pairs() -> list[PairResult]:
        return [PairResult("431199", "310", "21", {}, "1", ""), PairResult("431199", "390", "21", {}, "1", "")]

    drill, whole = pairs(), pairs()
    place(drill, found, Drill(kept, result, named).nearby(found))
    place(whole, classify(mine, result, {"S2": "HOURS"}), mine)
    assert [[d.setl_id for d in p.differences] for p in drill] == [[d.setl_id for d in p.differences] for p in whole]
    assert [d.setl_id for d in drill[1].differences] == ["S99"]
    # the totals and the daily figures are those of adding the settlements one by one
    total = month.partition_totals("431199", "21")
    assert (total.count, total.medfee_sumamt) == (len(mine), sum(s.medfee_sumamt for s in mine))
    day = [s for s in everything if s.setl_time.startswith("2026-11-02")]
    assert month.daily()["2026-11-02"] == [str(len(day)), str(sum(s.medfee_sumamt for s in day)),
                                           str(sum(s.fund_pay_sumamt for s in day))] == ["5", "33.00", "6.25"]


def test_a_repeated_setl_id_is_always_a_candidate():
    seen = SeenFilter()
    seen.add_all([f"S{n}" for n in range(1000)])
    seen.add_all(["S17", "S999"])
    assert {hash("S17"), hash("S999")} <= seen.candidates


def test_the_detail_file_zipped_as_it_is_written_is_the_one_zip_text_makes():
    chunks = ["S1\tM1\tP1\t1.00\t0.50\t0.00\t0\n", "S2\tM2\t张三\t2.00\t1.50\t0.00\t1\n"]
    streamed, whole = zip_chunks("H1_431199.txt", chunks), zip_text("H1_431199.txt", "".join(chunks))
    assert text_from_zip(streamed).text == text_from_zip(whole).text == "".join(chunks)
    import io
    import zipfile

    def member(data: bytes) -> tuple:
        info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
        return info.filename, info.compress_type, info.external_attr, info.flag_bits, info.file_size, info.CRC

    assert member(streamed) == member(whole)


def test_a_month_read_a_few_settlements_at_a_time_reconciles_as_one_page(settled, centre, sample_his):  # noqa: F811
    ids = sorted(centre.ledger.settlements)
    centre.lose_settlement(ids[0])
    centre.alter_settlement(ids[1], fund_pay_sumamt=centre.ledger.settlements[ids[1]]["fund_pay_sumamt"] + 1)
    centre.alter_settlement(ids[2], refd_setl_flag="1")
    centre.add_settlement(dict(centre.ledger.settlements[ids[3]], setl_id="S-CENTRE-ONLY", msgid="H" + "9" * 29))

    reconciler = settled.reconciler
    runs = []
    for size in (1, 2, 1000):
        reconciler.page_size = size
        run = reconciler.run(NOVEMBER)
        runs.append({k: v for k, v in run.to_json().items() if k not in ("id", "created_at")})
    assert runs[0] == runs[1] == runs[2]
    found = {(d["setl_id"], d["kind"]) for p in runs[0]["pairs"] for d in p["differences"]}
    assert found == {(ids[0], "only_hospital"), (ids[1], "amount"), (ids[2], "refund_flag"),
                     ("S-CENTRE-ONLY", "only_centre")}


def test_the_columns_of_a_page_are_its_settlements(tmp_path):
    from adapter.reconcile.local import Columns, settlement_columns

    his = _his(tmp_path / "his.db", [_row(n) for n in range(7)] + [_row(3, medfee=" 7 ")])
    pages = list(settlement_columns(his, QUERY, NOVEMBER, setl_optins="431199", page_size=3))
    assert [s for page in pages for s in page.settlements()] == read_settlements(his, QUERY, NOVEMBER,
                                                                                 setl_optins="431199")
    assert Columns.of(pages[0].settlements()) == pages[0] and Columns.of([]).setl_id == []


def test_the_amount_texts_of_a_page_are_str_of_its_decimals(tmp_path):
    from adapter.reconcile.local import settlement_columns

    # amounts written as str() writes them (kept as the HIS wrote them) and not (printed again)
    odd = ["7", "007.10", "1E+2", "+1.5", " 2.50 ", "0.0000001", "0.000001", "-0.00", "1_0.5", "3.5\n", "0.1234567"]
    rows = [_row(n) for n in range(8)] + [_row(8 + n, medfee=a, fund=a, acct=a, cash=a) for n, a in enumerate(odd)]
    his = _his(tmp_path / "his.db", rows)
    for page_size in (1, 4, 100):
        pages = list(settlement_columns(his, QUERY, NOVEMBER, setl_optins="431199", page_size=page_size))
        assert sum(len(page.setl_id) for page in pages) == len(rows)
        for page in pages:
            for amounts, texts in ((page.medfee_sumamt, page.medfee_text), (page.fund_pay_sumamt, page.fund_text),
                                   (page.acct_pay, page.acct_text), (page.psn_cash_pay, page.cash_text)):
                assert list(texts) == [str(a) for a in amounts]
    assert [str(a) for page in pages for a in page.medfee_sumamt][8:] == [
        "7", "7.10", "1E+2", "1.5", "2.50", "1E-7", "0.000001", "-0.00", "10.5", "3.5", "0.1234567"]


def test_an_amount_text_is_kept_only_where_it_is_how_str_writes_the_decimal():
    import itertools

    from adapter.reconcile.local import amount_texts

    usual = ["1.00", "20.5", "-3", "0", "0.000001", "0.000000", "123456789012345.678"]
    assert amount_texts(usual, [Decimal(t) for t in usual]) is usual
    # every text of up to 8 characters of 0, 1, "." and "-" that reads as a Decimal
    for length in range(1, 9):
        for chars in itertools.product("01.-", repeat=length):
            text = "".join(chars)
            try:
                amount = Decimal(text)
            except ArithmeticError:
                continue
            column = ["1.5", text]
            assert amount_texts(column, [Decimal("1.5"), amount]) == ["1.5", str(amount)]


def test_a_month_of_columns_is_the_month_of_settlements():
    # several agencies, insurance types and days in one page, the HIS's writing of amounts kept
    everything = [_settlement(n, insutype="390" if n % 3 else "310", setl_optins="439900" if n % 4 else "431199",
                              medfee_sumamt=Decimal(f"{n}.5"), setl_time=f"2026-11-{1 + n % 5:02d} 08:00:00")
                  for n in range(40)]
    by_page, by_row = Month(), Month()
    by_page.add_page(everything)
    for s in everything:
        by_row.add_page([s])
    assert by_page.groups == by_row.groups and by_page.daily() == by_row.daily()
    for key, kept in by_page.partitions.items():
        assert list(kept.batches()) == list(by_row.partitions[key].batches())
        assert kept.having({0: {"S4", "S8"}}) == kept.matching(lambda k: k[0] in {"S4", "S8"})
        assert kept.having({}, {hash("S5")}) == kept.matching(lambda k: hash(k[0]) == hash("S5"))


def test_the_detail_file_writes_amounts_as_money_does():
    from adapter.reconcile.run import _cents, _cents_column

    column = ["1.00", "2", "3.5", "-0.00", "12.345", "0.00", "1E+2", "007.10"]
    assert _cents_column(column) == [_cents(a) for a in column] == [
        "1.00", "2.00", "3.50", "-0.00", "12.35", "0.00", "100.00", "7.10"]
    usual = ["1.00", "20.50"]
    assert _cents_column(usual) is usual


def test_a_faster_zip_level_holds_the_same_text():
    chunks = [f"S{n}\tM{n}\tP{n}\t1.00\t0.50\t0.00\t0\n" for n in range(500)]
    assert text_from_zip(zip_chunks("d.txt", chunks, 1)).text == text_from_zip(zip_text("d.txt", "".join(chunks))).text


def test_only_a_region_hook_of_its_own_is_asked_about_each_settlement():
    from adapter_nhsa.dialect import NhsaDialect

    from adapter.app import _fund_hook
    from adapter.plugin.api import Settlement, settled_figure

    class Deducting(NhsaDialect):
        def fund_pay_sumamt(self, settlement: Settlement) -> Decimal:
            return settlement.fund_pay_sumamt - 1

    class Marked(NhsaDialect):
        @settled_figure
        def fund_pay_sumamt(self, settlement: Settlement) -> Decimal:
            return settlement.fund_pay_sumamt

    assert _fund_hook(NhsaDialect().fund_pay_sumamt) is None and _fund_hook(Marked().fund_pay_sumamt) is None
    hook = Deducting().fund_pay_sumamt
    assert _fund_hook(hook) == hook


def test_a_region_hook_reads_fund_pay_sumamt_of_each_settlement():
    from adapter.reconcile.local import Columns
    from adapter.reconcile.run import Reconciler

    page = Columns.of([_settlement(n, fund_pay_sumamt=Decimal("1.5")) for n in range(3)])
    reconciler = Reconciler.__new__(Reconciler)
    reconciler.fund_of = lambda s: Decimal("1.50") if s.setl_id == "S1" else s.fund_pay_sumamt - 1
    # an equal figure keeps the HIS's writing of it, as replacing settlement by settlement did
    assert [str(f) for f in reconciler._regional(page).fund_pay_sumamt] == ["0.5", "1.5", "0.5"]
    assert list(reconciler._regional(page).fund_text) == ["0.5", "1.5", "0.5"]
    reconciler.fund_of = None
    assert reconciler._regional(page) is page
