"""The global budget view of a year (总额预算执行情况), month by month and per insurance type:
the budget (``[budget]``), the fund payments of the settlements (``[his] settlement_query``, the
figure the region reconciles: ``Dialect.fund_pay_sumamt``), what the centre should advance at the
region's share (``RegionProfile.budget_advance_share``, 94% by default) and the reserve it
withholds for the year-end assessment, the 双通道 deductions the agency names, spending against the
budget to date, the year-end position projected straight-line from the months to date, and how an
overspend is shared by fund and hospital under the region's rule (``RegionProfile.budget_sharing``).

How each figure is reached, so that finance can follow it:

- **advance** (预拨): the share of the month's fund payments up to the month's budget; the
  **reserve** (预留) is the rest of that, and what the month spent above its budget is not
  advanced (超预算未拨付) but left to the year-end settlement;
- **双通道** (dual channel): drugs the hospital's patients bought at a designated pharmacy on its
  external prescription are in their settlements' fund payments, and the agency deducts them
  from the hospital's transfer to pay the pharmacy. The settlement query's optional
  ``dual_channel_amt`` column names them per settlement (the interface tables carry no such
  field: the HIS keeps what the agency's settlement data says); the **expected transfer** is the
  advance less them, the figure to match against the bank;
- **to date**: the months of the year up to the report's day (``as_of``, by default yesterday),
  the month it falls in counted by its days so far; the budget to date is the budgets of those
  months (that month's in proportion);
- **projection**: spending to date / months to date x 12; the **position** is the projection less
  the annual budget (above 0: an overspend, below: a surplus), and an overspend is shared band by
  band (:meth:`adapter.plugin.budget.OverspendSharing.split`), per insurance type, since each is a
  fund of its own.

A settlement's month is that of its setl_time; a refund (refd_setl_flag 1) counts with the sign
the HIS gives its amounts. Settlements of an insurance type without a budget are listed apart.
Everything here is computed from what it is given: nothing is read (the command reads the HIS)."""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from adapter.errors import SourceError
from adapter.plugin.api import OverspendSharing
from adapter.plugin.budget import Shares
from adapter.records import Settlement
from adapter.reports.layout import Coded, Column, Hospital, Masthead, Table, masthead

_CENT = Decimal("0.01")
_ZERO = Decimal(0)
_TWELVE = Decimal(12)
#: the settlement query's optional column of the 双通道 deduction
DUAL_CHANNEL_COLUMN = "dual_channel_amt"


