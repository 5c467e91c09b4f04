"""Reconciliation reports finance can close on: CSV, XLSX with Chinese labels (one sheet per
clearing agency x insurance type x clearing type and a differences sheet), one self-contained
HTML page with a small chart of daily totals, and JSON.

Insurance type, clearing type and result codes are shown with their labels from the region's
interface edition: pass ``label`` (``Edition.label``) from where the region is known; CSV and
XLSX carry the label in a column of its own, HTML and the terminal beside the code."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from adapter.html_page import page, table
from adapter.reconcile.run import RESULTS, ReconRun

#: column labels as finance uses them
LABELS = {
    "setl_optins": "结算经办机构", "insutype": "险种", "clr_type": "清算类别", "medfee_sumamt": "医疗费总额",
    "fund_pay_sumamt": "基金支付总额", "acct_pay": "个人账户支付", "cash_payamt": "现金支付", "count": "结算笔数",
    "stmt_rslt": "对账结果", "insutype_name": "险种名称", "clr_type_name": "清算类别名称",
    "stmt_rslt_name": "对账结果名称",
    "description": "结果说明", "setl_id": "结算ID", "mdtrt_id": "就诊ID", "psn_no": "人员编号", "kind": "差异类型",
    "detail": "差异说明", "field_name": "字段", "hospital": "医院", "centre": "中心", "delta": "差额(中心-医院)",
    "centre_msgid": "结算报文ID(中心)", "setl_msgid": "结算报文ID(HIS)", "our_msgid": "本机报文ID(4101A)",
}
KINDS = {"only_centre": "仅中心有", "only_hospital": "仅医院有", "amount": "金额不一致",
         "refund_flag": "退费标志不一致", "duplicate": "重复"}
_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay", "cash_payamt", "count")
_PAIR = ("setl_optins", "insutype", "clr_type", *_AMOUNTS, "stmt_rslt", "description")
#: the pairs as CSV and XLSX carry them: each code's label in the column after it
_PAIR_SPLIT = ("setl_optins", "insutype", "insutype_name", "clr_type", "clr_type_name", *_AMOUNTS, "stmt_rslt",
               "stmt_rslt_name", "description")
_DIFF = ("setl_id", "mdtrt_id", "psn_no", "kind", "detail", "field_name", "hospital", "centre", "delta", "centre_msgid",
         "setl_msgid", "our_msgid")
#: the differences sheet: the group's insurance and clearing type first, its agency last
_DIFF_HEADER = [LABELS["insutype"], LABELS["clr_type"], *(LABELS[c] for c in _DIFF), LABELS["setl_optins"]]
#: ... and in CSV and XLSX the labels of its insurance and clearing type after the agency
_DIFF_HEADER_SPLIT = [*_DIFF_HEADER, LABELS["insutype_name"], LABELS["clr_type_name"]]

#: a code's label: (dictionary, code) -> label, the code itself when unknown (``Edition.label``)
Label = Callable[[str, str], str]


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


def _pair_row(pair: Any, label: Label = _no_label, split: bool = False) -> list[Any]:
    amounts = [pair.local[k] for k in _AMOUNTS]
    if split:
        return [pair.setl_optins, pair.insutype, _name(label, "insutype", pair.insutype), pair.clr_type,
                _name(label, "clr_type", pair.clr_type), *amounts, pair.stmt_rslt,
                _name(label, "stmt_rslt", pair.stmt_rslt), pair.description]
    return [pair.setl_optins, coded(label, "insutype", pair.insutype), coded(label, "clr_type", pair.clr_type),
            *amounts, coded(label, "stmt_rslt", pair.stmt_rslt), pair.description]


def _diff_values(diff: Any) -> list[Any]:
    values = {**diff.__dict__, "kind": f"{diff.kind} {KINDS.get(diff.kind, '')}".strip()}
    return [values[k] for k in _DIFF]


def _diff_row(pair: Any, diff: Any, label: Label = _no_label, split: bool = False) -> list[Any]:
    if split:
        return [pair.insutype, pair.clr_type, *_diff_values(diff), pair.setl_optins,
                _name(label, "insutype", pair.insutype), _name(label, "clr_type", pair.clr_type)]
    return [coded(label, "insutype", pair.insutype), coded(label, "clr_type", pair.clr_type), *_diff_values(diff),
            pair.setl_optins]


def as_csv(run: ReconRun, label: Label = _no_label) -> str:
    """The pairs, then the differences, each with a header row of Chinese labels."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f"对账 {run.period}", "对平" if run.balanced else "不平"])
    writer.writerow([LABELS[c] for c in _PAIR_SPLIT])
    writer.writerows(_pair_row(p, label, split=True) for p in run.pairs)
    writer.writerow([])
    writer.writerow(_DIFF_HEADER_SPLIT)
    writer.writerows(_diff_row(p, d, label, split=True) for p in run.pairs for d in p.differences)
    return out.getvalue()


