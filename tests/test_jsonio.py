"""jsonio keeps one encoder and one decoder (for speed): what it writes and reads must be what
simplejson.dumps and simplejson.loads give with the same options, refusals included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import simplejson

from adapter import jsonio

DOCUMENTS: list[Any] = [
    {"feedetail": [{"medins_list_codg": "药品001", "cnt": Decimal("2.00"), "pric": Decimal("-0.0"), "n": 3,
                    "none": None, "flag": True, "text": "引号\" 反斜杠\\ 换行\n \u2028 \x00 \ud800"}]},
    [Decimal("1E+5"), Decimal("123456789012345.123456"), 1.5, 10**30, "", [], {}],
    "plain", 0, None,
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_written_and_read_as_simplejson_does(document: Any) -> None:
    text = simplejson.dumps(document, ensure_ascii=False, use_decimal=True, separators=(",", ":"))
    assert jsonio.dumps(document) == text
    read, expected = jsonio.loads(text), simplejson.loads(text, use_decimal=True)
    assert read == expected and repr(read) == repr(expected)  # Decimals with their own places


@pytest.mark.parametrize("value", [Decimal("NaN"), float("inf"), Decimal("-Infinity")])
def test_no_number_that_is_none_is_written(value: Any) -> None:
    with pytest.raises(ValueError):
        simplejson.dumps([value], ensure_ascii=False, use_decimal=True, separators=(",", ":"))
    with pytest.raises(ValueError):
        jsonio.dumps([value])


@pytest.mark.parametrize("text", ["[NaN]", "{\"a\": Infinity}", "{'a': 1}", "[1,]", "", "[1] x"])
def test_what_is_no_json_is_refused_alike(text: str) -> None:
    with pytest.raises(ValueError) as theirs:
        simplejson.loads(text, use_decimal=True)
    with pytest.raises(ValueError) as ours:
        jsonio.loads(text)
    assert str(ours.value) == str(theirs.value)