def money(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BudgetSettlement:
    """What the budget view needs of one settlement."""

    setl_id: str
    mdtrt_id: str
    insutype: str
    setl_time: str
    #: fund_pay_sumamt as the region reconciles it
    fund_pay: Decimal
    #: the 双通道 deduction the agency names for it (0: none)
    dual_channel: Decimal = _ZERO

    @property
    def day(self) -> date:
        return date.fromisoformat(self.setl_time[:10])


def _amount(row: Mapping[str, Any], name: str, index: int, required: bool = True) -> Decimal:
    value = row.get(name) if not required else row[name]
    if value is None or value == "":
        if required:
            raise SourceError(f"settlement row {index} of the settlement query has no {name}")
        return _ZERO
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise SourceError(f"settlement row {index} of the settlement query: {name} {value!r} is not an amount")
    return amount


def settlement_of(row: Mapping[str, Any], index: int, fund_of: Callable[[Settlement], Decimal] | None = None,
                  mdtrt_ids: Mapping[str, str] | None = None) -> BudgetSettlement:
    """One row of the settlement query (the columns reconciliation reads, and optionally
    ``dual_channel_amt``); ``fund_of`` is the region's reading of its fund payment, and
    ``mdtrt_ids`` maps the HIS's stay keys to the centre's mdtrt_id (as reconciliation does)."""
    try:
        stay = str(row["mdtrt_id"])
        settlement = Settlement(
            setl_id=str(row["setl_id"]), mdtrt_id=(mdtrt_ids or {}).get(stay, stay), psn_no=str(row["psn_no"]),
            insutype=str(row["insutype"]).strip(), clr_type=str(row["clr_type"]), setl_time=str(row["setl_time"]),
            medfee_sumamt=_amount(row, "medfee_sumamt", index), fund_pay_sumamt=_amount(row, "fund_pay_sumamt", index),
            acct_pay=_amount(row, "acct_pay", index), psn_cash_pay=_amount(row, "psn_cash_pay", index),
            refd_setl_flag="1" if str(row.get("refd_setl_flag") or "0") == "1" else "0",
        )
        day = date.fromisoformat(settlement.setl_time[:10])
    except KeyError as exc:
        raise SourceError(f"settlement row {index} of the settlement query has no column {exc}") from None
    except ValueError:
        raise SourceError(f"settlement row {index} of the settlement query: setl_time {row['setl_time']!r} is not "
                          "a date and time") from None
    fund = fund_of(settlement) if fund_of is not None else settlement.fund_pay_sumamt
    return BudgetSettlement(settlement.setl_id, settlement.mdtrt_id, settlement.insutype,
                            f"{day:%Y-%m-%d}{settlement.setl_time[10:19]}", fund,
                            _amount(row, DUAL_CHANNEL_COLUMN, index, required=False))


def months_to_date(year: int, day: date) -> Decimal:
    """Months of ``year`` up to the end of ``day``: whole months, and the month ``day`` falls in
    by its days so far (0 before the year, 12 after it)."""
    if day < date(year, 1, 1):
        return _ZERO
    if day >= date(year, 12, 31):
        return _TWELVE
    days = calendar.monthrange(year, day.month)[1]
    return Decimal(day.month - 1) + Decimal(day.day) / Decimal(days)


def _month_end(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


@dataclass(frozen=True)
class Position:
    """Where a budget stands at a moment, and the year-end projected straight-line from it."""

    months: Decimal
    budget_to_date: Decimal
    spending_to_date: Decimal
    annual_budget: Decimal
    #: spending to date / months x 12 (None before the year has begun)
    projected: Decimal | None
    #: the projected overspend as the region's rule shares it
    shares: Shares

    @property
    def variance(self) -> Decimal:
        """Spending to date less the budget to date (above 0: over)."""
        return self.spending_to_date - self.budget_to_date

    @property
    def usage(self) -> Decimal | None:
        """Spending to date as a share of the budget to date (to 0.01%)."""
        return _share(self.spending_to_date, self.budget_to_date)

    @property
    def position(self) -> Decimal | None:
        """The projected spending less the annual budget: above 0 an overspend, below a surplus."""
        return None if self.projected is None else self.projected - self.annual_budget

    @property
    def position_share(self) -> Decimal | None:
        position = self.position
        return None if position is None else _share(position, self.annual_budget)


def _share(part: Decimal, whole: Decimal) -> Decimal | None:
    return (part / whole).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if whole else None


def position(months: Decimal, budgets: Mapping[int, Decimal], spending: Decimal,
             sharing: OverspendSharing) -> Position:
    """The position after ``months`` (as :func:`months_to_date` counts them) with ``spending``
    so far, against the monthly ``budgets`` (month -> amount)."""
    whole = int(months)
    to_date = sum((budgets.get(m, _ZERO) for m in range(1, whole + 1)), _ZERO)
    if whole < 12:
        to_date += budgets.get(whole + 1, _ZERO) * (months - whole)
    annual = money(sum((budgets.get(m, _ZERO) for m in range(1, 13)), _ZERO))
    projected = money(spending / months * _TWELVE) if months > 0 else None
    over = projected - annual if projected is not None else _ZERO
    return Position(months, money(to_date), money(spending), annual, projected, sharing.split(over, annual))


@dataclass(frozen=True)
class MonthLine:
    """One month of one insurance type. The figures after the budget are None for a month that
    has not begun by the report's day."""

    month: int
    insutype: str
    budget: Decimal
    settlements: int = 0
    spending: Decimal | None = None
    advance: Decimal | None = None
    reserve: Decimal | None = None
    #: what the month spent above its budget: not advanced, left to the year-end settlement
    over_budget: Decimal | None = None
    dual_channel: Decimal | None = None
    dual_channel_settlements: int = 0
    #: the advance less the 双通道 deductions: what the centre should transfer
    transfer: Decimal | None = None
    #: at the end of the month (or the report's day, in its month)
    position: Position | None = None


@dataclass(frozen=True)
class YearLine:
    """An insurance type over the year to date."""

    insutype: str
    position: Position
    settlements: int
    advance: Decimal
    reserve: Decimal
    over_budget: Decimal
    dual_channel: Decimal
    transfer: Decimal


@dataclass(frozen=True)
class Unbudgeted:
    """Settlements of an insurance type the configuration gives no budget for."""

    insutype: str
    settlements: int
    spending: Decimal
    dual_channel: Decimal


@dataclass
class BudgetReport:
    year: int
    #: the last day counted
    as_of: date
    region: str
    advance_share: Decimal
    sharing: OverspendSharing
    #: insutype -> its label in the region's edition ("" where it has none)
    labels: dict[str, str]
    months: Decimal
    lines: list[MonthLine] = field(default_factory=list)
    year_lines: list[YearLine] = field(default_factory=list)
    unbudgeted: list[Unbudgeted] = field(default_factory=list)
    #: the settlements with a 双通道 deduction, in time order
    dual_channel: list[BudgetSettlement] = field(default_factory=list)
    now: datetime | None = None

    @property
    def advance_text(self) -> str:
        return percent_text(self.advance_share)

    def total(self, name: str) -> Decimal:
        """A figure of the year lines summed over the insurance types (``advance``,
        ``dual_channel``...; ``annual_budget``, ``spending_to_date``, ``projected``, ``position``,
        ``fund_share``, ``hospital_share`` of their positions)."""
        out = _ZERO
        for line in self.year_lines:
            p = line.position
            value = {"annual_budget": p.annual_budget, "budget_to_date": p.budget_to_date,
                     "spending_to_date": p.spending_to_date, "projected": p.projected, "position": p.position,
                     "fund_share": p.shares.fund, "hospital_share": p.shares.hospital}.get(name)
            out += (value if value is not None else _ZERO) if name in _POSITION_FIGURES else getattr(line, name)
        return money(out)


_POSITION_FIGURES = frozenset({"annual_budget", "budget_to_date", "spending_to_date", "projected", "position",
                               "fund_share", "hospital_share"})


def build_report(year: int, budgets: Mapping[int, Mapping[str, Decimal]], settlements: Iterable[BudgetSettlement],
                 *, as_of: date, advance_share: Decimal, sharing: OverspendSharing, region: str = "",
                 labels: Mapping[str, str] | None = None, now: datetime | None = None) -> BudgetReport:
    """The year's view. ``budgets``: month (1-12) -> insutype -> the month's budget;
    ``settlements``: those of the year (any after ``as_of`` or outside the year are left out)."""
    if not Decimal(0) <= advance_share <= Decimal(1):
        raise ValueError(f"advance share {advance_share} is not between 0 and 1")
    first, last = date(year, 1, 1), min(as_of, date(year, 12, 31))
    budgeted = sorted({insutype for month in budgets.values() for insutype in month})
    spent: dict[tuple[int, str], list[BudgetSettlement]] = {}
    dual: list[BudgetSettlement] = []
    outside: dict[str, list[BudgetSettlement]] = {}
    for item in settlements:
        if not first <= item.day <= last:
            continue
        if item.insutype in budgeted:
            spent.setdefault((item.day.month, item.insutype), []).append(item)
        else:
            outside.setdefault(item.insutype, []).append(item)
        if item.dual_channel:
            dual.append(item)
    months = months_to_date(year, as_of)
    report = BudgetReport(year, last, region, advance_share, sharing,
                          {insutype: (labels or {}).get(insutype, "") for insutype in
                           sorted({*budgeted, *outside})}, months, now=now)
    for insutype in budgeted:
        by_month = {m: money(budgets.get(m, {}).get(insutype, _ZERO)) for m in range(1, 13)}
        cumulative = _ZERO
        lines: list[MonthLine] = []
        for month in range(1, 13):
            budget = by_month[month]
            if date(year, month, 1) > as_of:
                lines.append(MonthLine(month, insutype, budget))
                continue
            items = spent.get((month, insutype), [])
            spending = money(sum((i.fund_pay for i in items), _ZERO))
            cumulative += spending
            base = min(spending, budget)
            advance = money(base * advance_share)
            deducted = [i for i in items if i.dual_channel]
            dual_channel = money(sum((i.dual_channel for i in deducted), _ZERO))
            at = months_to_date(year, min(as_of, _month_end(year, month)))
            lines.append(MonthLine(month, insutype, budget, len(items), spending, advance, base - advance,
                                   spending - base, dual_channel, len(deducted), advance - dual_channel,
                                   position(at, by_month, cumulative, sharing)))
        report.lines.extend(lines)
        begun = [line for line in lines if line.spending is not None]
        report.year_lines.append(YearLine(
            insutype, position(months, by_month, cumulative, sharing), sum(line.settlements for line in begun),
            *(money(sum((getattr(line, name) for line in begun), _ZERO))
              for name in ("advance", "reserve", "over_budget", "dual_channel", "transfer"))))
    report.lines.sort(key=lambda line: (line.month, line.insutype))
    report.unbudgeted = [Unbudgeted(insutype, len(items), money(sum((i.fund_pay for i in items), _ZERO)),
                                    money(sum((i.dual_channel for i in items), _ZERO)))
                         for insutype, items in sorted(outside.items())]
    report.dual_channel = sorted(dual, key=lambda i: (i.setl_time, i.setl_id))
    return report


# -- tables -------------------------------------------------------------------------------------
def _insutype(report: BudgetReport, code: str) -> Coded:
    return Coded(code, report.labels.get(code, ""))


def _month(report: BudgetReport, month: int) -> str:
    return f"{report.year:04d}-{month:02d}"


_MONEY = ("budget", "spending", "advance", "reserve", "over_budget", "dual_channel", "transfer")


def percent_text(share: Decimal) -> str:
    """0.94 -> "94%", 0.955 -> "95.5%"."""
    return f"{share * 100:.2f}".rstrip("0").rstrip(".") + "%"


def _flow_columns(advance_share: Decimal) -> tuple[Column, ...]:
    share, reserve = percent_text(advance_share)[:-1], percent_text(1 - advance_share)[:-1]
    return (
        Column("月度预算", "Budget", "money", total=True),
        Column("基金支付", "Fund payments", "money", total=True),
        Column(f"应预拨({share}%)", f"Advance ({share}%)", "money", total=True),
        Column(f"预留({reserve}%)", f"Reserve withheld ({reserve}%)", "money", total=True),
        Column("超预算未拨付", "Over budget, not advanced", "money", total=True),
        Column("双通道扣款", "Dual-channel deductions", "money", total=True),
        Column("应到账", "Expected transfer", "money", total=True),
    )


def _position_cells(p: Position | None) -> list[Any]:
    if p is None:
        return [None] * 10
    return [p.months.quantize(_CENT), p.budget_to_date, p.spending_to_date, p.variance, p.usage, p.projected,
            p.position, p.position_share, p.shares.fund, p.shares.hospital]


#: a position's columns (the totals row sums the amounts, not the months or the shares)
_POSITION_COLUMNS = (
    Column("已过月数", "Months to date", "money"),
    Column("累计预算", "Budget to date", "money", total=True),
    Column("累计基金支付", "Spending to date", "money", total=True),
    Column("累计超(+)/结余(-)", "Over (+) or under (-) to date", "money", total=True),
    Column("预算使用率", "Budget used", "percent"),
    Column("预计全年支付", "Projected for the year", "money", total=True),
    Column("预计年终超支(+)/结余(-)", "Projected year-end over (+) or under (-)", "money", total=True),
    Column("预计超支率", "Projected over (+) or under (-), share of budget", "percent"),
    Column("基金分担", "Fund bears", "money", total=True),
    Column("医院承担", "Hospital bears", "money", total=True),
)


def _over(value: Decimal | None) -> str:
    """The row mark of a figure that is over its budget."""
    return "bad" if value is not None and value > 0 else ""


def tables(report: BudgetReport) -> list[Table]:
    """By month; by month and insurance type; to date and projected, month by month; the year by
    insurance type; the 双通道 deductions; and the insurance types without a budget."""
    flows = _flow_columns(report.advance_share)
    by_month: list[list[Any]] = []
    for month in range(1, 13):
        lines = [line for line in report.lines if line.month == month]
        begun = [line for line in lines if line.spending is not None]
        by_month.append([_month(report, month), money(sum((line.budget for line in lines), _ZERO)),
                         *((money(sum((getattr(line, name) for line in begun), _ZERO)) if begun else None)
                           for name in _MONEY[1:])])
    monthly = Table(
        "by-month", "按月", "按月（各险种合计）", "By month (all insurance types)",
        (Column("月份", "Month", "id"), *flows), by_month,
        note="应预拨 = 预拨比例 × min(当月基金支付, 当月预算)；预留为其余部分，年终考核后清算；"
             "超出当月预算部分当月不拨付。应到账 = 应预拨 − 双通道扣款。 "
             "Advance = the share x the month's fund payments up to its budget; the "
             "reserve is the rest of those, settled after the year-end assessment; what a month spends above its "
             "budget is not advanced. Expected transfer = advance less the 双通道 deductions.",
        marks=[_over(row[5]) for row in by_month],
    )
    per = Table(
        "by-month-insutype", "按月按险种", "按月按险种", "By month and insurance type",
        (Column("月份", "Month", "id"), Column("险种", "Insurance type", "code"),
         Column("结算笔数", "Settlements", "count", total=True), *flows[:5],
         Column("双通道笔数", "Dual-channel settlements", "count", total=True), *flows[5:]),
        [[_month(report, line.month), _insutype(report, line.insutype),
          line.settlements if line.spending is not None else None, line.budget, line.spending, line.advance,
          line.reserve, line.over_budget, line.dual_channel_settlements if line.spending is not None else None,
          line.dual_channel, line.transfer] for line in report.lines],
        marks=[_over(line.over_budget) for line in report.lines],
    )
    positioned = [line for line in report.lines if line.position is not None]
    to_date = Table(
        "to-date", "累计与预测", "累计执行与年终预测", "To date, and the year-end projected",
        (Column("月份", "Month", "id"), Column("险种", "Insurance type", "code"),
         *(Column(c.zh, c.en, c.kind) for c in _POSITION_COLUMNS)),
        [[_month(report, line.month), _insutype(report, line.insutype), *_position_cells(line.position)]
         for line in positioned],
        note="每月月末（统计日所在月截至统计日）的累计数；预计全年支付 = 累计基金支付 ÷ 已过月数 × 12"
             "（直线推算）；超支按地区分担规则在基金与医院间分担。 "
             "Each month's figures to its end (to the report's day in its month); "
             "projected = spending to date / months to date x 12 (straight line); an overspend is shared by fund and "
             "hospital under the region's rule.",
        marks=[_over(line.position.position if line.position else None) for line in positioned],
    )
    year = Table(
        "year", "年度汇总", "年度汇总（截至统计日）", "The year to date, by insurance type",
        (Column("险种", "Insurance type", "code"), Column("年度预算", "Annual budget", "money", total=True),
         *_POSITION_COLUMNS, Column("结算笔数", "Settlements", "count", total=True), *flows[2:]),
        [[_insutype(report, y.insutype), y.position.annual_budget, *_position_cells(y.position), y.settlements,
          y.advance, y.reserve, y.over_budget, y.dual_channel, y.transfer] for y in report.year_lines],
        note=f"超支分担 overspend shared: {report.sharing.describe()}；依据 from: {report.sharing.source}",
        marks=[_over(y.position.position) for y in report.year_lines],
    )
    dual = Table(
        "dual-channel", "双通道扣款", "双通道扣款明细", "Dual-channel deductions, settlement by settlement",
        (Column("月份", "Month", "id"), Column("结算ID", "setl_id", "id"), Column("就诊ID", "mdtrt_id", "id"),
         Column("险种", "Insurance type", "code"), Column("结算时间", "Settled", "datetime"),
         Column("基金支付", "Fund payment", "money", total=True),
         Column("双通道扣款", "Deducted", "money", total=True)),
        [[item.setl_time[:7], item.setl_id, item.mdtrt_id, _insutype(report, item.insutype),
          _moment(item.setl_time), item.fund_pay, item.dual_channel] for item in report.dual_channel],
        note="患者持本院外配处方在定点药店购买的双通道药品，计入其结算的基金支付，"
             "由经办机构从拨付本院的款项中扣除并支付药店；金额取自结算查询的 dual_channel_amt 列。 "
             "Drugs the hospital's patients bought at a designated pharmacy on "
             "its external prescription: in their fund payments, deducted by the agency from the hospital's "
             "transfer; from the settlement query's dual_channel_amt column.",
    )
    out = [monthly, per, to_date, year, dual]
    if report.unbudgeted:
        out.append(Table(
            "unbudgeted", "预算外险种", "未配置预算的险种", "Insurance types without a budget",
            (Column("险种", "Insurance type", "code"), Column("结算笔数", "Settlements", "count", total=True),
             Column("基金支付", "Fund payments", "money", total=True),
             Column("双通道扣款", "Dual-channel deductions", "money", total=True)),
            [[_insutype(report, u.insutype), u.settlements, u.spending, u.dual_channel] for u in report.unbudgeted],
            note="这些险种的结算未计入上表；如属总额预算，请在 [budget] 中配置其预算。 Not counted above; give their "
                 "budget in [budget] if the global budget covers them.",
            marks=["bad"] * len(report.unbudgeted),
        ))
    return out


def _moment(setl_time: str) -> datetime | date:
    try:
        return datetime.fromisoformat(setl_time)
    except ValueError:
        return date.fromisoformat(setl_time[:10])


def _head(report: BudgetReport, hospital: Hospital | None) -> Masthead:
    return masthead("医保总额预算执行情况", "Global budget", hospital, date(report.year, 1, 1),
                    date(report.year, 12, 31), [
        ("统筹区域", "Region", report.region),
        ("统计截至", "Settlements up to", f"{report.as_of:%Y-%m-%d}"),
        ("已过月数", "Months to date", f"{report.months:.2f}"),
        ("预拨比例", "Advance share", percent_text(report.advance_share)),
        ("超支分担", "Overspend shared", report.sharing.describe()),
        ("分担依据", "Sharing rule from", report.sharing.source),
        ("年度预算", "Annual budget", f"{report.total('annual_budget'):,.2f}"),
        ("累计基金支付", "Fund payments to date", f"{report.total('spending_to_date'):,.2f}"),
        ("双通道扣款", "Dual-channel deductions", f"{report.total('dual_channel'):,.2f}"),
    ], now=report.now)


def as_html(report: BudgetReport, hospital: Hospital | None = None) -> str:
    from adapter.html_page import render

    return render("budget.html", _head(report, hospital), tables=tables(report), report=report)


def as_xlsx(report: BudgetReport, hospital: Hospital | None = None) -> bytes:
    from adapter.reports.workbook import workbook

    return workbook(_head(report, hospital), tables(report))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return value


def as_csv(report: BudgetReport) -> str:
    """The month x insurance type lines, then the year's lines (codes and their labels in columns
    of their own, amounts as exact decimals)."""
    out = io.StringIO()
    writer = csv.writer(out)
    built = tables(report)
    for index, table in enumerate((built[1], built[3])):
        if index:
            writer.writerow([])
        header: list[str] = []
        for column in table.columns:
            header.append(f"{column.zh} {column.en}")
            if column.kind == "code":
                header.append(f"{column.zh}名称 {column.en} (label)")
        writer.writerow(header)
        for row in table.rows:
            cells: list[Any] = []
            for column, value in zip(table.columns, row, strict=True):
                if column.kind == "code":
                    cells += [value.code, value.label] if isinstance(value, Coded) else ["", ""]
                else:
                    cells.append(_plain(value))
            writer.writerow(cells)
    return out.getvalue()


def _position_json(p: Position | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"months": p.months.quantize(Decimal("0.0001")), "budget_to_date": p.budget_to_date,
            "spending_to_date": p.spending_to_date, "variance": p.variance, "annual_budget": p.annual_budget,
            "projected": p.projected, "position": p.position, "fund_share": p.shares.fund,
            "hospital_share": p.shares.hospital}


def as_json(report: BudgetReport) -> dict[str, Any]:
    """The whole report; amounts as Decimal (write them with ``adapter.jsonio``: exact numbers)."""
    return {
        "year": report.year, "as_of": report.as_of.isoformat(), "region": report.region,
        "advance_share": report.advance_share, "months": report.months.quantize(Decimal("0.0001")),
        "sharing": {"source": report.sharing.source, "text": report.sharing.describe(),
                    "bands": [{"up_to": b.up_to, "fund_share": b.fund_share} for b in report.sharing.bands]},
        "labels": report.labels,
        "lines": [{"month": _month(report, line.month), "insutype": line.insutype, "budget": line.budget,
                   "settlements": line.settlements, "spending": line.spending, "advance": line.advance,
                   "reserve": line.reserve, "over_budget": line.over_budget, "dual_channel": line.dual_channel,
                   "dual_channel_settlements": line.dual_channel_settlements, "transfer": line.transfer,
                   "position": _position_json(line.position)} for line in report.lines],
        "year_lines": [{"insutype": y.insutype, "settlements": y.settlements, "advance": y.advance,
                        "reserve": y.reserve, "over_budget": y.over_budget, "dual_channel": y.dual_channel,
                        "transfer": y.transfer, "position": _position_json(y.position)} for y in report.year_lines],
        "unbudgeted": [{"insutype": u.insutype, "settlements": u.settlements, "spending": u.spending,
                        "dual_channel": u.dual_channel} for u in report.unbudgeted],
        "dual_channel": [{"setl_id": i.setl_id, "mdtrt_id": i.mdtrt_id, "insutype": i.insutype,
                          "setl_time": i.setl_time, "fund_pay": i.fund_pay, "dual_channel": i.dual_channel}
                         for i in report.dual_channel],
        "totals": {name: report.total(name) for name in ("annual_budget", "budget_to_date", "spending_to_date",
                                                         "projected", "position", "fund_share", "hospital_share",
                                                         "advance", "reserve", "over_budget", "dual_channel",
                                                         "transfer")},
    }