def as_xlsx(run: ReconRun, label: Label = _no_label) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.worksheet.worksheet import Worksheet

    book = Workbook()
    summary = book.active
    assert isinstance(summary, Worksheet)  # a new workbook starts with one worksheet, active
    summary.title = "汇总"
    summary.append([f"对账期间 {run.period}", "对平" if run.balanced else "不平"])
    summary.append([LABELS[c] for c in _PAIR_SPLIT])
    for pair in run.pairs:
        summary.append(_numbers(_pair_row(pair, label, split=True)))
    for pair in run.pairs:
        sheet = book.create_sheet(f"{pair.setl_optins}-{pair.insutype}-{pair.clr_type}"[:31])
        sheet.append([LABELS[c] for c in _PAIR_SPLIT])
        sheet.append(_numbers(_pair_row(pair, label, split=True)))
        sheet.append([])
        sheet.append([LABELS[c] for c in _DIFF])
        for diff in pair.differences:
            sheet.append(_diff_values(diff))
    diffs = book.create_sheet("差异明细")
    diffs.append(_DIFF_HEADER_SPLIT)
    for pair in run.pairs:
        for diff in pair.differences:
            diffs.append(_diff_row(pair, diff, label, split=True))
    for sheet in book.worksheets:
        for cell in sheet[1 if sheet.title != "汇总" else 2]:
            cell.font = Font(bold=True)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


_NUMERIC = frozenset(_PAIR_SPLIT.index(c) for c in _AMOUNTS)


def _numbers(row: list[Any]) -> list[Any]:
    """A group's row (as XLSX carries it) with its amounts and count as numbers; its codes
    (agency, insurance and clearing type, result) and their labels stay text."""
    converted = []
    for index, value in enumerate(row):
        try:
            converted.append(float(Decimal(str(value))) if index in _NUMERIC and isinstance(value, str)
                             and value[:1] in "-0123456789" and " " not in value else value)
        except ArithmeticError:
            converted.append(value)
    return converted


def _chart(daily: dict[str, list[str]]) -> str:
    """Bars of the daily medical-fee totals as inline SVG (no scripts, no files)."""
    if not daily:
        return "<p>no settlements in the period</p>"
    values = [float(v[1]) for v in daily.values()]
    top = max(values) or 1.0
    width, height, bar = 24 * len(values) + 40, 180, 18
    bars = []
    for index, (day, value) in enumerate(zip(daily, values, strict=True)):
        h = value / top * 140
        x = 30 + index * 24
        bars.append(f'<rect x="{x}" y="{150 - h:.1f}" width="{bar}" height="{h:.1f}" fill="#4a7bb7">'
                    f"<title>{html.escape(day)}: {value:.2f}</title></rect>"
                    f'<text x="{x + bar / 2}" y="168" font-size="8" text-anchor="middle">{day[8:10]}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="daily medical fee totals"><text x="0" y="12" font-size="10">{top:.2f}</text>'
            f'<line x1="28" y1="150" x2="{width}" y2="150" stroke="#333"/>{"".join(bars)}</svg>')


def as_html(run: ReconRun, label: Label = _no_label) -> str:
    verdict = "对平 balanced" if run.balanced else '<span class="bad">不平 not balanced</span>'
    parts = [
        f"<h1>医保对账 Reconciliation {html.escape(str(run.period))}</h1><p>{verdict}</p>",
        table([LABELS[c] for c in _PAIR], [_pair_row(p, label) for p in run.pairs],
              "按结算经办机构、险种与清算类别 By clearing agency, insurance type and clearing type"),
        "<h2>每日医疗费总额 Daily medical fee totals (HIS)</h2>", _chart(run.daily),
        table(_DIFF_HEADER,
              [_diff_row(p, d, label) for p in run.pairs for d in p.differences], "差异明细 Differences"),
    ]
    return page(f"医保对账 {run.period}", parts)
