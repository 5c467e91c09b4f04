"""JSON as the centre speaks it: UTF-8, Chinese unescaped, amounts as exact decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import simplejson

# Built once, as simplejson.dumps and simplejson.loads do for their own defaults only: with any
# other option they build an encoder or a decoder per call, which cost more than a fee line's
# text itself (decoding took three times as long). Both keep no state between calls, so one of
# each serves every thread, as simplejson's own defaults do.
_ENCODER = simplejson.JSONEncoder(ensure_ascii=False, allow_nan=False, use_decimal=True, separators=(",", ":"))
_DECODER = simplejson.JSONDecoder(parse_float=Decimal)  # what loads(use_decimal=True) builds


def dumps(document: Any) -> str:
    """Compact JSON text; Decimal values are written as exact JSON numbers."""
    return _ENCODER.encode(document)


def loads(text: str) -> Any:
    """Parse JSON; numbers with a fraction become Decimal so amounts stay exact."""
    return _DECODER.decode(text)
