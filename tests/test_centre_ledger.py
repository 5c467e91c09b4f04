"""The simulated centre's settlement ledger written through its recording API: the totals and
partitions it keeps as settlements are recorded, changed and removed are those a pass over
every row gives (3201's and 3202's own definition), and a row cannot be changed behind its back."""

from __future__ import annotations

import random
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest

from adapter.rehearsal.centre.ledger import CentreLedger

HOME = "431199"
DAYS = ("2026-10-31", "2026-11-01", "2026-11-02", "2026-11-15", "2026-11-30", "2026-12-01")
RANGES = (("2026-11-01", "2026-11-30"), ("2026-11-02", "2026-11-02"), ("2026-10-01", "2026-12-31"))


def _row(rng: random.Random, setl_id: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "setl_id": setl_id, "mdtrt_id": f"M{setl_id}", "psn_no": f"P{rng.randrange(5)}",
        "insutype": rng.choice(("310", "390")), "clr_type": rng.choice(("11", "21")),
        "setl_date": rng.choice(DAYS), "refd_setl_flag": rng.choice("01"), "msgid": f"H{rng.randrange(3)}",
        "medfee_sumamt": Decimal(rng.randrange(-500, 10_000)) / 100, "fund_pay_sumamt": Decimal(rng.randrange(900)),
        "acct_pay": rng.choice((Decimal("0.10"), "2.5", None, 3, "", Decimal("-0.00"))),
        "cash_payamt": Decimal(rng.randrange(1000)).scaleb(-rng.randrange(4)),
    }
    if rng.random() < 0.3:
        row["setl_optins"] = rng.choice((HOME, "439900", ""))
    return row


def _ids(rng: random.Random) -> str:
    # plain ids (the home agency's), and ids a centre issued naming the agency that settled them
    return rng.choice((f"S{rng.randrange(40)}", f"S439900{rng.randrange(20):09d}", f"S{HOME}{rng.randrange(20):09d}"))


def _same_as_a_pass(ledger: CentreLedger) -> None:
    for begin, end in RANGES:
        for home in (HOME, "439900"):
            kept, scanned = ledger.statement_totals(begin, end, home), ledger.scanned_totals(begin, end, home)
            assert kept == scanned
            # the very Decimals: the same exponents (so the same text in stmt_rslt_dscr)
            assert {k: {n: str(v) for n, v in t.items()} for k, t in kept.items()} == {
                k: {n: str(v) for n, v in t.items()} for k, t in scanned.items()}
            for agency in (HOME, "439900", "430000"):
                for clr_type in ("11", "21", "99"):
                    rows = ledger.reconciled_settlements(begin, end, home, agency, clr_type, copies=False)
                    again = ledger.scanned_settlements(begin, end, home, agency, clr_type, copies=False)
                    assert [id(r) for r in rows] == [id(r) for r in again]  # the same rows, in the same order


def test_the_kept_totals_and_partitions_are_those_of_a_pass_over_the_rows():
    rng = random.Random(14)
    ledger = CentreLedger()
    for step in range(1500):
        ids = list(ledger.settlements)
        action = rng.random()
        if action < 0.5 or not ids:
            ledger.record_settlement(_row(rng, _ids(rng)))  # new, or one replaced in its place
        elif action < 0.8:
            setl_id = rng.choice(ids)
            field = rng.choice(("medfee_sumamt", "acct_pay", "insutype", "clr_type", "setl_date", "setl_optins",
                                "refd_setl_flag"))
            ledger.change_settlement(setl_id, **{field: _row(rng, setl_id).get(field, "")})
        else:
            ledger.remove_settlement(rng.choice(ids))
        if step % 50 == 0:
            _same_as_a_pass(ledger)
    _same_as_a_pass(ledger)
    assert len(ledger.settlements) > 20


def test_the_ledger_keeps_the_order_a_dict_keeps():
    ledger, plain = CentreLedger(), {}
    rng = random.Random(3)
    for setl_id in ("S1", "S2", "S3", "S2", "S4"):
        row = _row(rng, setl_id)
        ledger.record_settlement(row)
        plain[setl_id] = row
    ledger.remove_settlement("S1")
    del plain["S1"]
    ledger.record_settlement(_row(rng, "S1"))
    plain["S1"] = {}
    ledger.change_settlement("S3", clr_type="11")
    assert list(ledger.settlements) == list(plain) == ["S2", "S3", "S4", "S1"]
    with pytest.raises(KeyError):
        ledger.remove_settlement("S-NONE")
    with pytest.raises(KeyError):
        ledger.change_settlement("S-NONE", clr_type="11")


def test_a_row_cannot_be_changed_in_place():
    ledger = CentreLedger()
    ledger.record_settlement(_row(random.Random(1), "S1"))
    held = ledger.settlements["S1"]
    with pytest.raises(TypeError):
        held["medfee_sumamt"] = Decimal(1)  # type: ignore[index]
    with pytest.raises(TypeError):
        del ledger.settlements["S1"]  # type: ignore[attr-defined]
    assert dict(held, setl_id="S2")["mdtrt_id"] == "MS1" and "S1" in ledger.settlements


def test_a_row_the_ledger_cannot_place_is_read_with_a_pass_over_every_row():
    ledger = CentreLedger()
    rng = random.Random(5)
    for n in range(10):
        ledger.record_settlement(_row(rng, f"S{n}"))
    odd = {k: v for k, v in _row(rng, "S-ODD").items() if k != "insutype"} | {"setl_date": "2026-11-02"}
    ledger.record_settlement(odd)  # recorded as it came; 3201 and 3202 then read every row, as before
    with pytest.raises(KeyError):
        ledger.statement_totals("2026-11-01", "2026-11-30", HOME)
    rows = ledger.reconciled_settlements("2026-10-01", "2026-12-31", HOME, HOME, odd["clr_type"], copies=False)
    assert rows == ledger.scanned_settlements("2026-10-01", "2026-12-31", HOME, HOME, odd["clr_type"], copies=False)
    ledger.remove_settlement("S-ODD")
    _same_as_a_pass(ledger)


def test_an_amount_that_does_not_read_is_refused_when_the_totals_are_asked_for():
    ledger = CentreLedger()
    rng = random.Random(7)
    ledger.record_settlement(dict(_row(rng, "S1"), setl_date="2026-11-02", medfee_sumamt="abc"))  # recorded
    with pytest.raises(InvalidOperation):
        ledger.scanned_totals("2026-11-01", "2026-11-30", HOME)
    with pytest.raises(InvalidOperation):
        ledger.statement_totals("2026-11-01", "2026-11-30", HOME)
    ledger.change_settlement("S1", medfee_sumamt="1.5")
    _same_as_a_pass(ledger)
