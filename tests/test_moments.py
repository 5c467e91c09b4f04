"""adapter.moments reads exactly what datetime.strptime reads, and refuses what it refuses."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter import moments

FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%Y%m%d%H%M%S")


def _strptime(text: str, fmt: str) -> datetime | type[ValueError]:
    try:
        return datetime.strptime(text, fmt)
    except ValueError:
        return ValueError


def _parse(text: str, fmt: str) -> datetime | type[ValueError]:
    try:
        return moments.parse(text, fmt)
    except ValueError:
        return ValueError


_written = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0))
_near_miss = st.text(alphabet="0123456789-: T٣", min_size=8, max_size=21)


@given(_written, st.sampled_from(FORMATS), st.sampled_from(FORMATS))
def test_written_moments_read_alike(moment, written_as, read_as):
    text = moment.strftime(written_as) if moment.year >= 1000 else moment.isoformat(" ")
    assert _parse(text, read_as) == _strptime(text, read_as)


@given(_near_miss, st.sampled_from(FORMATS))
def test_near_misses_are_refused_alike(text, fmt):
    assert _parse(text, fmt) == _strptime(text, fmt)


@pytest.mark.parametrize("text", ["2026-02-30 10:00:00", "2026-13-01 10:00:00", "2026-01-01 24:00:00",
                                  "2026-01-01 10:00:60", "2026-1-1 1:2:3", "２０２６-01-01 10:00:00"])
def test_edge_cases_read_alike(text):
    assert _parse(text, "%Y-%m-%d %H:%M:%S") == _strptime(text, "%Y-%m-%d %H:%M:%S")
    assert moments.is_canonical(text) is (_strptime(text, "%Y-%m-%d %H:%M:%S") is not ValueError
                                          and len(text) == 19 and text.isascii())
