"""Reading dates and date-times as ``datetime.strptime`` does, at C speed for the forms nearly
every value has.

A fee line's times are read several times on its way (extracted, checked, judged by the
rules); ``strptime`` costs ~10 µs a call, most of it locale and regex set-up, which made it
the largest single cost of a backfill. The canonical forms ``yyyy-MM-dd HH:mm:ss`` and
``yyyy-MM-dd`` (what the interface writes, and what most HIS columns hold) are checked by
shape and read by ``datetime.fromisoformat``; anything else goes to ``strptime`` unchanged,
so what is accepted and refused stays exactly what ``strptime`` accepts and refuses.
"""

from __future__ import annotations

import re
from datetime import datetime

_SHAPES = {
    "%Y-%m-%d %H:%M:%S": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}"),
    "%Y-%m-%dT%H:%M:%S": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"),
    "%Y-%m-%d": re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
}


def parse(text: str, fmt: str) -> datetime:
    """``datetime.strptime(text, fmt)``; raises ValueError as it does."""
    shape = _SHAPES.get(fmt)
    if shape is not None and shape.fullmatch(text):
        return datetime.fromisoformat(text)  # the same fields, range-checked the same way
    return datetime.strptime(text, fmt)


def is_canonical(text: str) -> bool:
    """Whether ``text`` is a valid ``yyyy-MM-dd HH:mm:ss`` (the interface's date-time form)."""
    if not _SHAPES["%Y-%m-%d %H:%M:%S"].fullmatch(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
