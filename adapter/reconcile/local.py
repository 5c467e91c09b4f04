"""The hospital's side: settlements of a period from the HIS, and their totals per clearing
agency x insurance type x clearing type, computed the way the region defines them."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, CursorResult, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from adapter.errors import SourceError
from adapter.records import Settlement


@dataclass
class Totals:
    medfee_sumamt: Decimal = Decimal(0)
    fund_pay_sumamt: Decimal = Decimal(0)
    acct_pay: Decimal = Decimal(0)
    cash_payamt: Decimal = Decimal(0)
    count: int = 0
    #: settlements among them with refd_setl_flag 1 (refunds)
    refunds: int = 0

    def add_columns(self, medfee: Sequence[Decimal], fund: Sequence[Decimal], acct: Sequence[Decimal],
                    cash: Sequence[Decimal], refd: Sequence[str]) -> None:
        """Settlements given a column each, each sum taken left to right from the totals so far
        (the very Decimals adding one settlement at a time gives), in C."""
        self.medfee_sumamt = sum(medfee, self.medfee_sumamt)
        self.fund_pay_sumamt = sum(fund, self.fund_pay_sumamt)
        self.acct_pay = sum(acct, self.acct_pay)
        self.cash_payamt = sum(cash, self.cash_payamt)
        self.count += len(medfee)
        self.refunds += refd.count("1")

    def merge(self, other: Totals) -> None:
        """Add another group's totals to these."""
        self.medfee_sumamt += other.medfee_sumamt
        self.fund_pay_sumamt += other.fund_pay_sumamt
        self.acct_pay += other.acct_pay
        self.cash_payamt += other.cash_payamt
        self.count += other.count
        self.refunds += other.refunds

    @property
    def refd_setl_flag(self) -> str:
        """fixmedins_refd_setl_flag (定点医药机构退费结算标志, 0 否 / 1 是): whether the
        institution's figures contain refund settlements."""
        return "1" if self.refunds else "0"


#: (setl_optins, insutype, clr_type): what one 3201 is about
Group = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class HisSettlement(Settlement):
    """A settlement as the settlement query gives it, with what reconciliation also needs."""

    #: 结算经办机构: the clearing agency the centre returned at settlement (empty: the
    #: configured ``[centre] setl_optins``)
    setl_optins: str = ""
    #: the msgid of the settlement transaction (2207/2304) at the centre, when the HIS kept it
    msgid: str = ""


class Columns(NamedTuple):
    """A page of settlements a field at a time, the fields and values of :class:`HisSettlement`
    (without an object a row: most of the time of reading a month went into those), then the
    text of each amount: ``str()`` of its Decimal, always (the kept partitions and the detail
    file want the text; where the HIS wrote the amount that way already it is the HIS's own
    text, so no Decimal is printed again)."""

    setl_id: Sequence[str]
    mdtrt_id: Sequence[str]
    psn_no: Sequence[str]
    insutype: Sequence[str]
    clr_type: Sequence[str]
    setl_time: Sequence[str]
    medfee_sumamt: Sequence[Decimal]
    fund_pay_sumamt: Sequence[Decimal]
    acct_pay: Sequence[Decimal]
    psn_cash_pay: Sequence[Decimal]
    refd_setl_flag: Sequence[str]
    setl_optins: Sequence[str]
    msgid: Sequence[str]
    #: str() of each medfee_sumamt, fund_pay_sumamt, acct_pay and psn_cash_pay
    medfee_text: Sequence[str]
    fund_text: Sequence[str]
    acct_text: Sequence[str]
    cash_text: Sequence[str]

    @classmethod
    def of(cls, page: Sequence[HisSettlement]) -> Columns:
        if not page:
            return cls(*([] for _ in cls._fields))
        fields = list(map(list, zip(*map(_fields_of, page), strict=True)))
        return cls(*fields, *(list(map(str, fields[at])) for at in _AMOUNT_AT))

    def settlements(self) -> list[HisSettlement]:
        return list(map(HisSettlement, *self[:_SETTLEMENT_FIELDS]))

    def taking(self, rows: list[int] | None) -> Columns:
        """The settlements at positions ``rows`` (all of them for None)."""
        return self if rows is None else Columns(*(taken(column, rows) for column in self))


def taken(column: Sequence[Any], rows: list[int] | None) -> Sequence[Any]:
    """The values of ``column`` at ``rows`` (every value for None), picked in C."""
    if rows is None:
        return column
    picked = operator.itemgetter(*rows)(column)
    return [picked] if len(rows) == 1 else list(picked)


#: how many of :class:`Columns`' fields are a settlement's (the amount texts follow)
_SETTLEMENT_FIELDS = 13
#: a settlement's fields in :class:`Columns`' order
_fields_of = operator.attrgetter(*Columns._fields[:_SETTLEMENT_FIELDS])
#: where the amounts are among them (medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay)
_AMOUNT_AT = (6, 7, 8, 9)

