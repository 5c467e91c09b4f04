"""The hospital's side: settlements of a period from the HIS, and their totals per clearing
agency x insurance type x clearing type, computed the way the region defines them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

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

    def add(self, row: Settlement) -> None:
        self.medfee_sumamt += row.medfee_sumamt
        self.fund_pay_sumamt += row.fund_pay_sumamt
        self.acct_pay += row.acct_pay
        self.cash_payamt += row.psn_cash_pay
        self.count += 1
        self.refunds += row.refd_setl_flag == "1"

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


def settlement_rows(his_url: str, query: str, period: Period) -> Iterator[dict[str, Any]]:
    """The settlement query's rows for the period, one at a time (a month can hold a million)."""
    engine = create_engine(his_url, future=True)
    bounds = {"start": f"{period.start:%Y-%m-%d} 00:00:00",
              "end": f"{period.end + timedelta(days=1):%Y-%m-%d} 00:00:00"}
    try:
        with engine.connect() as conn:
            for row in conn.execution_options(stream_results=True).execute(text(query), bounds):
                yield dict(row._mapping)
    except SQLAlchemyError as exc:
        raise SourceError(f"cannot read settlements from the HIS: {exc}") from exc
    finally:
        engine.dispose()


def read_settlements(his_url: str, query: str, period: Period, *, mdtrt_ids: Mapping[str, str] | None = None,
                     setl_optins: str = "", progress: Callable[[int], None] | None = None) -> list[HisSettlement]:
    """The period's settlements; ``mdtrt_ids`` maps the HIS's stay keys to the centre's
    mdtrt_id, and ``setl_optins`` is the clearing agency of rows without one. ``progress`` is
    told every _PROGRESS_EVERY rows read."""
    bound = mdtrt_ids or {}
    settlements = []
    for index, row in enumerate(settlement_rows(his_url, query, period), start=1):
        settlements.append(_settlement(row, index, bound, setl_optins))
        if progress is not None and index % _PROGRESS_EVERY == 0:
            progress(_PROGRESS_EVERY)
    if progress is not None:
        progress(len(settlements) % _PROGRESS_EVERY)
    return settlements


#: settlements read between two calls of ``progress``
_PROGRESS_EVERY = 1000


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


def totals_by_group(settlements: Iterable[HisSettlement]) -> dict[Group, Totals]:
    """(setl_optins, insutype, clr_type) -> totals of settlements whose clearing agency is
    already resolved and whose fund_pay_sumamt is already the region's."""
    totals: dict[Group, Totals] = {}
    for row in settlements:
        totals.setdefault((row.setl_optins, row.insutype, row.clr_type), Totals()).add(row)
    return totals
