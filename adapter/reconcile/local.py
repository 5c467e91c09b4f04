"""The hospital's side: settlements of a period from the HIS, and their totals per insurance
type x clearing type, computed the way the region defines them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
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

    def add(self, row: Settlement, fund: Decimal) -> None:
        self.medfee_sumamt += row.medfee_sumamt
        self.fund_pay_sumamt += fund
        self.acct_pay += row.acct_pay
        self.cash_payamt += row.psn_cash_pay
        self.count += 1


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


def read_settlements(his_url: str, query: str, period: Period) -> list[Settlement]:
    return [_settlement(row, index) for index, row in enumerate(settlement_rows(his_url, query, period), start=1)]


def _settlement(row: dict[str, Any], index: int) -> Settlement:
    try:
        return Settlement(
            setl_id=str(row["setl_id"]), mdtrt_id=str(row["mdtrt_id"]), psn_no=str(row["psn_no"]),
            insutype=str(row["insutype"]), clr_type=str(row["clr_type"]), setl_time=str(row["setl_time"]),
            medfee_sumamt=Decimal(str(row["medfee_sumamt"])), fund_pay_sumamt=Decimal(str(row["fund_pay_sumamt"])),
            acct_pay=Decimal(str(row["acct_pay"])), psn_cash_pay=Decimal(str(row["psn_cash_pay"])),
            refd_setl_flag="1" if str(row.get("refd_setl_flag") or "0") == "1" else "0",
        )
    except (KeyError, ArithmeticError, ValueError) as exc:
        raise SourceError(f"settlement row {index} of the settlement query is unreadable: {exc!r}") from exc


def totals_by_pair(
    settlements: Iterable[Settlement], fund_of: Callable[[Settlement], Decimal] | None = None
) -> dict[tuple[str, str], Totals]:
    """(insutype, clr_type) -> totals; ``fund_of`` is the region's fund_pay_sumamt formula."""
    totals: dict[tuple[str, str], Totals] = {}
    for row in settlements:
        fund = fund_of(row) if fund_of is not None else row.fund_pay_sumamt
        totals.setdefault((row.insutype, row.clr_type), Totals()).add(row, fund)
    return totals