#: an amount written as str() of its Decimal writes it: no sign but a minus, no leading zeros,
#: no exponent, and with an integer part of 0 a digit other than 0 among the first 6 decimals,
#: or at most 6 zeros (str() writes an exponent otherwise)
_PLAIN = r"-?(?:[1-9][0-9]*(?:\.[0-9]+)?|0(?:\.(?:0{0,5}[1-9][0-9]*|0{1,6}))?)"
#: a line of a column of amounts that is not written so (looked for in one call)
_NOT_PLAIN_LINE = re.compile(rf"^(?!(?:{_PLAIN})$)", re.M)


def amount_texts(texts: list[str], amounts: list[Decimal]) -> list[str]:
    """str() of each of ``amounts``, which were read from ``texts`` (``Decimal(texts[i])``): the
    texts themselves where every one is written as str() writes its Decimal, found in one call
    over the column. Decimal reads only a number with blanks around it, so a text with a line
    break leaves a line that is not an amount, and the column is printed again."""
    if _NOT_PLAIN_LINE.search("\n".join(texts)) is None:
        return texts
    return list(map(str, amounts))

_CENT = Decimal("0.01")
_MONEY_LIMIT = Decimal(10) ** 14


def money(value: Decimal) -> Decimal:
    """An amount as 数值型 16,2 wants it: two decimals, at most 14 integer digits."""
    amount = value.quantize(_CENT, rounding=ROUND_HALF_UP)
    if not -_MONEY_LIMIT < amount < _MONEY_LIMIT:
        raise SourceError(f"the amount {value} does not fit 16,2 (14 integer digits)")
    return amount


