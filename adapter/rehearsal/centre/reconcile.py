"""The simulated centre's reconciliation: 3201 compares the institution's totals for one
clearing agency x insurance type x clearing type with its own settlement ledger; 3202 reads the
uploaded detail file of one clearing agency x clearing type and answers with result.txt (the
settlements that differ), downloadable with 9102.

The inputs are checked as the interface's tables give them (Hunan V1.1.27 【3201】/【3202】,
their 输入文件参数说明 and the dictionaries 6.11 stmt_rslt, 6.24 refd_setl_flag and 6.83
fixmedins_refd_setl_flag): a missing required field or a value of the wrong shape is refused
with the field named. The clearing agency of each settlement in the ledger is
:func:`~adapter.rehearsal.centre.ledger.clearing_agency`.

Tests change the ledger to create each kind of difference: ``lose_settlement``,
``alter_settlement`` and ``add_settlement`` on :class:`~adapter.rehearsal.centre.server.SimulatedCentre`."""

from __future__ import annotations

import functools
import operator
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter.rehearsal.centre import files
from adapter.rehearsal.centre.checks import Refusal, node
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.zipped_text import text_from_zip, zip_members


@dataclass(frozen=True)
class _Field:
    """One row of an interface table: 参数代码, 参数名称, 参数类型 (字符型 with 参数长度 N,
    数值型 with N or N,M, 日期型 yyyy-MM-dd), 是否必填 and the values of its dictionary."""

    code: str
    label: str
    kind: str
    length: int = 0
    scale: int = 0
    required: bool = True
    values: frozenset[str] = frozenset()


#: 6.24 退费结算标志 and 6.83 定点医药机构退费结算标志: 0 否, 1 是
_YES_NO = frozenset({"0", "1"})

#: 【3201】 输入 (节点标识 data)
TOTALS_INPUT = (
    _Field("insutype", "险种", "字符型", 6),
    _Field("clr_type", "清算类别", "字符型", 6),
    _Field("setl_optins", "结算经办机构", "字符型", 6),
    _Field("stmt_begndate", "对账开始日期", "日期型"),
    _Field("stmt_enddate", "对账结束日期", "日期型"),
    _Field("medfee_sumamt", "医疗费总额", "数值型", 16, 2),
    _Field("fund_pay_sumamt", "基金支付总额", "数值型", 16, 2),
    _Field("acct_pay", "个人账户支付金额", "数值型", 16, 2),
    _Field("fixmedins_setl_cnt", "定点医药机构结算笔数", "数值型", 10),
    _Field("refd_setl_flag", "退费结算标志", "字符型", 6, required=False, values=_YES_NO),
    _Field("fixmedins_refd_setl_flag", "定点医药机构退费结算标志", "字符型", 6, values=_YES_NO),
)
#: 【3202】 输入 (节点标识 data)
DETAILS_INPUT = (
    _Field("setl_optins", "结算经办机构", "字符型", 6),
    _Field("file_qury_no", "文件查询号", "字符型", 30),
    _Field("stmt_begndate", "对账开始日期", "日期型"),
    _Field("stmt_enddate", "对账结束日期", "日期型"),
    _Field("medfee_sumamt", "医疗费总额", "数值型", 16, 2),
    _Field("fund_pay_sumamt", "基金支付总额", "数值型", 16, 2),
    _Field("cash_payamt", "现金支付金额", "数值型", 16, 2),
    _Field("fixmedins_setl_cnt", "定点医药机构结算笔数", "数值型", 10),
    _Field("clr_type", "清算类别", "字符型", 6),
    _Field("refd_setl_flag", "退费结算标志", "字符型", 3, required=False, values=_YES_NO),
    _Field("fixmedins_refd_setl_flag", "定点医药机构退费结算标志", "字符型", 6, values=_YES_NO),
)
#: 【3202】 输入文件参数说明: TAB-separated, in this order, every column 非空
DETAIL_FILE = (
    _Field("setl_id", "结算ID", "字符型", 30),
    _Field("mdtrt_id", "就诊ID", "字符型", 30),
    _Field("psn_no", "人员编号", "字符型", 30),
    _Field("medfee_sumamt", "医疗费总额", "数值型", 16, 2),
    _Field("fund_pay_sumamt", "基金支付总额", "数值型", 16, 2),
    _Field("acct_pay", "个人账户支出", "数值型", 16, 2),
    _Field("refd_setl_flag", "退费结算标志", "字符型", 3, values=_YES_NO),
)
#: 【3202】 输出文件参数说明, in its order (msgid: the settlement's 发送方报文ID)
RESULT_FILE = ("psn_no", "mdtrt_id", "setl_id", "msgid", "stmt_rslt", "refd_setl_flag", "memo", "medfee_sumamt",
               "fund_pay_sumamt", "acct_pay")
