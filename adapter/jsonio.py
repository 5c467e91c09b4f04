"""JSON as the centre speaks it: UTF-8, Chinese unescaped, amounts as exact decimals."""

from __future__ import annotations

from typing import Any

import simplejson


def dumps(document: Any) -> str:
    """Compact JSON text; Decimal values are written as exact JSON numbers."""
    return simplejson.dumps(document, ensure_ascii=False, use_decimal=True, separators=(",", ":"))


def loads(text: str) -> Any:
    """Parse JSON; numbers with a fraction become Decimal so amounts stay exact."""
    return simplejson.loads(text, use_decimal=True)
