"""Which published edition of the interface tables a region follows, and each way it departs
from it, as data with its source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EditionDifference:
    """One departure of a region from its edition: a field that takes values the edition's
    dictionary lacks, or whose required flag differs. ``infno`` empty: in every transaction."""

    field: str
    #: values (code -> label) the region adds to the field's dictionary
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)
    infno: str = ""
    #: True/False: the region makes the field required / optional; None: as the edition says
    required: bool | None = None
    #: the document (or section) that says so
    source: str = ""