@dataclass(frozen=True)
class Period:
    """Days ``start`` to ``end`` inclusive; ``kind`` says how it was asked for."""

    start: date
    end: date
    kind: str

    @classmethod
    def day(cls, day: date) -> Period:
        return cls(day, day, "day")

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        first = date(year, month, 1)
        following = date(year + month // 12, month % 12 + 1, 1)
        return cls(first, following - timedelta(days=1), "month")

    def __str__(self) -> str:
        return str(self.start) if self.start == self.end else f"{self.start} – {self.end}"


def _bounds(period: Period) -> dict[str, str]:
    return {"start": f"{period.start:%Y-%m-%d} 00:00:00",
            "end": f"{period.end + timedelta(days=1):%Y-%m-%d} 00:00:00"}


def settlement_rows(his_url: str, query: str, period: Period) -> Iterator[dict[str, Any]]:
    """The settlement query's rows for the period, one at a time (a month can hold a million)."""
    for keys, rows in _row_pages(his_url, query, period, PAGE_SIZE):
        for row in rows:
            yield dict(zip(keys, row, strict=True))


def _row_pages(his_url: str, query: str, period: Period, size: int) -> Iterator[tuple[list[str], Sequence[Any]]]:
    """(column names, up to ``size`` rows) of the settlement query, streamed from the HIS. Only
    the HIS's own errors are reported as such: this is the one place its driver is called."""
    engine = create_engine(his_url, future=True)
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(text(query), _bounds(period))
            keys = list(result.keys())
            pages = _cursor_pages(conn, result, size) if _READ_FROM_CURSOR else result.partitions(size)
            for rows in pages:
                yield keys, rows
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot read settlements from the HIS: {exc}") from exc
    finally:
        engine.dispose()


#: whether a page is read straight from the driver's cursor where that gives what SQLAlchemy's
#: paging gives (for tests that compare the two)
_READ_FROM_CURSOR = True


def _cursor_pages(conn: Connection, result: CursorResult[Any], size: int) -> Iterator[Sequence[Any]]:
    """``result.partitions(size)``, the pages taken from the driver's cursor as the driver gives
    them (tuples), without a SQLAlchemy Row made for each (a month's million rows cost about as
    much in Rows as in the driver). Only where the dialect streams without a server-side cursor
    (SQLite): SQLAlchemy then reads the cursor as it is, holding no rows of its own, and a
    textual query's columns have no result processing. Elsewhere (PostgreSQL's server-side
    cursor is read ahead by SQLAlchemy) the pages are SQLAlchemy's. An error of the driver is
    reported as SQLAlchemy reports it."""
    dialect = conn.dialect
    if dialect.supports_server_side_cursors or result.cursor is None:
        yield from result.partitions(size)
        return
    cursor = result.cursor
    error = dialect.loaded_dbapi.Error
    try:
        while rows := cursor.fetchmany(size):
            yield rows
    except error as exc:
        # as SQLAlchemy reports an error of fetching rows (without the statement)
        raise DBAPIError.instance(None, None, exc, error, dialect=dialect) from exc
    finally:
        result.close()


#: settlements read from the HIS at a time, and looked up in the visit table together
PAGE_SIZE = 2000


def settlement_pages(his_url: str, query: str, period: Period, *,
                     mdtrt_ids_of: Callable[[set[str]], Mapping[str, str]] | None = None, setl_optins: str = "",
                     page_size: int = PAGE_SIZE) -> Iterator[list[HisSettlement]]:
    """The period's settlements a page at a time, so a month of a million is never held at
    once. ``mdtrt_ids_of`` maps a page's stay keys to the centre's mdtrt_id (the visits the
    adapter registered), and ``setl_optins`` is the clearing agency of rows without one."""
    for page in settlement_columns(his_url, query, period, mdtrt_ids_of=mdtrt_ids_of, setl_optins=setl_optins,
                                   page_size=page_size):
        yield page.settlements()


def settlement_columns(his_url: str, query: str, period: Period, *,
                       mdtrt_ids_of: Callable[[set[str]], Mapping[str, str]] | None = None, setl_optins: str = "",
                       page_size: int = PAGE_SIZE) -> Iterator[Columns]:
    """:func:`settlement_pages` a field at a time: the same values, without an object a row."""
    index = 0
    parse: _Parser | None = None
    for keys, rows in _row_pages(his_url, query, period, page_size):
        if parse is None:
            parse = _Parser(keys)
        mdtrt_ids = mdtrt_ids_of(parse.stay_keys(rows)) if mdtrt_ids_of is not None else {}
        yield parse.columns(rows, index + 1, mdtrt_ids, setl_optins)
        index += len(rows)


def read_settlements(his_url: str, query: str, period: Period, *, mdtrt_ids: Mapping[str, str] | None = None,
                     setl_optins: str = "", progress: Callable[[int], None] | None = None) -> list[HisSettlement]:
    """The period's settlements in a list; ``mdtrt_ids`` maps the HIS's stay keys to the centre's
    mdtrt_id, and ``setl_optins`` is the clearing agency of rows without one. ``progress`` is
    told of every page read."""
    bound = mdtrt_ids or {}
    settlements: list[HisSettlement] = []
    for page in settlement_pages(his_url, query, period, mdtrt_ids_of=lambda _keys: bound, setl_optins=setl_optins):
        settlements += page
        if progress is not None:
            progress(len(page))
    return settlements


#: the columns every settlement row has (the settlement query's contract)
_REQUIRED = ("setl_id", "mdtrt_id", "psn_no", "insutype", "clr_type", "setl_time", "medfee_sumamt",
             "fund_pay_sumamt", "acct_pay", "psn_cash_pay")


class _Parser:
    """Reads settlement rows by column position, which is most of the time of a month's
    reading saved over a dict per row. A row it cannot read that way goes through
    :func:`_settlement`, the one definition of a settlement row, which reads it the same way or
    names what is wrong with it."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.keys = list(keys)
        where = {name: i for i, name in enumerate(self.keys)}  # a repeated name: the last, as a dict has it
        # Absent columns read as None (from a column of Nones added at the end), as row.get does.
        absent = len(self.keys)
        self.required = (operator.itemgetter(*(where[name] for name in _REQUIRED))
                         if all(name in where for name in _REQUIRED) else None)
        self.optional = operator.itemgetter(*(where.get(name, absent) for name in ("refd_setl_flag", *_OPTIONAL)))
        self.pad = not all(name in where for name in ("refd_setl_flag", *_OPTIONAL))
        self.mdtrt = where.get("mdtrt_id")

    def stay_keys(self, rows: Iterable[Sequence[Any]]) -> set[str]:
        if self.mdtrt is None:
            return set()
        mdtrt = self.mdtrt
        return {str(row[mdtrt]) for row in rows}

    def columns(self, rows: Sequence[Sequence[Any]], first: int, mdtrt_ids: Mapping[str, str],
                setl_optins: str) -> Columns:
        """The settlements of ``rows`` (row ``first`` and on), read a column at a time so that the
        work per row runs in C; a page with a row that does not read that way goes row by row."""
        try:
            return self._columns(rows, mdtrt_ids, setl_optins)
        except (_Unusual, KeyError, IndexError, ArithmeticError, ValueError, TypeError):
            return Columns.of([self(row, first + n, mdtrt_ids, setl_optins) for n, row in enumerate(rows)])

    def _columns(self, rows: Sequence[Sequence[Any]], mdtrt_ids: Mapping[str, str], setl_optins: str) -> Columns:
        if self.required is None or not rows:
            raise _Unusual
        setl, mdtrt, psn, insutype, clr, at, medfee, fund, acct, cash = (
            list(map(str, column)) for column in zip(*map(self.required, rows), strict=True))
        refd, optins, msgid = zip(*map(self.optional, map(_padded, rows) if self.pad else rows), strict=True)
        medfees, funds, accts, cashes = (list(map(Decimal, texts)) for texts in (medfee, fund, acct, cash))
        return Columns(
            setl, [mdtrt_ids.get(m, m) for m in mdtrt] if mdtrt_ids else mdtrt, psn, insutype, clr, at,
            medfees, funds, accts, cashes,
            _refund_flags(refd), _optional(optins, "setl_optins", setl_optins), _optional(msgid, "msgid", ""),
            amount_texts(medfee, medfees), amount_texts(fund, funds), amount_texts(acct, accts),
            amount_texts(cash, cashes),
        )

    def __call__(self, row: Sequence[Any], index: int, mdtrt_ids: Mapping[str, str], setl_optins: str) -> HisSettlement:
        try:
            return self._fast(row, mdtrt_ids, setl_optins)
        except (_Unusual, KeyError, IndexError, ArithmeticError, ValueError, TypeError):
            return _settlement(dict(zip(self.keys, row, strict=True)), index, mdtrt_ids, setl_optins)

    def _fast(self, row: Sequence[Any], mdtrt_ids: Mapping[str, str], setl_optins: str) -> HisSettlement:
        if self.required is None:
            raise _Unusual
        setl, mdtrt, psn, insutype, clr, at, medfee, fund, acct, cash = self.required(row)
        refd, optins, msgid = self.optional((*row, None) if self.pad else row)
        optins = "" if optins is None else str(optins).strip()
        msgid = "" if msgid is None else str(msgid).strip()
        if len(optins) > _OPTIONAL["setl_optins"] or len(msgid) > _OPTIONAL["msgid"]:
            raise _Unusual
        mdtrt = str(mdtrt)
        return HisSettlement(
            str(setl), mdtrt_ids.get(mdtrt, mdtrt) if mdtrt_ids else mdtrt, str(psn), str(insutype), str(clr),
            str(at), Decimal(str(medfee)), Decimal(str(fund)), Decimal(str(acct)), Decimal(str(cash)),
            "1" if str(refd or "0") == "1" else "0", optins or setl_optins, msgid,
        )


def _refund_flags(flags: Sequence[Any]) -> list[str]:
    """refd_setl_flag of a page as :func:`_settlement` reads each: "1", else "0". A column of
    "0" and "1" only (the usual) is taken as it is."""
    if set(flags) <= {"0", "1"}:
        return list(flags)
    return ["1" if str(flag or "0") == "1" else "0" for flag in flags]


def _padded(row: Sequence[Any]) -> tuple[Any, ...]:
    """The row with a None where an absent optional column is read."""
    return (*row, None)


def _optional(values: Sequence[Any], name: str, default: str) -> list[str]:
    """An optional column of a page as :func:`_settlement` reads it (stripped text, or
    ``default`` where there is none)."""
    if values.count(None) == len(values):
        return [default] * len(values)
    texts = ["" if value is None else str(value).strip() for value in values]
    if max(map(len, texts)) > _OPTIONAL[name]:
        raise _Unusual
    return [text or default for text in texts] if default else texts


class _Unusual(Exception):
    """A row the fast path leaves to :func:`_settlement`."""


#: the optional columns and the length the interface gives them (3201 setl_optins 字符型 6;
#: 3202 result msgid 字符型 30)
_OPTIONAL = {"setl_optins": 6, "msgid": 30}


def _settlement(row: dict[str, Any], index: int, mdtrt_ids: Mapping[str, str] | None = None,
                setl_optins: str = "") -> HisSettlement:
    optional = {}
    for name, length in _OPTIONAL.items():
        value = "" if row.get(name) is None else str(row[name]).strip()
        if len(value) > length:
            raise SourceError(f"settlement row {index} of the settlement query: {name} {value!r} is longer than "
                              f"{length} characters")
        optional[name] = value
    optional["setl_optins"] = optional["setl_optins"] or setl_optins
    try:
        mdtrt_id = str(row["mdtrt_id"])
        return HisSettlement(
            setl_id=str(row["setl_id"]), mdtrt_id=mdtrt_ids.get(mdtrt_id, mdtrt_id) if mdtrt_ids else mdtrt_id,
            psn_no=str(row["psn_no"]),
            insutype=str(row["insutype"]), clr_type=str(row["clr_type"]), setl_time=str(row["setl_time"]),
            medfee_sumamt=Decimal(str(row["medfee_sumamt"])), fund_pay_sumamt=Decimal(str(row["fund_pay_sumamt"])),
            acct_pay=Decimal(str(row["acct_pay"])), psn_cash_pay=Decimal(str(row["psn_cash_pay"])),
            refd_setl_flag="1" if str(row.get("refd_setl_flag") or "0") == "1" else "0",
            **optional,
        )
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise SourceError(f"settlement row {index} of the settlement query is unreadable: {exc!r}") from exc
