"""Reconciliation reports finance can close on: CSV, an XLSX workbook (the pairs, the daily
totals and the differences, each a sheet with numbers as numbers, a frozen header, an
autofilter and SUM totals), one self-contained HTML page with a small chart of daily totals,
and JSON.

Insurance type, clearing type, result, refund flag and field codes are shown with their labels
from the region's interface edition: pass ``label`` (``Edition.label``) from where the region
is known; CSV and XLSX carry the label in a column of its own, HTML and the terminal beside
the code. The workbook and the page name the hospital, the period, when they were made and by
which version.

Where the settlement query names who answers for a settlement (the stay's doctor and
department, the cashier who settled it: ``responsibility.SETTLEMENT_COLUMNS``), each difference
carries them (``responsible``, from :func:`responsible_for`), and ``by`` adds the differences
grouped by one of them."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.html_page import render
from adapter.reconcile.local import Period, settlement_rows
from adapter.reconcile.run import RESULTS, Difference, PairResult, ReconRun
from adapter.reports import responsibility
from adapter.reports.layout import Coded, Column, Hospital, Masthead, Table, masthead
from adapter.reports.responsibility import PARTIES, SETTLEMENT_COLUMNS, Responsible
from adapter.reports.workbook import workbook

#: column labels as finance uses them
LABELS = {
    "setl_optins": "结算经办机构", "insutype": "险种", "clr_type": "清算类别", "medfee_sumamt": "医疗费总额",
    "fund_pay_sumamt": "基金支付总额", "acct_pay": "个人账户支付", "cash_payamt": "现金支付", "count": "结算笔数",
    "stmt_rslt": "对账结果", "insutype_name": "险种名称", "clr_type_name": "清算类别名称",
    "stmt_rslt_name": "对账结果名称", "refd_setl_flag": "退费结算标志",
    "description": "结果说明", "setl_id": "结算ID", "mdtrt_id": "就诊ID", "psn_no": "人员编号", "kind": "差异类型",
    "detail": "差异说明", "field_name": "字段", "hospital": "医院", "centre": "中心", "delta": "差额(中心-医院)",
    "centre_msgid": "结算报文ID(中心)", "setl_msgid": "结算报文ID(HIS)", "our_msgid": "本机报文ID(4101)",
}
KINDS = {"only_centre": "仅中心有", "only_hospital": "仅医院有", "amount": "金额不一致",
         "refund_flag": "退费标志不一致", "duplicate": "重复"}
_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "cash_payamt", "count")
#: the pairs as CSV carries them: each code's label in the column after it
_PAIR_SPLIT = ("setl_optins", "insutype", "insutype_name", "clr_type", "clr_type_name", *_AMOUNTS, "stmt_rslt",
               "stmt_rslt_name", "description")
_DIFF = ("setl_id", "mdtrt_id", "psn_no", "kind", "detail", "field_name", "hospital", "centre", "delta", "centre_msgid",
         "setl_msgid", "our_msgid")
#: the CSV's differences: the group's insurance and clearing type first, its agency and the
#: labels of its insurance and clearing type last
_DIFF_HEADER_SPLIT = [LABELS["insutype"], LABELS["clr_type"], *(LABELS[c] for c in _DIFF), LABELS["setl_optins"],
                      LABELS["insutype_name"], LABELS["clr_type_name"]]

#: a code's label: (dictionary, code) -> label, the code itself when unknown (``Edition.label``)
Label = Callable[[str, str], str]
#: setl_id -> who answers for the settlement
Responsibles = Mapping[str, Responsible]
_NOBODY = Responsible()
#: the parties a difference carries, in their columns' order
_ROLES = ("doctor", "department", "operator")


def settlement_responsibility(his_url: str, query: str, period: Period,
                              setl_ids: Iterable[str] | None = None) -> dict[str, Responsible]:
    """setl_id -> the doctor, department and operator the settlement query names for it (its
    optional columns), for ``setl_ids`` only (None: every settlement of the period); a
    settlement the query names no one for is left out."""
    wanted = None if setl_ids is None else set(setl_ids)
    found: dict[str, Responsible] = {}
    for row in settlement_rows(his_url, query, period):
        setl_id = str(row.get("setl_id") or "")
        if wanted is not None and setl_id not in wanted:
            continue
        who = responsibility.from_columns(row, SETTLEMENT_COLUMNS)
        if any(who.party(role).key for role in _ROLES):
            found[setl_id] = who
    return found


def responsible_for(run: ReconRun, his_url: str, query: str) -> dict[str, Responsible]:
    """Who answers for each settlement the run's differences name (the HIS is read again only
    when there are differences)."""
    ids = {d.setl_id for p in run.pairs for d in p.differences if d.setl_id}
    return settlement_responsibility(his_url, query, run.period, ids) if ids else {}


def _who(responsible: Responsibles, diff: Difference) -> Responsible:
    return responsible.get(diff.setl_id, _NOBODY) if diff.setl_id else _NOBODY


def at_stake(diff: Difference) -> Decimal:
    """The money a difference puts in question: the amount that differs, or the whole medical
    fee of a settlement only one side has; nothing for a refund flag or a duplicate."""
    value = {"amount": diff.delta, "only_hospital": diff.hospital, "only_centre": diff.centre}.get(diff.kind)
    amount = _amount(value) if value is not None else None
    return abs(amount) if amount is not None else Decimal(0)


def _no_label(dictionary: str, value: str) -> str:
    return value


def _name(label: Label, dictionary: str, value: str) -> str:
    """The code's label, or "" when the edition has none; a result code falls back to the
    meanings the regions write (RESULTS)."""
    named = label(dictionary, value)
    if named != value:
        return named
    return RESULTS.get(value, "") if dictionary == "stmt_rslt" else ""


def coded(label: Label, dictionary: str, value: str) -> str:
    """The code with its label beside it: "310 职工基本医疗保险"."""
    return f"{value} {_name(label, dictionary, value)}".strip()


# -- CSV ----------------------------------------------------------------------------------------
def _pair_row(pair: PairResult, label: Label) -> list[Any]:
    return [pair.setl_optins, pair.insutype, _name(label, "insutype", pair.insutype), pair.clr_type,
            _name(label, "clr_type", pair.clr_type), *(pair.local[k] for k in _AMOUNTS), pair.stmt_rslt,
            _name(label, "stmt_rslt", pair.stmt_rslt), pair.description]


def _diff_row(pair: PairResult, diff: Difference, label: Label) -> list[Any]:
    values = {**diff.__dict__, "kind": f"{diff.kind} {KINDS.get(diff.kind, '')}".strip()}
    return [pair.insutype, pair.clr_type, *(values[k] for k in _DIFF), pair.setl_optins,
            _name(label, "insutype", pair.insutype), _name(label, "clr_type", pair.clr_type)]


#: the CSV's columns of who answers for a difference (after the others)
_WHO_HEADER = ["医生编码", "医生", "科室编码", "科室", "经办人编码", "经办人"]


def as_csv(run: ReconRun, label: Label = _no_label, responsible: Responsibles | None = None,
           by: str | None = None) -> str:
    """The pairs, then the differences, each with a header row of Chinese labels; with
    ``responsible``, each difference's doctor, department and operator after its columns, and
    with ``by`` the differences grouped by one of them last."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"对账 {run.period}", "对平" if run.balanced else "不平"])
    writer.writerow([LABELS[c] for c in _PAIR_SPLIT])
    writer.writerows(_pair_row(p, label) for p in run.pairs)
    writer.writerow([])
    who = responsible if responsible else None
    writer.writerow(_DIFF_HEADER_SPLIT + (_WHO_HEADER if who is not None else []))
    for p in run.pairs:
        for d in p.differences:
            parties = _who(who, d) if who is not None else None
            writer.writerow(_diff_row(p, d, label) + (
                [] if parties is None else [v for role in _ROLES for v in (parties.party(role).code,
                                                                           parties.party(role).name)]))
    if by:
        zh, _ = PARTIES[by]
        writer.writerow([])
        writer.writerow([f"{zh}编码", zh, "差异数", "涉及金额", "差异类型"])
        for g in _shares(run, responsible or {}, by):
            writer.writerow([g.party.code, g.party.name, g.count, g.amount,
                             ";".join(f"{kind}:{count}" for kind, count in sorted(g.kinds.items()))])
    return out.getvalue()


