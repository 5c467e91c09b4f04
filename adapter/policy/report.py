"""The self-inspection report (自查): findings by rule, department, doctor and operator with
the money at stake, the annual-ratio indicators the policies watch, and, where the region has a
penalty discretion table, the estimated exposure band (an estimate, labelled as one).

Each finding names who answers for its line as the HIS gave them (the ordering doctor, the
billing and executing department, the operator; :mod:`adapter.reports.responsibility`), read
from the ledger's copy of the HIS row; :func:`grouped` is the report grouped by one of them."""

from __future__ import annotations

import csv
import io
import json
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from adapter.html_page import render
from adapter.plugin.api import PenaltyBand
from adapter.plugin.transactions import TransactionSpec
from adapter.reconcile.local import Period, settlement_rows
from adapter.reports import responsibility
from adapter.reports.layout import Coded, Column, Hospital, Masthead, Table, masthead
from adapter.reports.responsibility import PARTIES, Party, Responsible
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
    #: the rule id; a department's, doctor's or operator's code, else its name ("": not named)
    key: str
    findings: int = 0
    blocked: int = 0
    amount: Decimal = Decimal(0)
    name: str = ""
    #: rule id -> findings
    rules: dict[str, int] = field(default_factory=dict)


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
    #: empty where the HIS names no operator
    by_operator: list[Group] = field(default_factory=list)
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
    transactions: Mapping[str, TransactionSpec] | None = None,
) -> SelfInspection:
    """Findings with a fee time in [start, end] (whole days), and the indicators of the
    settlements in that period where a settlement query is given. ``transactions`` (the
    region's) say where a record's fee lines and the HIS's columns are, for who answers for
    each line."""
    report = SelfInspection(start, end, region, descriptions=dict(descriptions))
    finding, record = schema.finding, schema.record
    upper = datetime.combine(end + timedelta(days=1), datetime.min.time())
    with store.begin() as conn:
        rows = conn.execute(
            select(finding, record.c.infno.label("record_infno"), record.c.raw.label("record_raw"))
            .select_from(finding.outerjoin(record, record.c.id == finding.c.line_id))
            .where(finding.c.fee_time >= datetime.combine(start, datetime.min.time()), finding.c.fee_time < upper)
            .order_by(finding.c.fee_time, finding.c.id)
        ).all()
    groups: dict[str, dict[str, Group]] = {"rule": {}, "dept": {}, "doctor": {}, "operator": {}}
    raws: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        amount = Decimal(row.amount)
        who = _responsible(row, transactions or {}, raws)
        for kind, party in (("rule", Party(row.rule_id)), ("dept", who.department), ("doctor", who.doctor),
                            ("operator", who.operator)):
            group = groups[kind].setdefault(party.key, Group(party.key, name=party.name))
            group.name = group.name or party.name
            group.findings += 1
            group.blocked += row.outcome == "parked"
            group.amount += amount
            group.rules[row.rule_id] = group.rules.get(row.rule_id, 0) + 1
        report.findings.append({
            "fee_time": row.fee_time.strftime("%Y-%m-%d %H:%M"), "rule": row.rule_id,
            "rule_description": descriptions.get(row.rule_id, ""), "severity": row.severity, "outcome": row.outcome,
            "stay": row.stay_key, "feedetl_sn": row.feedetl_sn, "item": row.his_item_code,
            "dept": who.department.name or who.department.code, "doctor": who.doctor.name or who.doctor.code,
            "amount": str(amount), "message": row.message,
            "dept_code": who.department.code, "doctor_code": who.doctor.code,
            "executing_dept_code": who.executing.code, "executing_dept": who.executing.name,
            "operator_code": who.operator.code, "operator": who.operator.name,
        })
    order = lambda g: (not g.key, -g.amount, g.key)  # noqa: E731 - a sort key
    report.by_rule = sorted(groups["rule"].values(), key=order)
    report.by_dept = sorted(groups["dept"].values(), key=order)
    report.by_doctor = sorted(groups["doctor"].values(), key=order)
    if any(key for key in groups["operator"]):
        report.by_operator = sorted(groups["operator"].values(), key=order)
    if his_url and settlement_query:
        report.indicators = _indicators(his_url, settlement_query, start, end)
    if penalty_table:
        report.exposure = _exposure(report.amount, penalty_table, penalty_source, annual_fund_payments)
    return report