#: 6.11 对账结果
BALANCED, UNBALANCED = "0", "1"
_AMOUNTS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")


def _problem(spec: _Field, value: Any) -> str | None:
    """What is wrong with one value, or None."""
    if value is None or value == "":
        return "不能为空" if spec.required else None
    text = str(value)
    if spec.kind == "字符型":
        if len(text) > spec.length:
            return f"长度超过{spec.length}"
        if spec.values and text not in spec.values:
            return f"取值[{text}]不在字典中({'/'.join(sorted(spec.values))})"
        return None
    if spec.kind == "日期型":
        try:
            datetime.strptime(text, "%Y-%m-%d")
        except ValueError:
            return f"[{text}]不是日期(yyyy-MM-dd)"
        return None
    if _number_shape(spec.length, spec.scale).fullmatch(text):
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return f"[{text}]不是数字"
    if not number.is_finite():
        return f"[{text}]不是数字"
    exponent = number.as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if decimals > spec.scale:
        return f"[{text}]小数位超过{spec.scale}位" if spec.scale else f"[{text}]应为整数"
    if abs(number) >= Decimal(10) ** (spec.length - spec.scale):
        return f"[{text}]整数位超过{spec.length - spec.scale}位"
    return f"[{text}]不是数值型{spec.length},{spec.scale}的写法" if spec.scale else f"[{text}]不是整数"


@functools.cache
def _number_shape(length: int, scale: int) -> re.Pattern[str]:
    """数值型 ``length,scale`` written plainly: at most length - scale integer digits and
    scale decimals."""
    decimals = rf"(?:\.[0-9]{{1,{scale}}})?" if scale else ""
    return re.compile(rf"-?[0-9]{{1,{length - scale}}}{decimals}")


def check_fields(data: Mapping[str, Any], table: tuple[_Field, ...], where: str) -> None:
    """Refuse the first field of ``table`` that ``data`` breaks, naming it."""
    for spec in table:
        problem = _problem(spec, data.get(spec.code))
        if problem:
            raise Refusal(f"{where}[{spec.code}]({spec.label}){problem}")
    if str(data["stmt_begndate"]) > str(data["stmt_enddate"]):
        raise Refusal(f"{where}对账开始日期[{data['stmt_begndate']}]晚于对账结束日期[{data['stmt_enddate']}]")


def _home(document: Mapping[str, Any]) -> str:
    """The institution's own clearing agency: its 就医地 (the envelope's mdtrtarea_admvs)."""
    return str(document.get("mdtrtarea_admvs") or "")


def _amount(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value)) if value is not None and value != "" else Decimal(0)


def _text(value: Any) -> str:
    """An amount as the result file writes it (数值型 16,2)."""
    return f"{_amount(value):.2f}"