def _shares(run: ReconRun, responsible: Responsibles, by: str) -> list[responsibility.Share]:
    if by not in PARTIES:
        raise ValueError(f"cannot group by {by!r} (by {', '.join(PARTIES)})")
    return responsibility.shares((_who(responsible, d).party(by), at_stake(d), d.kind, False)
                                 for p in run.pairs for d in p.differences)


def as_json(run: ReconRun, responsible: Responsibles | None = None, by: str | None = None) -> dict[str, Any]:
    """The run as ``reconcile --json`` prints it: with ``responsible``, who answers for each
    settlement that differs; with ``by``, the differences grouped by one of them."""
    data = run.to_json()
    if responsible:
        data["responsible"] = {setl_id: {role: {"code": who.party(role).code, "name": who.party(role).name}
                                         for role in _ROLES} for setl_id, who in sorted(responsible.items())}
    if by:
        data["by"] = by
        data["groups"] = [{"code": g.party.code, "name": g.party.name, "differences": g.count, "amount": str(g.amount),
                           "kinds": dict(g.kinds)} for g in _shares(run, responsible or {}, by)]
    return data


# -- the tables of the workbook and the page ------------------------------------------------------
def _code(label: Label, dictionary: str, value: str) -> Coded:
    return Coded(value, _name(label, dictionary, value))


