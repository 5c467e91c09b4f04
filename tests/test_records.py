"""fee_line_from_row builds its FeeLine without the dataclass's __init__ (for speed): the line
must be the very one the __init__ would build, and the bad values still named as before."""

from __future__ import annotations

import dataclasses
import pickle
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from adapter.records import FeeLine, MalformedRow, fee_line_from_row


def _row(**changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "mdtrt_id": "ZY1", "psn_no": " P1 ", "feedetl_sn": "12", "fee_ocur_time": "2026-11-02 10:00:00",
        "his_item_code": "X1", "his_item_name": "药", "cnt": Decimal("2.00"), "pric": "12.5",
        "det_item_fee_sumamt": 25, "his_dept_code": "D1", "his_dept_name": "内科", "his_doctor_code": "DR1",
        "his_doctor_name": "张", "med_type": "", "his_std_price": " ", "prd_days": Decimal("-0.0"),
        "adm_time": datetime(2026, 11, 1, 8, 0, 0, 5), "dscg_time": None, "er_flag": 1,
    }
    row.update(changes)
    return row


def _by_init(row: dict[str, Any], source_key: str) -> FeeLine:
    """The same line through FeeLine's own __init__."""
    line = fee_line_from_row(row, source_key)
    return FeeLine(**{field.name: getattr(line, field.name) for field in dataclasses.fields(FeeLine)})


def test_a_fee_line_is_the_one_its_init_builds() -> None:
    line = fee_line_from_row(_row(), "2301:k:12")
    same = _by_init(_row(), "2301:k:12")
    assert line == same and hash(line) == hash(same) and repr(line) == repr(same)
    assert list(vars(line)) == list(vars(same))  # every field, in field order
    assert pickle.loads(pickle.dumps(line)) == line
    assert dataclasses.replace(line, cnt=Decimal(1)).cnt == Decimal(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.cnt = Decimal(3)  # type: ignore[misc]


def test_a_fee_line_reads_its_values_as_before() -> None:
    line = fee_line_from_row(_row(), "k")
    assert (line.source_key, line.psn_no, line.med_type, line.er_flag) == ("k", "P1", "21", "1")
    assert (line.cnt, line.pric, line.det_item_fee_sumamt) == (Decimal("2.00"), Decimal("12.5"), Decimal("25"))
    assert str(line.cnt) == "2.00" and str(line.prd_days) == "-0.0"  # a Decimal's own places and sign kept
    assert line.his_std_price is None and line.dscg_time is None
    assert line.adm_time == datetime(2026, 11, 1, 8, 0, 0)


@pytest.mark.parametrize(("changes", "words"), [
    ({"psn_no": None, "his_item_code": " "}, "HIS row has no value for psn_no, his_item_code"),
    ({"fee_ocur_time": "yesterday", "cnt": "x"}, "fee_ocur_time 'yesterday' is not a date-time"),
    ({"cnt": "x", "pric": "y"}, "cnt 'x' is not a number"),
    ({"cnt": Decimal("NaN")}, "cnt Decimal('NaN') is not a finite number"),
    ({"det_item_fee_sumamt": Decimal("-Infinity")}, "det_item_fee_sumamt Decimal('-Infinity') is not a finite"),
    ({"his_std_price": "abc", "adm_time": "never"}, "his_std_price 'abc' is not a number"),
    ({"dscg_time": "2026-13-40 00:00:00"}, "dscg_time '2026-13-40 00:00:00' is not a date-time"),
])
def test_the_first_bad_value_is_named(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(MalformedRow, match=words.replace("(", r"\(").replace(")", r"\)")):
        fee_line_from_row(_row(**changes), "k")