def _responsible(row: Any, transactions: Mapping[str, TransactionSpec], raws: dict[int, Mapping[str, Any]]
                 ) -> Responsible:
    """Who answers for a finding's line, from the HIS row the ledger keeps for its record; a
    finding whose record is gone (or unreadable) keeps the department and doctor it stored."""
    found = None
    if row.record_raw is not None:
        if row.line_id not in raws:
            try:
                parsed = json.loads(row.record_raw)
            except ValueError:
                parsed = None
            raws[row.line_id] = parsed if isinstance(parsed, Mapping) else {}
        found = responsibility.of_fee_line(transactions.get(row.record_infno), raws[row.line_id], row.feedetl_sn)
    if found is None:
        return Responsible(doctor=Party(name=row.doctor), department=Party(name=row.dept))
    if not found.doctor.key and not found.department.key:  # a HIS query naming neither: what was stored
        return Responsible(Party(name=row.doctor), Party(name=row.dept), found.executing, found.operator)
    return found


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


#: the CSV's columns, one row per finding; who answers for the line last (added after the others)
CSV_COLUMNS = ["fee_time", "rule", "rule_description", "severity", "outcome", "stay", "feedetl_sn", "item", "dept",
               "doctor", "amount", "message", "dept_code", "doctor_code", "executing_dept_code", "executing_dept",
               "operator_code", "operator"]


