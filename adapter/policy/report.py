"""The self-inspection report (自查): findings by rule, department and doctor with the money
at stake, the annual-ratio indicators the policies watch, and, where the region has a penalty
discretion table, the estimated exposure band (an estimate, labelled as one)."""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from adapter.html_page import page, table
from adapter.plugin.api import PenaltyBand
from adapter.reconcile.local import Period, settlement_rows
from adapter.state import schema
from adapter.state.store import StateStore

#: (name, numerator column, denominator column, limit) — 000 §2-一.11
INDICATORS = (
    ("costs outside the insurance scope / total (全自费占比)", "fulamt_ownpay_amt", "medfee_sumamt", Decimal("0.05")),
    ("patients' own share / total (个人负担占比)", "own_share", "medfee_sumamt", Decimal("0.30")),
    ("self-paid drugs / drug costs (自费药品占比)", "drug_selfpay_amt", "drug_sumamt", Decimal("0.10")),
)


@dataclass
class Group:
    key: str
    findings: int = 0
    blocked: int = 0
    amount: Decimal = Decimal(0)


@dataclass
class Indicator:
    name: str
    value: Decimal | None
    limit: Decimal
    ok: bool | None
    note: str = ""


@dataclass
class Exposure:
    """An estimate of the fine band for the amount at stake (art. 38), never a decision."""

    label: str
    loss: Decimal
    share: float | None
    band: str
    low: Decimal | None
    high: Decimal | None
    source: str


@dataclass
class SelfInspection:
    start: date
    end: date
    region: str
    by_rule: list[Group] = field(default_factory=list)
    by_dept: list[Group] = field(default_factory=list)
    by_doctor: list[Group] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    exposure: Exposure | None = None

    @property
    def amount(self) -> Decimal:
        return sum((g.amount for g in self.by_rule), Decimal(0))


def build_report(
    store: StateStore, start: date, end: date, *, region: str, descriptions: dict[str, str],
    his_url: str | None = None, settlement_query: str | None = None,
    penalty_table: tuple[PenaltyBand, ...] = (), penalty_source: str = "", annual_fund_payments: Decimal | None = None,
) -> SelfInspection:
    """Findings with a fee time in [start, end] (whole days), and the indicators of the
    settlements in that period where a settlement query is given."""
    report = SelfInspection(start, end, region)
    finding = schema.finding
    upper = datetime.combine(end + timedelta(days=1), datetime.min.time())
    with store.begin() as conn:
        rows = conn.execute(select(finding).where(
            finding.c.fee_time >= datetime.combine(start, datetime.min.time()), finding.c.fee_time < upper,
        ).order_by(finding.c.fee_time, finding.c.id)).all()
    groups: dict[str, dict[str, Group]] = {"rule": {}, "dept": {}, "doctor": {}}
    for row in rows:
        amount = Decimal(row.amount)
        for kind, key in (("rule", row.rule_id), ("dept", row.dept), ("doctor", row.doctor)):
            group = groups[kind].setdefault(key, Group(key))
            group.findings += 1
            group.blocked += row.outcome == "parked"
            group.amount += amount
        report.findings.append({
            "fee_time": row.fee_time.strftime("%Y-%m-%d %H:%M"), "rule": row.rule_id,
            "rule_description": descriptions.get(row.rule_id, ""), "severity": row.severity, "outcome": row.outcome,
            "stay": row.stay_key, "feedetl_sn": row.feedetl_sn, "item": row.his_item_code, "dept": row.dept,
            "doctor": row.doctor, "amount": str(amount), "message": row.message,
        })
    order = lambda g: (-g.amount, g.key)  # noqa: E731 - a sort key
    report.by_rule = sorted(groups["rule"].values(), key=order)
    report.by_dept = sorted(groups["dept"].values(), key=order)
    report.by_doctor = sorted(groups["doctor"].values(), key=order)
    if his_url and settlement_query:
        report.indicators = _indicators(his_url, settlement_query, start, end)
    if penalty_table:
        report.exposure = _exposure(report.amount, penalty_table, penalty_source, annual_fund_payments)
    return report


def _indicators(his_url: str, query: str, start: date, end: date) -> list[Indicator]:
    rows = list(settlement_rows(his_url, query, Period(start, end, "range")))
    totals: dict[str, Decimal] = defaultdict(Decimal)
    columns = set(rows[0]) if rows else set()
    for row in rows:
        sign = Decimal(-1) if str(row.get("refd_setl_flag") or "0") == "1" else Decimal(1)
        for name in ("medfee_sumamt", "fund_pay_sumamt", "fulamt_ownpay_amt", "drug_sumamt", "drug_selfpay_amt"):
            if row.get(name) is not None:
                totals[name] += sign * Decimal(str(row[name]))
    totals["own_share"] = totals["medfee_sumamt"] - totals["fund_pay_sumamt"]
    columns |= {"own_share"} if {"medfee_sumamt", "fund_pay_sumamt"} <= columns else set()
    indicators = []
    for name, numerator, denominator, limit in INDICATORS:
        if not rows or numerator not in columns or denominator not in columns or not totals[denominator]:
            why = "no settlements in the period" if not rows else f"the settlement query has no {numerator}"
            indicators.append(Indicator(name, None, limit, None, why))
            continue
        value = (totals[numerator] / totals[denominator]).quantize(Decimal("0.0001"))
        indicators.append(Indicator(
            name, value, limit, value <= limit,
            f"{totals[numerator]:.2f} of {totals[denominator]:.2f} over {len(rows)} settlements",
        ))
    return indicators


