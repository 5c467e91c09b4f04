"""The simulated centre's reconciliation: 3201 compares the institution's totals for one
insurance type x clearing type with its own settlement ledger; 3202 reads the uploaded detail
file and answers with result.txt (the settlements that differ), downloadable with 9102.

Tests change the ledger to create each kind of difference: ``lose_settlement``,
``alter_settlement`` and ``add_settlement`` on :class:`~adapter.rehearsal.centre.server.SimulatedCentre`."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.rehearsal.centre import files
from adapter.rehearsal.centre.checks import Refusal, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.zipped_text import text_from_zip, zip_members

_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")


def _amount(data: Mapping[str, Any], name: str) -> Decimal:
    try:
        return Decimal(str(data[name]))
    except (KeyError, InvalidOperation):
        raise Refusal(f"对账输入[{name}]不是数字") from None


def _rows(
    ledger: CentreLedger, clr_type: str, begin: str, end: str, insutype: str | None = None
) -> list[dict[str, Any]]:
    with ledger.lock:
        return [dict(r) for r in ledger.settlements.values()
                if r["clr_type"] == clr_type and begin <= r["setl_date"] <= end
                and (insutype is None or r["insutype"] == insutype)]


def totals(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """3201 对总账: 0 balanced, 1 the centre has more, 2 the institution has more, 3 mismatch."""
    data = node(document, "data")
    require(data, ("insutype", "clr_type", "setl_optins", "stmt_begndate", "stmt_enddate", "medfee_sumamt",
                   "fund_pay_sumamt", "acct_pay", "fixmedins_setl_cnt"), "对总账")
    rows = _rows(ledger, str(data["clr_type"]), str(data["stmt_begndate"]), str(data["stmt_enddate"]),
                 str(data["insutype"]))
    mine = {name: sum((Decimal(str(r[name])) for r in rows), Decimal(0)) for name in _AMOUNTS}
    theirs = {name: _amount(data, name) for name in _AMOUNTS}
    count = int(data["fixmedins_setl_cnt"])
    if mine == theirs and count == len(rows):
        result, words = "0", "对平"
    elif len(rows) > count:
        result, words = "1", f"中心多: 中心{len(rows)}笔, 医药机构{count}笔"
    elif len(rows) < count:
        result, words = "2", f"医药机构多: 中心{len(rows)}笔, 医药机构{count}笔"
    else:
        result, words = "3", f"数据不一致: 中心医疗费总额{mine['medfee_sumamt']}, 基金支付{mine['fund_pay_sumamt']}"
    return {"stmtinfo": {"setl_optins": str(data["setl_optins"]), "stmt_rslt": result, "stmt_rslt_dscr": words}}


def details(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """3202 对明细账: compares the uploaded detail file with the ledger; result.txt lists the
    settlements that differ (1 only at the centre, 2 only at the institution, 3 different)."""
    data = node(document, "data")
    require(data, ("clr_type", "setl_optins", "file_qury_no", "stmt_begndate", "stmt_enddate", "medfee_sumamt",
                   "fund_pay_sumamt", "cash_payamt", "fixmedins_setl_cnt"), "对明细账")
    with ledger.lock:
        held = ledger.files.get(str(data["file_qury_no"]))
    if held is None:
        raise Refusal(f"文件查询号[{data['file_qury_no']}]不存在")
    try:
        text = text_from_zip(held[1]).text
    except Exception:  # any unreadable file is the institution's error
        raise Refusal("明细文件不是含一个文本文件的zip压缩包") from None
    sent: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise Refusal(f"明细文件第{number}行应有7列, 实有{len(fields)}列")
        sent.setdefault(fields[0], fields)
    mine = _rows(ledger, str(data["clr_type"]), str(data["stmt_begndate"]), str(data["stmt_enddate"]))
    out = []
    seen: set[str] = set()
    for row in mine:
        theirs = sent.get(row["setl_id"])
        if row["setl_id"] in seen:
            continue
        seen.add(row["setl_id"])
        if theirs is None:
            out.append(_result(row, "1", "中心有, 医药机构无"))
            continue
        memo = []
        for index, name in ((3, "medfee_sumamt"), (4, "fund_pay_sumamt"), (5, "acct_pay")):
            if Decimal(theirs[index] or 0) != Decimal(str(row[name])):
                memo.append(f"{name}不一致")
        if theirs[6] != row["refd_setl_flag"]:
            memo.append("退费标志不一致")
        if memo:
            out.append(_result(row, "3", ";".join(memo)))
    for setl_id, fields in sent.items():
        if setl_id not in seen:
            out.append({"psn_no": fields[2], "mdtrt_id": fields[1], "setl_id": setl_id, "msgid": "",
                        "stmt_rslt": "2", "refd_setl_flag": fields[6], "memo": "医药机构有, 中心无",
                        "medfee_sumamt": fields[3], "fund_pay_sumamt": fields[4], "acct_pay": fields[5]})
    columns = ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt", "refd_setl_flag", "memo", "medfee_sumamt",
               "fund_pay_sumamt", "acct_pay")
    body = "".join("\t".join(str(r[c]) for c in columns) + "\n" for r in out)
    content = zip_members({"result.txt": body.encode(faults.result_encoding or "utf-8")})
    file_qury_no = files.store(ledger, "result.zip", content)
    return {"fileinfo": {"file_qury_no": file_qury_no, "filename": "result.zip", "dld_endtime": "2099-12-31 23:59:59"}}


def _result(row: Mapping[str, Any], code: str, memo: str) -> dict[str, Any]:
    return {"psn_no": row["psn_no"], "mdtrt_id": row["mdtrt_id"], "setl_id": row["setl_id"], "msgid": row["msgid"],
            "stmt_rslt": code, "refd_setl_flag": row["refd_setl_flag"], "memo": memo,
            "medfee_sumamt": row["medfee_sumamt"], "fund_pay_sumamt": row["fund_pay_sumamt"],
            "acct_pay": row["acct_pay"]}


HANDLERS = {"3201": totals, "3202": details}