def as_csv(report: SelfInspection) -> str:
    """One row per finding (what a finance clerk filters in a spreadsheet)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(report.findings)
    return out.getvalue()


def _rule(report: SelfInspection, rule_id: str) -> Coded:
    return Coded(rule_id, RULE_NAMES.get(rule_id) or report.descriptions.get(rule_id, ""))


def _rule_text(rule_id: str) -> str:
    """"重复收费 duplicate-charge" (a plugin's rule by its id alone)."""
    return f"{RULE_NAMES.get(rule_id, '')} {rule_id}".strip()


def _split(name: str) -> tuple[str, str]:
    """"costs outside ... / total (全自费占比)" -> ("全自费占比", "costs outside ... / total")."""
    match = re.fullmatch(r"(.*) \((.*)\)", name)
    return (match.group(2), match.group(1)) if match else (name, "")


_WITHIN = {True: Coded("是", "within"), False: Coded("否", "OVER"), None: Coded("-", "unknown")}
_GROUP = (Column("发现数", "Findings", "count", total=True), Column("已拦截", "Stopped", "count", total=True),
          Column("涉及金额", "Amount at stake", "money", total=True))
#: the findings' keys of each party (code, name), and the finding's role of ``--by``
_PARTY_KEYS = {"department": ("dept_code", "dept"), "doctor": ("doctor_code", "doctor"),
               "executing": ("executing_dept_code", "executing_dept"), "operator": ("operator_code", "operator")}


def _party(finding: dict[str, Any], role: str) -> Party:
    code, name = (finding.get(key) or "" for key in _PARTY_KEYS[role])
    return Party(code, "" if name == code else name)


def _by_party(zh: str, en: str, key: str, groups: list[Group]) -> Table:
    return Table(key, f"按{zh} By {en.lower()}", f"按{zh}", f"By {en.lower()}", (Column(zh, en, "code"), *_GROUP),
                 [[Party(g.key if g.key != g.name else "", g.name).coded(), g.findings, g.blocked, g.amount]
                  for g in groups])


def tables(report: SelfInspection) -> list[Table]:
    """By rule, department, doctor (and operator, where the HIS names one), the indicators,
    the exposure estimate, the findings."""
    out = [
        Table("by-rule", "按规则 By rule", "按规则", "By rule",
              (Column("规则", "Rule", "code"), Column("说明", "What it finds", wrap=True), *_GROUP),
              [[_rule(report, g.key), report.descriptions.get(g.key, ""), g.findings, g.blocked, g.amount]
               for g in report.by_rule]),
        _by_party("科室", "Department", "by-dept", report.by_dept),
        _by_party("医生", "Doctor", "by-doctor", report.by_doctor),
    ]
    if report.by_operator:
        out.append(_by_party("经办人", "Operator", "by-operator", report.by_operator))
    out.append(Table(
        "indicators", "指标 Indicators", "指标", "Indicators (000 §2-一.11)",
        (Column("指标", "Indicator", wrap=True), Column("数值", "Value", "percent"),
         Column("上限", "Limit", "percent"), Column("是否达标", "Within the limit", "code"),
         Column("依据", "Basis", wrap=True)),
        [[" · ".join(_split(i.name)).strip(" ·"), i.value, i.limit, _WITHIN[i.ok], i.note]
         for i in report.indicators],
        marks=["bad" if i.ok is False else "" for i in report.indicators],
    ))
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
    out.append(_findings(report, report.findings))
    return out


def _findings(report: SelfInspection, findings: list[dict[str, Any]], by: str | None = None) -> Table:
    """The findings, one row each, with who answers for the line: the ordering doctor and the
    billing department always, the executing department and the operator where the HIS names
    them; grouped ``by`` one of them, that one comes first."""
    roles = ["department", "doctor"] + [role for role in ("executing", "operator")
                                        if any(_party(f, role).key for f in findings)]
    party_columns = {"department": Column("科室", "Department (billing)", "code"),
                     "doctor": Column("医生", "Doctor (ordering)", "code"),
                     "executing": Column("执行科室", "Department (executing)", "code"),
                     "operator": Column("经办人", "Operator", "code")}
    first = [by] if by else []
    rest = [role for role in roles if role not in first]
    columns = (
        *(party_columns[role] for role in first),
        Column("费用时间", "Fee time", "datetime"), Column("规则", "Rule", "code"),
        Column("严重程度", "Severity", "code"), Column("处理", "Outcome", "code"), Column("就诊", "Stay", "id"),
        Column("明细流水号", "Line", "id"), Column("项目", "Item", "id"),
        *(party_columns[role] for role in rest),
        Column("金额", "Amount", "money", total=True), Column("如何整改", "What to fix", wrap=True),
    )
    rows = [[*(_party(f, role).coded("") for role in first),
             datetime.strptime(f["fee_time"], "%Y-%m-%d %H:%M"), _rule(report, f["rule"]),
             Coded(f["severity"], SEVERITIES.get(f["severity"], "")),
             Coded(f["outcome"], OUTCOMES.get(f["outcome"], "")),
             f["stay"], f["feedetl_sn"], f["item"], *(_party(f, role).coded("") for role in rest),
             Decimal(f["amount"]), f["message"]]
            for f in findings]
    zh, en = PARTIES[by] if by else ("", "")
    title = (f"明细（按{zh}）", f"Findings by {en.lower()}") if by else ("明细", "Findings")
    return Table("findings", "明细 Findings", *title, columns, rows,
                 marks=["bad" if f["outcome"] == "parked" else "" for f in findings])


def _head(report: SelfInspection, hospital: Hospital | None, by: str | None = None) -> Masthead:
    facts = [("统筹区域", "Region", report.region),
             ("发现数", "Findings", f"{len(report.findings):,}"),
             ("涉及金额", "Amount at stake", f"{report.amount:,.2f} 元 yuan")]
    if by:
        zh, en = PARTIES[by]
        facts.append(("分组", "Grouped by", f"按{zh} by {en.lower()}"))
    return masthead("医保自查报告", "Self-inspection", hospital, report.start, report.end, facts)


def as_html(report: SelfInspection, hospital: Hospital | None = None) -> str:
    """One self-contained page (no scripts, no external files)."""
    return render("self_inspection.html", _head(report, hospital), tables=tables(report), report=report, by=None)


def as_xlsx(report: SelfInspection, hospital: Hospital | None = None) -> bytes:
    """汇总 Summary (whose, when, how much) first, then a sheet per table."""
    return workbook(_head(report, hospital), tables(report), about_sheet="汇总 Summary", about_first=True)


# -- grouped by who answers for the lines -----------------------------------------------------------
#: what each grouping counts a finding for (the note under the grouped table)
_GROUPING_NOTES = {
    "doctor": "每条发现计入开具该项目的医生（开单医生 bilg_dr）。Each finding counts for the doctor who ordered "
              "the line (bilg_dr).",
    "department": "每条发现计入开单科室（bilg_dept）。Each finding counts for the department that billed the line "
                  "(bilg_dept).",
    "operator": "每条发现计入录入该费用的经办人（opter）。Each finding counts for the operator who entered the "
                "charge (opter).",
}


@dataclass
class Grouped:
    """The report grouped by one party: a share each, and the findings in that order."""

    report: SelfInspection
    by: str
    groups: list[responsibility.Share]
    findings: list[dict[str, Any]]

    @property
    def amount(self) -> Decimal:
        return self.report.amount


def grouped(report: SelfInspection, by: str) -> Grouped:
    """``by``: doctor, department or operator (:data:`responsibility.PARTIES`)."""
    if by not in PARTIES:
        raise ValueError(f"cannot group by {by!r} (by {', '.join(PARTIES)})")
    shares = responsibility.shares((_party(f, by), Decimal(f["amount"]), f["rule"], f["outcome"] == "parked")
                                   for f in report.findings)
    rank = {share.party.key: index for index, share in enumerate(shares)}
    findings = sorted(report.findings, key=lambda f: rank[_party(f, by).key])  # stable: by time within a party
    return Grouped(report, by, shares, findings)


def grouped_tables(view: Grouped) -> list[Table]:
    """One row per party (findings, stopped, amount at stake, its share, by which rules), then
    the findings of each party together."""
    report = view.report
    main = responsibility.share_table(
        f"by-{view.by}", view.by, view.groups, _rule_text,
        count=("发现数", "Findings"), amount=("涉及金额", "Amount at stake"), kinds=("规则", "Rules"), blocked=True,
        note=_GROUPING_NOTES[view.by])
    return [main, _findings(report, view.findings, view.by)]


def grouped_json(view: Grouped) -> dict[str, Any]:
    report = view.report
    return {
        "by": view.by, "start": report.start, "end": report.end, "region": report.region,
        "findings": len(report.findings), "amount": report.amount,
        "groups": [{"code": g.party.code, "name": g.party.name, "findings": g.count, "blocked": g.blocked,
                    "amount": g.amount, "share": responsibility.share_of(g.amount, report.amount),
                    "rules": dict(g.kinds)} for g in view.groups],
    }


def grouped_csv(view: Grouped) -> str:
    """One row per party; ``rules`` as rule:count;rule:count."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["by", "code", "name", "findings", "blocked", "amount", "share", "rules"])
    for g in view.groups:
        share = responsibility.share_of(g.amount, view.amount)
        writer.writerow([view.by, g.party.code, g.party.name, g.count, g.blocked, g.amount,
                         "" if share is None else share,
                         ";".join(f"{rule}:{count}" for rule, count in sorted(g.kinds.items()))])
    return out.getvalue()


def grouped_html(view: Grouped, hospital: Hospital | None = None) -> str:
    return render("self_inspection.html", _head(view.report, hospital, view.by), tables=grouped_tables(view),
                  report=view.report, by=PARTIES[view.by])


def grouped_xlsx(view: Grouped, hospital: Hospital | None = None) -> bytes:
    return workbook(_head(view.report, hospital, view.by), grouped_tables(view), about_sheet="汇总 Summary",
                    about_first=True)
