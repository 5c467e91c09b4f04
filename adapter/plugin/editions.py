"""Which published edition of the interface tables a region follows, how it reads the places
where that edition contradicts itself, and each way it departs from it, as data with its source."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EditionDifference:
    """One change to how a region reads its edition's tables, with its source: values a field
    takes that its dictionary lacks, a required flag or a length that differs, or, where the
    edition prints two tables under one code (clr_type, longterm_admrol_flag), the one table the
    field reads. ``infno`` empty: in every transaction and the envelope.

    The same shape serves two lists of a region: ``edition_readings`` (where the edition
    contradicts itself, the reading the region takes) and ``edition_differences`` (where the
    region departs from an edition that is clear)."""

    field: str
    #: values (code -> label) the region adds to the field's dictionary
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)
    infno: str = ""
    #: True/False: the region makes the field required / optional; None: as the edition says
    required: bool | None = None
    #: the dictionary the field reads, and only it (e.g. "clr_type" rather than "clr_type#2");
    #: empty: the edition's first table under the field's code
    table: str = ""
    #: the length the region reads instead of the table's (e.g. the envelope's infno)
    length: str = ""
    #: the document (or section) that says so
    source: str = ""