def _agency(code: str, home: str) -> Coded:
    """A clearing agency (an area code: no dictionary names it) as home or other area."""
    if not home:
        return Coded(code)
    return Coded(code, "本地 home area" if code == home else "异地 other area")


def _amount(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if str(value).strip() not in ("", "null") else None
    except InvalidOperation:
        return None


_PAIR_COLUMNS = (
    Column("结算经办机构", "Clearing agency", "code"), Column("险种", "Insurance type", "code"),
    Column("清算类别", "Clearing type", "code"), Column("医疗费总额", "Medical fees", "money", total=True),
    Column("基金支付总额", "Fund payments", "money", total=True),
    Column("个人账户支付", "Personal account", "money", total=True),
    Column("现金支付", "Cash", "money", total=True), Column("结算笔数", "Settlements", "count", total=True),
    Column("对账结果", "Result (3201)", "code"), Column("差异", "Differences", "count", total=True),
    Column("结果说明", "The centre's description", wrap=True),
)
_DAILY_COLUMNS = (
    Column("日期", "Day", "date"), Column("结算笔数", "Settlements", "count", total=True),
    Column("医疗费总额", "Medical fees", "money", total=True),
    Column("基金支付总额", "Fund payments", "money", total=True),
)
_DIFF_COLUMNS = (
    Column("险种", "Insurance type", "code"), Column("清算类别", "Clearing type", "code"),
    Column("结算ID", "Settlement ID", "id"), Column("差异类型", "Kind", "code"), Column("字段", "Field", "code"),
    Column("医院", "HIS", "money"), Column("中心", "Centre", "money"),
    Column("差额(中心-医院)", "Centre − HIS", "money", total=True), Column("差异说明", "What differs", wrap=True),
    Column("就诊ID", "Visit ID", "id"), Column("人员编号", "Person", "id"),
    Column("结算报文ID(中心)", "Settlement msgid (centre)", "id"),
    Column("结算报文ID(HIS)", "Settlement msgid (HIS)", "id"),
    Column("本机报文ID(4101)", "Our msgid (4101)", "id"), Column("结算经办机构", "Clearing agency", "code"),
)


def _zh_detail(diff: Difference) -> str:
    """What differs, in Chinese, from the difference's fields (the English is the run's)."""
    field = LABELS.get(diff.field_name, diff.field_name)
    if diff.kind == "amount":
        return f"{field}不一致：医院 {diff.hospital}，中心 {diff.centre}，差额 {diff.delta}"
    if diff.kind == "refund_flag":
        return f"退费结算标志不一致：医院 {diff.hospital}，中心 {diff.centre}"
    if diff.kind == "only_centre":
        return "中心有，医院无"
    if diff.kind == "only_hospital":
        return "医院有，中心无"
    if diff.kind == "duplicate":
        return "医院重复" if "in the HIS" in diff.detail else "中心重复"
    return KINDS.get(diff.kind, diff.kind)


def _side(diff: Difference, value: str, label: Label) -> Any:
    """The HIS's or the centre's value: an amount, or the refund flag with its label."""
    if diff.field_name == "refd_setl_flag":
        return _code(label, "refd_setl_flag", value) if value else None
    return _amount(value)


#: the differences' columns of who answers for them (after the others)
_WHO_COLUMNS = (Column("医生", "Doctor", "code"), Column("科室", "Department", "code"),
                Column("经办人", "Operator", "code"))
_GROUPING_NOTE = ("每处差异计入其结算的{zh}；涉及金额为差额，或仅一方有的结算的医疗费总额。Each difference counts for "
                  "its settlement's {en}; the amount at stake is the difference, or the medical fees of a "
                  "settlement only one side has.")


def tables(run: ReconRun, label: Label = _no_label, home: str = "", responsible: Responsibles | None = None,
           by: str | None = None) -> dict[str, Table]:
    """The pairs, the daily totals and the differences; ``home`` is the institution's own
    clearing agency (``[centre] setl_optins``), to tell home from other areas. ``responsible``
    adds each difference's doctor, department and operator; ``by`` the differences grouped by
    one of them (``grouped``)."""
    pairs = Table(
        "pairs", "汇总", "按结算经办机构、险种与清算类别", "By clearing agency, insurance type and clearing type",
        _PAIR_COLUMNS,
        [[_agency(p.setl_optins, home), _code(label, "insutype", p.insutype), _code(label, "clr_type", p.clr_type),
          *(_amount(p.local[k]) for k in _AMOUNTS[:-1]), int(p.local["count"]),
          _code(label, "stmt_rslt", p.stmt_rslt), len(p.differences), p.description] for p in run.pairs],
        note="医院一方的金额；对账结果为中心 3201 的答复。The HIS's figures; the result is the centre's 3201 answer.",
        marks=["" if p.balanced else "bad" for p in run.pairs],
    )
    daily = Table(
        "daily", "每日", "每日结算", "Daily settlements (HIS)", _DAILY_COLUMNS,
        [[date.fromisoformat(day), int(values[0]), _amount(values[1]), _amount(values[2])]
         for day, values in run.daily.items()],
    )
    who = responsible if responsible else None
    differences = Table(
        "differences", "差异明细", "差异明细", "Differences (3202)",
        _DIFF_COLUMNS + (_WHO_COLUMNS if who is not None else ()),
        [[_code(label, "insutype", p.insutype), _code(label, "clr_type", p.clr_type), d.setl_id,
          Coded(d.kind, KINDS.get(d.kind, "")),
          Coded(d.field_name, LABELS.get(d.field_name, "")) if d.field_name else None,
          _side(d, d.hospital, label), _side(d, d.centre, label), _amount(d.delta), f"{_zh_detail(d)} · {d.detail}",
          d.mdtrt_id, d.psn_no, d.centre_msgid, d.setl_msgid, d.our_msgid, _agency(p.setl_optins, home),
          *((_who(who, d).party(role).coded("") for role in _ROLES) if who is not None else ())]
         for p in run.pairs for d in p.differences],
        note="每处差异只列一次，列在其所属的险种与清算类别下。Each difference once, under the pair it belongs to.",
    )
    out = {"pairs": pairs, "daily": daily, "differences": differences}
    if by:
        zh, en = PARTIES[by]
        out["grouped"] = responsibility.share_table(
            f"differences-by-{by}", by, _shares(run, responsible or {}, by),
            lambda kind: f"{KINDS.get(kind, '')} {kind}".strip(), count=("差异数", "Differences"),
            amount=("涉及金额", "Amount at stake"), kinds=("差异类型", "Kinds"), blocked=False,
            note=_GROUPING_NOTE.format(zh=zh, en=en.lower()))
    return out


def _head(run: ReconRun, hospital: Hospital | None) -> Masthead:
    count = sum(len(p.differences) for p in run.pairs)
    verdict = "对平 balanced" if run.balanced else f"不平 not balanced ({count} 处差异 difference(s))"
    facts = [("对账结果", "Result", verdict)]
    if run.id is not None:
        facts.append(("对账批次", "Run", str(run.id)))
    return masthead("医保对账", "Reconciliation", hospital, run.period.start, run.period.end, facts)


def as_xlsx(run: ReconRun, label: Label = _no_label, hospital: Hospital | None = None, home: str = "",
            responsible: Responsibles | None = None, by: str | None = None) -> bytes:
    """汇总 (the pairs), 每日 (daily totals), 差异明细 (the differences), with ``by`` the
    differences grouped (按医生...), and 说明 (whose, when)."""
    return workbook(_head(run, hospital), list(tables(run, label, home, responsible, by).values()))


def _chart(daily: dict[str, list[str]]) -> dict[str, Any]:
    """Bars of the daily medical-fee totals for the page's inline SVG (no scripts, no files)."""
    values = [Decimal(v[1]) for v in daily.values()]
    top = max(values, default=Decimal(0)) or Decimal(1)
    left, step, bar, base = 30, 24, 18, 150
    bars = [{"x": left + index * step, "y": f"{base - float(value / top) * 140:.1f}",
             "h": f"{float(value / top) * 140:.1f}", "day": day, "label": day[8:10], "value": value}
            for index, (day, value) in enumerate(zip(daily, values, strict=True))]
    return {"bars": bars, "top": top, "left": left, "bar": bar, "base": base, "height": base + 22,
            "width": left + step * len(values) + 10}


def as_html(run: ReconRun, label: Label = _no_label, hospital: Hospital | None = None, home: str = "",
            responsible: Responsibles | None = None, by: str | None = None) -> str:
    return render("reconciliation.html", _head(run, hospital), tables=tables(run, label, home, responsible, by),
                  chart=_chart(run.daily), balanced=run.balanced,
                  differences=sum(len(p.differences) for p in run.pairs))
