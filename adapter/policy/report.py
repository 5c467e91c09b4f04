"""The self-inspection report (自查): findings by rule, department and doctor with the money
at stake, the annual-ratio indicators the policies watch, and, where the region has a penalty
discretion table, the estimated exposure band (an estimate, labelled as one)."""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from adapter.html_page import render
from adapter.plugin.api import PenaltyBand
from adapter.reconcile.local import Period, settlement_rows
from adapter.reports.layout import Coded, Column, Hospital, Masthead, Table, masthead
from adapter.reports.workbook import workbook
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
    #: rule id -> what the rule finds (its description), for the rules the report names
    descriptions: dict[str, str] = field(default_factory=dict)

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
    report = SelfInspection(start, end, region, descriptions=dict(descriptions))
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
#: the built-in rules' Chinese names, as the policy documents call the behaviour (a rule a
#: plugin adds is shown with its description)
RULE_NAMES = {
    "duplicate-charge": "重复收费", "over-standard-price": "超标准收费",
    "refund-exceeds-original": "退费超过原收费", "dispensing-days": "超量开药（超天数）",
    "drugs-per-prescription": "处方药品数超限", "split-hospitalisation": "分解住院",
    "same-day-outpatient-visits": "同日多次门诊", "bed-hanging": "挂床住院",
    "excluded-cause": "基金不予支付的伤害", "item-substitution": "串换项目",
}
SEVERITIES = {"block": "拦截 block", "warn": "提示 warn"}
OUTCOMES = {"parked": "已拦截 stopped", "reported": "已上传并报告 sent and reported",
            "late": "上传后发现 found after upload"}


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


def _rule(report: SelfInspection, rule_id: str) -> Coded:
    return Coded(rule_id, RULE_NAMES.get(rule_id) or report.descriptions.get(rule_id, ""))


def _split(name: str) -> tuple[str, str]:
    """"costs outside ... / total (全自费占比)" -> ("全自费占比", "costs outside ... / total")."""
    match = re.fullmatch(r"(.*) \((.*)\)", name)
    return (match.group(2), match.group(1)) if match else (name, "")


_WITHIN = {True: Coded("是", "within"), False: Coded("否", "OVER"), None: Coded("-", "unknown")}
_GROUP = (Column("发现数", "Findings", "count", total=True), Column("已拦截", "Stopped", "count", total=True),
          Column("涉及金额", "Amount at stake", "money", total=True))


def tables(report: SelfInspection) -> list[Table]:
    """By rule, department and doctor, the indicators, the exposure estimate, the findings."""
    out = [
        Table("by-rule", "按规则 By rule", "按规则", "By rule",
              (Column("规则", "Rule", "code"), Column("说明", "What it finds", wrap=True), *_GROUP),
              [[_rule(report, g.key), report.descriptions.get(g.key, ""), g.findings, g.blocked, g.amount]
               for g in report.by_rule]),
        Table("by-dept", "按科室 By department", "按科室", "By department", (Column("科室", "Department"), *_GROUP),
              [[g.key, g.findings, g.blocked, g.amount] for g in report.by_dept]),
        Table("by-doctor", "按医生 By doctor", "按医生", "By doctor", (Column("医生", "Doctor"), *_GROUP),
              [[g.key, g.findings, g.blocked, g.amount] for g in report.by_doctor]),
        Table("indicators", "指标 Indicators", "指标", "Indicators (000 §2-一.11)",
              (Column("指标", "Indicator", wrap=True), Column("数值", "Value", "percent"),
               Column("上限", "Limit", "percent"), Column("是否达标", "Within the limit", "code"),
               Column("依据", "Basis", wrap=True)),
              [[" · ".join(_split(i.name)).strip(" ·"), i.value, i.limit, _WITHIN[i.ok], i.note]
               for i in report.indicators],
              marks=["bad" if i.ok is False else "" for i in report.indicators]),
    ]
    if report.exposure is not None:
        e = report.exposure
        out.append(Table(
            "exposure", "估算 Exposure (estimate)", "处罚风险估算", "Estimated exposure",
            (Column("性质", "Nature", wrap=True), Column("损失", "Loss", "money"),
             Column("占上年基金支付", "Share of last year's fund payments", "percent"),
             Column("档次", "Band", wrap=True), Column("罚款下限", "Fine from", "money"),
             Column("罚款上限", "Fine up to", "money"), Column("依据", "Table", wrap=True)),
            [[f"仅为估算，不是医保部门的处理决定 · {e.label}", e.loss,
              None if e.share is None else Decimal(str(round(e.share, 8))), e.band, e.low, e.high, e.source]],
        ))
    out.append(Table(
        "findings", "明细 Findings", "明细", "Findings",
        (Column("费用时间", "Fee time", "datetime"), Column("规则", "Rule", "code"),
         Column("严重程度", "Severity", "code"), Column("处理", "Outcome", "code"), Column("就诊", "Stay", "id"),
         Column("明细流水号", "Line", "id"), Column("项目", "Item", "id"), Column("科室", "Department"),
         Column("医生", "Doctor"), Column("金额", "Amount", "money", total=True),
         Column("如何整改", "What to fix", wrap=True)),
        [[datetime.strptime(f["fee_time"], "%Y-%m-%d %H:%M"), _rule(report, f["rule"]),
          Coded(f["severity"], SEVERITIES.get(f["severity"], "")), Coded(f["outcome"], OUTCOMES.get(f["outcome"], "")),
          f["stay"], f["feedetl_sn"], f["item"], f["dept"], f["doctor"], Decimal(f["amount"]), f["message"]]
         for f in report.findings],
        marks=["bad" if f["outcome"] == "parked" else "" for f in report.findings],
    ))
    return out


def _head(report: SelfInspection, hospital: Hospital | None) -> Masthead:
    return masthead("医保自查报告", "Self-inspection", hospital, report.start, report.end, [
        ("统筹区域", "Region", report.region),
        ("发现数", "Findings", f"{len(report.findings):,}"),
        ("涉及金额", "Amount at stake", f"{report.amount:,.2f} 元 yuan"),
    ])


def as_html(report: SelfInspection, hospital: Hospital | None = None) -> str:
    """One self-contained page (no scripts, no external files)."""
    return render("self_inspection.html", _head(report, hospital), tables=tables(report), report=report)


def as_xlsx(report: SelfInspection, hospital: Hospital | None = None) -> bytes:
    """汇总 Summary (whose, when, how much) first, then a sheet per table."""
    return workbook(_head(report, hospital), tables(report), about_sheet="汇总 Summary", about_first=True)