def totals(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """3201 对总账 of one clearing agency x insurance type x clearing type: 0 平 or 1 不平,
    with stmt_rslt_dscr saying how."""
    data = node(document, "data")
    check_fields(data, TOTALS_INPUT, "对总账")
    key = (str(data["setl_optins"]), str(data["insutype"]), str(data["clr_type"]))
    held = ledger.statement_totals(str(data["stmt_begndate"]), str(data["stmt_enddate"]), _home(document)).get(key)
    mine = {name: held[name] if held else Decimal(0) for name in _AMOUNTS}
    count = held["count"] if held else 0
    theirs = {name: _amount(data[name]) for name in _AMOUNTS}
    sent = int(Decimal(str(data["fixmedins_setl_cnt"])))
    if mine == theirs and count == sent:
        result, words = BALANCED, "平"
    elif count != sent:
        more = "中心多" if count > sent else "医药机构多"
        result, words = UNBALANCED, f"不平: {more}, 中心{count}笔, 医药机构{sent}笔"
    else:
        result, words = UNBALANCED, (f"不平: 数据不一致, 中心医疗费总额{mine['medfee_sumamt']}, "
                                     f"基金支付总额{mine['fund_pay_sumamt']}, 个人账户支付{mine['acct_pay']}")
    with ledger.lock:
        ledger.statements.append(("3201", dict(data)))
    return {"stmtinfo": {"setl_optins": key[0], "stmt_rslt": result, "stmt_rslt_dscr": words}}


def _shape(spec: _Field) -> str:
    """A regular expression of the values ``spec`` allows (non-empty)."""
    if spec.kind == "数值型":
        return _number_shape(spec.length, spec.scale).pattern
    if spec.values:
        return "|".join(re.escape(v) for v in sorted(spec.values))
    return f"[^\t]{{1,{spec.length}}}"


#: a detail-file line every column of which is right (the fast path of a month's file)
_DETAIL_LINE = re.compile("\t".join(f"(?:{_shape(spec)})" for spec in DETAIL_FILE))
#: the same, each column captured, for a whole file at once (a line of it, with re.M; no value
#: may hold a line break then)
_DETAIL_ROW = re.compile("^" + "\t".join(f"({_shape(spec)})".replace("[^\t]", "[^\t\n]") for spec in DETAIL_FILE)
                         + "$", re.M)
#: what str.splitlines() breaks a line at besides \n (a file with one is read line by line)
_OTHER_BREAKS = re.compile("[\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def _detail_file(text: str) -> dict[str, Sequence[str]]:
    """setl_id -> the first line naming it, every line checked against 输入文件参数说明."""
    sent = _detail_file_at_once(text)
    return sent if sent is not None else _detail_file_by_line(text)


def _detail_file_at_once(text: str) -> dict[str, Sequence[str]] | None:
    """:func:`_detail_file` of a file every line of which is right, in a few calls that run in C;
    None for any other file (blank lines, a wrong line, other line breaks), which is then read
    line by line, to be refused at its first wrong line."""
    if not text or _OTHER_BREAKS.search(text):
        return None
    rows = _DETAIL_ROW.findall(text)
    # Each match is one whole line (no value holds a \n), so as many matches as lines: all right.
    if len(rows) != text.count("\n") + (not text.endswith("\n")):
        return None
    sent: dict[str, Sequence[str]] = dict(zip(map(operator.itemgetter(0), rows), rows, strict=True))
    if len(sent) != len(rows):  # a setl_id repeated: the first line naming it counts
        sent = {}
        for fields in rows:
            sent.setdefault(fields[0], fields)
    return sent


def _detail_file_by_line(text: str) -> dict[str, Sequence[str]]:
    sent: dict[str, Sequence[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if _DETAIL_LINE.fullmatch(line):
            fields = line.split("\t")
        elif not line.strip():
            continue
        else:
            fields = [value.strip() for value in line.split("\t")]
            if len(fields) != len(DETAIL_FILE):
                raise Refusal(f"明细文件第{number}行应有{len(DETAIL_FILE)}列, 实有{len(fields)}列")
            for spec, value in zip(DETAIL_FILE, fields, strict=True):
                problem = _problem(spec, value)
                if problem:
                    raise Refusal(f"明细文件第{number}行[{spec.code}]({spec.label}){problem}")
        sent.setdefault(fields[0], fields)
    return sent


def details(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """3202 对明细账 of one clearing agency x clearing type: compares the uploaded detail file
    with the ledger; result.txt lists the settlements that differ (stmt_rslt 1 不平, memo says
    how). Settlements the centre holds several details of for one settlement msgid are listed
    with setl_id and mdtrt_id empty, as the interface asks."""
    data = node(document, "data")
    check_fields(data, DETAILS_INPUT, "对明细账")
    with ledger.lock:
        held = ledger.files.get(str(data["file_qury_no"]))
    if held is None:
        raise Refusal(f"文件查询号[{data['file_qury_no']}]不存在")
    try:
        text = text_from_zip(held[1]).text
    except Exception:  # any unreadable file is the institution's error
        raise Refusal("明细文件不是含一个文本文件的zip压缩包") from None
    sent = _detail_file(text)
    with ledger.lock:  # the ledger's rows are read in place
        out = _compare(sent, ledger.reconciled_settlements(
            str(data["stmt_begndate"]), str(data["stmt_enddate"]), _home(document),
            setl_optins=str(data["setl_optins"]), clr_type=str(data["clr_type"]), copies=False))
    body = "".join("\t".join(str(r[c]) for c in RESULT_FILE) + "\n" for r in out)
    content = zip_members({"result.txt": body.encode(faults.result_encoding or "utf-8")})
    file_qury_no = files.store(ledger, "result.zip", content)
    with ledger.lock:
        ledger.statements.append(("3202", dict(data)))
    return {"fileinfo": {"file_qury_no": file_qury_no, "filename": "result.zip", "dld_endtime": "2099-12-31 23:59:59"}}


#: (column of the detail file, ledger field) of the amounts 3202 compares
_COMPARED = ((3, "medfee_sumamt"), (4, "fund_pay_sumamt"), (5, "acct_pay"))


def _compare(sent: Mapping[str, Sequence[str]], mine: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines of result.txt: the ledger's settlements ``mine`` against the detail file ``sent``."""
    repeated = _repeated_msgids(mine)
    out = []
    seen: set[str] = set()
    for row in mine:
        setl_id = row["setl_id"]
        if setl_id in seen:
            continue
        seen.add(setl_id)
        if repeated and str(row.get("msgid") or "") in repeated:
            out.append({**_result(row, "中心端有多条明细"), "setl_id": "", "mdtrt_id": ""})
            continue
        theirs = sent.get(setl_id)
        if theirs is None:
            out.append(_result(row, "中心有, 医药机构无"))
            continue
        if _same_text(theirs, row):
            continue
        # The file's amounts were checked as 数值型 16,2 above: they read as Decimals as they are.
        memo = [f"{name}不一致" for index, name in _COMPARED if Decimal(theirs[index]) != _amount(row[name])]
        if theirs[6] != row["refd_setl_flag"]:
            memo.append("退费标志不一致")
        if memo:
            out.append(_result(row, ";".join(memo)))
    for setl_id, fields in sent.items():
        if setl_id not in seen:  # the centre holds no such settlement: no msgid, no amounts of its own
            out.append({"psn_no": fields[2], "mdtrt_id": fields[1], "setl_id": setl_id, "msgid": "",
                        "stmt_rslt": UNBALANCED, "refd_setl_flag": fields[6], "memo": "医药机构有, 中心无",
                        "medfee_sumamt": "", "fund_pay_sumamt": "", "acct_pay": ""})
    return out


def _same_text(theirs: Sequence[str], row: Mapping[str, Any]) -> bool:
    """Whether the file's line writes each compared amount and the refund flag exactly as the
    ledger's value prints: then they are equal (Decimal(str(x)) == x), and no Decimal is made.
    Any other line is compared as numbers."""
    return (theirs[3] == str(row["medfee_sumamt"]) and theirs[4] == str(row["fund_pay_sumamt"])
            and theirs[5] == str(row["acct_pay"]) and theirs[6] == row["refd_setl_flag"])


def _repeated_msgids(mine: list[dict[str, Any]]) -> set[str]:
    """The settlement msgids the centre holds more than one detail of (result.txt names those by
    msgid alone), counted in C where every msgid is text, as the ledger keeps them."""
    counted = Counter(map(operator.methodcaller("get", "msgid"), mine))
    if set(map(type, counted)) <= {str}:
        return {msgid for msgid, times in counted.items() if msgid and times > 1}
    per_msgid = Counter(msgid for r in mine if (msgid := str(r.get("msgid") or "")))
    return {msgid for msgid, times in per_msgid.items() if times > 1}


def _result(row: Mapping[str, Any], memo: str) -> dict[str, Any]:
    """A line of result.txt for a settlement the centre holds: its own figures and msgid."""
    return {"psn_no": row["psn_no"], "mdtrt_id": row["mdtrt_id"], "setl_id": row["setl_id"],
            "msgid": str(row.get("msgid") or ""), "stmt_rslt": UNBALANCED, "refd_setl_flag": row["refd_setl_flag"],
            "memo": memo, **{name: _text(row[name]) for name in _AMOUNTS}}


HANDLERS = {"3201": totals, "3202": details}