def _exposure(loss: Decimal, table: tuple[PenaltyBand, ...], source: str, annual: Decimal | None) -> Exposure:
    label = "ESTIMATE ONLY — not a decision of the medical-insurance bureau"
    if not annual:
        return Exposure(label, loss, None, "unknown: pass --annual-fund-payments (last year's fund payments)",
                        None, None, source)
    share = float(loss / annual)
    for band in table:
        if band.max_share is None or share < band.max_share:
            low = (loss * Decimal(str(band.min_multiple))).quantize(Decimal("0.01"))
            high = (loss * Decimal(str(band.max_multiple))).quantize(Decimal("0.01"))
            text_band = (f"{band.min_multiple:g}–{band.max_multiple:g}× the loss"
                         + (f" ({band.note})" if band.note else ""))
            return Exposure(label, loss, share, text_band, low, high, source)
    return Exposure(label, loss, share, "outside the table", None, None, source)


# -- output -----------------------------------------------------------------------------------
def as_json(report: SelfInspection) -> dict[str, Any]:
    data = asdict(report)
    data["amount"] = report.amount
    return data


def as_csv(report: SelfInspection) -> str:
    """One row per finding (what a finance clerk filters in a spreadsheet)."""
    out = io.StringIO()
    columns = ["fee_time", "rule", "rule_description", "severity", "outcome", "stay", "feedetl_sn", "item", "dept",
               "doctor", "amount", "message"]
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(report.findings)
    return out.getvalue()


def _group_rows(groups: list[Group]) -> list[list[Any]]:
    return [[g.key, g.findings, g.blocked, f"{g.amount:.2f}"] for g in groups]


def as_html(report: SelfInspection) -> str:
    """One self-contained page (no scripts, no external files)."""
    parts = [
        f"<h1>医保自查报告 Self-inspection {report.start} – {report.end} ({html.escape(report.region)})</h1>",
        f"<p>{len(report.findings)} finding(s), amount at stake {report.amount:.2f} yuan.</p>",
        table(["rule", "findings", "stopped", "amount"], _group_rows(report.by_rule), "By rule"),
        table(["department", "findings", "stopped", "amount"], _group_rows(report.by_dept), "By department"),
        table(["doctor", "findings", "stopped", "amount"], _group_rows(report.by_doctor), "By doctor"),
        table(["indicator", "value", "limit", "within", "basis"],
              [[i.name, "-" if i.value is None else f"{i.value:.2%}", f"{i.limit:.0%}",
                {True: "yes", False: "NO", None: "-"}[i.ok], i.note] for i in report.indicators],
              "Indicators (000 §2-一.11)"),
    ]
    if report.exposure is not None:
        e = report.exposure
        parts.append(table(["loss", "share of fund payments", "band", "fine range", "table"],
                           [[f"{e.loss:.2f}", "-" if e.share is None else f"{e.share:.3%}", e.band,
                             "-" if e.low is None else f"{e.low:.2f} – {e.high:.2f}", e.source]],
                           f"Estimated exposure — {e.label}"))
    parts.append(table(["time", "rule", "outcome", "stay", "line", "item", "department", "doctor", "amount",
                        "what to fix"],
                       [[f["fee_time"], f["rule"], f["outcome"], f["stay"], f["feedetl_sn"], f["item"], f["dept"],
                         f["doctor"], f["amount"], f["message"]] for f in report.findings], "Findings"))
    return page("医保自查报告", parts)


def as_xlsx(report: SelfInspection) -> bytes:
    from openpyxl import Workbook
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    summary = book.active
    assert isinstance(summary, Worksheet)  # a new workbook starts with one worksheet, active
    summary.title = "汇总 Summary"
    summary.append(["period", f"{report.start} – {report.end}"])
    summary.append(["region", report.region])
    summary.append(["findings", len(report.findings)])
    summary.append(["amount at stake", float(report.amount)])
    for title, groups in (("按规则 By rule", report.by_rule), ("按科室 By department", report.by_dept),
                          ("按医生 By doctor", report.by_doctor)):
        sheet = book.create_sheet(title)
        sheet.append(["key", "findings", "stopped", "amount"])
        for g in groups:
            sheet.append([g.key, g.findings, g.blocked, float(g.amount)])
    sheet = book.create_sheet("指标 Indicators")
    sheet.append(["indicator", "value", "limit", "within", "basis"])
    for i in report.indicators:
        sheet.append([i.name, None if i.value is None else float(i.value), float(i.limit),
                      {True: "yes", False: "NO", None: "-"}[i.ok], i.note])
    if report.exposure is not None:
        e = report.exposure
        sheet = book.create_sheet("估算 Exposure (estimate)")
        sheet.append([e.label])
        sheet.append(["loss", float(e.loss)])
        sheet.append(["band", e.band])
        sheet.append(["fine range", "-" if e.low is None else f"{e.low:.2f} – {e.high:.2f}"])
        sheet.append(["table", e.source])
    sheet = book.create_sheet("明细 Findings")
    columns = list(report.findings[0]) if report.findings else ["fee_time", "rule", "message"]
    sheet.append(columns)
    for row in report.findings:
        sheet.append([row[c] for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
