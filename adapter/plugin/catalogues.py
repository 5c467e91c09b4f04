"""What a catalogue file looks like, per kind, as data (reference §3.4): the positional TAB
columns that matter and the national code format (§4). Regions register their own specs;
the national ones are in the nhsa plugin."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

#: what a catalogue is for: national codes lines are checked against, price caps of codes
#: kept elsewhere (1318), or reference data that is kept and compared but checks nothing
CatalogRole = Literal["codes", "price_caps", "reference"]


@dataclass(frozen=True)
class CatalogSpec:
    """One file catalogue. Column numbers are 1-based, as the spec lists them."""

    kind: str
    name: str
    #: a row with fewer columns is refused; more are tolerated (newer spec versions append)
    columns: int
    code_column: int
    name_column: int
    version_column: int
    #: regular expression the national code must match in full
    code_pattern: str
    valid_column: int | None = None
    begin_column: int | None = None
    end_column: int | None = None
    #: 限制使用 text or flag (reported on lines that use a restricted item)
    restricted_column: int | None = None
    #: further columns that must not be empty
    required: tuple[int, ...] = ()
    #: further columns that must parse as dates (yyyy-MM-dd, optionally with a time)
    date_columns: tuple[int, ...] = ()
    number_columns: tuple[int, ...] = ()
    #: the column with a price cap (1318 hilist_pric_uplmt_amt)
    price_column: int | None = None
    #: for a paged query (1312, 1316-1319): the JSON field of each column, in column order;
    #: empty for a file catalogue
    paged_fields: tuple[str, ...] = ()
    role: CatalogRole = "codes"
    _compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", re.compile(self.code_pattern))

    def code_ok(self, code: str) -> bool:
        return self._compiled.fullmatch(code) is not None

    @property
    def required_columns(self) -> tuple[int, ...]:
        return tuple(sorted({self.code_column, self.version_column, *self.required}
                            | ({self.name_column} if not self.paged else set())))

    @property
    def paged(self) -> bool:
        return bool(self.paged_fields)

    @property
    def all_date_columns(self) -> tuple[int, ...]:
        return tuple(c for c in (self.begin_column, self.end_column, *self.date_columns) if c is not None)


@dataclass(frozen=True)
class PolicySpec:
    """A regional XML policy file (e.g. local price limits), checked against the XSD the
    region plugin ships. Its items become a version like a catalogue's, of kind ``kind``."""

    kind: str
    name: str
    xsd: Path
    #: local name of the element that carries one item
    item_tag: str = "item"
    code_attribute: str = "code"
    name_attribute: str = "name"
    #: attribute with a price cap for the item's national code, if the file sets prices
    price_attribute: str | None = None
    #: attribute of the root element holding the file's version
    version_attribute: str = "version"
