"""A report's tables as data, described once for both of its readable forms: the workbook
(adapter.reports.workbook) and the HTML page (adapter.html_page).

Every column names itself in Chinese and in English and says what its values are (money, a
count, a date, a code with its label...); every cell keeps its value typed (Decimal, int,
date, datetime, timedelta, :class:`Coded`) so that the workbook stores numbers as numbers and
dates as dates, and the page formats them, instead of both parsing text back. The masthead
says whose report it is, for which period, made when (local time with its zone) and by which
version of the adapter."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import adapter

#: what a column holds: ``money`` (Decimal, two decimals), ``count`` (int), ``percent`` (a
#: Decimal fraction), ``hours`` (a timedelta, shown as a duration and stored as hours),
#: ``date``/``datetime``, ``code`` (a :class:`Coded`: the workbook gives its label a column of
#: its own), ``id`` (identifiers kept as text), ``text``
Kind = Literal["text", "id", "code", "money", "count", "percent", "hours", "date", "datetime"]
#: kinds read as numbers: right-aligned, summable
NUMERIC: frozenset[str] = frozenset({"money", "count", "percent", "hours"})


@dataclass(frozen=True)
class Coded:
    """A code and its label from a dictionary ("310", "职工基本医疗保险"); the label is ""
    where the dictionary has none."""

    code: str
    label: str = ""

    def __str__(self) -> str:
        return f"{self.code} {self.label}".strip()


@dataclass(frozen=True)
class Column:
    zh: str
    en: str
    kind: Kind = "text"
    #: the totals row sums this column
    total: bool = False
    #: long text (descriptions, reasons): wrapped, not widening the column
    wrap: bool = False


@dataclass
class Table:
    #: the table's id in the page
    key: str
    #: its worksheet's name (Excel allows 31 characters)
    sheet: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    rows: list[list[Any]]
    #: one line under the title (what the table counts, what is left out)
    note: str = ""
    #: a CSS class per row ("bad" for a pair that does not balance), or empty
    marks: list[str] = field(default_factory=list)
    #: the page shows at most this many rows (with a note); the workbook has them all
    page_limit: int | None = None

    @property
    def totals(self) -> bool:
        return any(c.total for c in self.columns)

    def sums(self) -> list[Any]:
        """The totals row as the page shows it (the workbook writes SUM formulas instead)."""
        out: list[Any] = []
        for index, column in enumerate(self.columns):
            if not column.total:
                out.append(None)
                continue
            values = [row[index] for row in self.rows if _summable(row[index])]
            start: Any = timedelta(0) if column.kind == "hours" else Decimal(0) if column.kind == "money" else 0
            out.append(sum(values, start))
        return out


def _summable(value: Any) -> bool:
    return isinstance(value, int | Decimal | float | timedelta) and not isinstance(value, bool)


@dataclass(frozen=True)
class Hospital:
    """The institution a report is about, as ``[centre]`` names it."""

    code: str
    name: str


@dataclass(frozen=True)
class Masthead:
    """The head of every page and workbook: title, hospital, period, when and by what."""

    zh: str
    en: str
    hospital: Hospital
    start: date
    end: date
    generated_at: datetime
    version: str
    #: further facts of the report: (Chinese, English, value)
    facts: tuple[tuple[str, str, str], ...] = ()

    @property
    def period(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start} – {self.end}"

    @property
    def generated(self) -> str:
        return local_time(self.generated_at)


def masthead(zh: str, en: str, hospital: Hospital | None, start: date, end: date,
             facts: Sequence[tuple[str, str, str]] = (), now: datetime | None = None) -> Masthead:
    """A masthead made now, in the machine's local time (the hospital's: the adapter runs
    beside its HIS), by this version of the adapter."""
    moment = (now or datetime.now()).astimezone()
    return Masthead(zh, en, hospital or Hospital("", ""), start, end, moment, adapter.__version__, tuple(facts))


def zone_text(moment: datetime) -> str:
    """"CST UTC+08:00": the zone's name and its offset."""
    offset = moment.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    name = moment.tzname() or ""
    utc = f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return utc if not name or name.startswith(("UTC", "GMT", "+", "-")) else f"{name} {utc}"


def local_time(moment: datetime) -> str:
    """A moment as people read it: local date and time with the zone."""
    return f"{moment:%Y-%m-%d %H:%M:%S} {zone_text(moment)}"


def duration_text(value: timedelta) -> str:
    """"2 d 06 h 30 m", "6 h 05 m", "45 m", "-3 h 00 m" (early)."""
    sign = "-" if value < timedelta(0) else ""
    minutes = abs(int(value.total_seconds())) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{sign}{days} d {hours:02d} h {minutes:02d} m"
    if hours:
        return f"{sign}{hours} h {minutes:02d} m"
    return f"{sign}{minutes} m"
