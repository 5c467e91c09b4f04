"""Checks the simulated centre shares between transactions: the refusal, required fields,
and one fee-detail line (2301 and 2204 carry the same fields, reference §3.6, §3.7)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from adapter import jsonio
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import StoredFeeLine


class Refusal(Exception):
    """A business failure: answered with infcode -1 and this err_msg."""


FEE_REQUIRED = (
    "feedetl_sn", "mdtrt_id", "psn_no", "med_type", "fee_ocur_time", "med_list_codg",
    "medins_list_codg", "det_item_fee_sumamt", "cnt", "pric", "bilg_dept_codg",
    "bilg_dept_name", "bilg_dr_codg", "bilg_dr_name",
)
FEE_LENGTHS = {
    "feedetl_sn": 30, "init_feedetl_sn": 30, "mdtrt_id": 30, "drord_no": 30, "psn_no": 30,
    "med_type": 6, "med_list_codg": 50, "medins_list_codg": 150, "bilg_dept_codg": 30,
    "bilg_dept_name": 100, "bilg_dr_codg": 30, "bilg_dr_name": 50, "hosp_appr_flag": 3,
    "memo": 500,
}


@dataclass(frozen=True)
class ParsedLine:
    mdtrt_id: str
    feedetl_sn: str
    med_list_codg: str
    cnt: Decimal
    pric: Decimal
    det_item_fee_sumamt: Decimal


def check_fee_line(item: Any, faults: FaultPlan, required: tuple[str, ...] = FEE_REQUIRED) -> ParsedLine:
    if not isinstance(item, Mapping):
        raise Refusal("费用明细格式错误")
    sn = str(item.get("feedetl_sn") or "?")
    for name in required:
        if item.get(name) in (None, ""):
            raise Refusal(f"费用明细[{sn}]的[{name}]不能为空")
    for name, limit in FEE_LENGTHS.items():
        value = item.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise Refusal(f"费用明细[{sn}]的[{name}]长度超过{limit}")
    try:
        datetime.strptime(str(item["fee_ocur_time"]), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Refusal(f"费用明细[{sn}]的费用发生时间格式错误") from None
    try:
        amount = Decimal(str(item["det_item_fee_sumamt"]))
        cnt = Decimal(str(item["cnt"]))
        pric = Decimal(str(item["pric"]))
    except InvalidOperation:
        raise Refusal(f"费用明细[{sn}]的金额、数量或单价不是数字") from None
    if abs(amount - cnt * pric) > Decimal("0.01"):
        raise Refusal(f"费用明细[{sn}]的明细项目费用总额不等于数量乘以单价")
    flag = item.get("hosp_appr_flag")
    if flag not in (None, "", "0", "1", "2"):
        raise Refusal(f"费用明细[{sn}]的医院审批标志[{flag}]取值错误")
    extension = item.get("exp_content")
    if extension not in (None, ""):
        try:
            if not isinstance(jsonio.loads(str(extension)), Mapping) or len(str(extension)) > 4000:
                raise ValueError
        except ValueError:
            raise Refusal(f"费用明细[{sn}]的扩展内容[exp_content]不是合法的JSON对象") from None
    code = str(item["med_list_codg"])
    if code in faults.reject_codes:
        raise Refusal(f"费用明细[{sn}]的医疗目录编码[{code}]不存在或已失效")
    return ParsedLine(str(item["mdtrt_id"]), sn, code, cnt, pric, amount)


def stored_line(line: ParsedLine, item: Mapping[str, Any], msgid: str, chrg_bchno: str = "",
                med_type: str = "") -> StoredFeeLine:
    """A fee line (2301 or 2204) as the centre keeps it."""
    def text(name: str) -> str:
        return str(item.get(name) or "")

    return StoredFeeLine(
        line.mdtrt_id, line.feedetl_sn, line.med_list_codg, line.cnt, line.det_item_fee_sumamt, msgid,
        text("hosp_appr_flag"), text("exp_content"), chrg_bchno=chrg_bchno, init_feedetl_sn=text("init_feedetl_sn"),
        psn_no=text("psn_no"), med_type=text("med_type") or med_type, fee_ocur_time=text("fee_ocur_time"),
        pric=line.pric, medins_list_codg=text("medins_list_codg"), drord_no=text("drord_no") or text("rxno"),
        bilg_dept_codg=text("bilg_dept_codg"), bilg_dept_name=text("bilg_dept_name"),
        bilg_dr_codg=text("bilg_dr_codg"), bilg_dr_name=text("bilg_dr_name"),
    )


_CENT = Decimal("0.01")


def list_type(med_list_codg: str) -> str:
    """目录类别 (dictionary list_type) of a national code, by its kind: X/Z 西药中成药 101, T
    中药饮片 102, C 医用耗材 301, anything else 医疗服务项目 201."""
    return {"X": "101", "Z": "101", "T": "102", "C": "301"}.get(med_list_codg[:1], "201")


def charge_type(med_list_codg: str) -> str:
    """医疗收费项目类别 (dictionary med_chrgitm_type) of a national code, by its kind: X 西药 ->
    09 西药费, Z 中成药 -> 11 中成药费, T 中药饮片 -> 10 中药饮片费, C 医用耗材 -> 08 卫生材料费;
    the medical-service codes (digits) say nothing finer the centre could trust (检查, 化验,
    手术... are told apart only by the service catalogue it does not keep), so 05 治疗费."""
    return {"X": "09", "Z": "11", "T": "10", "C": "08"}.get(med_list_codg[:1], "05")


def fee_answer(line: ParsedLine, faults: FaultPlan) -> dict[str, Any]:
    """One ``result`` entry of a 2301 or 2204 answer (the 明细分割 of the line), in the edition's
    output shape. The simulated centre keeps no price caps, payment ratios or restrictions, so
    its rules are few: a line is in the fund's scope (甲类, selfpay_prop 0, all of it
    inscp_scp_amt) unless its national code is one of ``faults.ownpay_codes`` (丙类, selfpay_prop
    1, all of it fulamt_ownpay_amt); the price cap is the price (nothing over the limit); nothing
    is paid first by the person (preselfpay_amt 0); every flag of the catalogue is 0 (否)."""
    amount = line.det_item_fee_sumamt.quantize(_CENT)
    zero = Decimal(0).quantize(_CENT)
    ownpay = line.med_list_codg in faults.ownpay_codes
    return {
        "feedetl_sn": line.feedetl_sn, "det_item_fee_sumamt": amount, "cnt": line.cnt, "pric": line.pric,
        "pric_uplmt_amt": line.pric, "selfpay_prop": Decimal(1 if ownpay else 0),
        "fulamt_ownpay_amt": amount if ownpay else zero, "overlmt_amt": zero, "preselfpay_amt": zero,
        "inscp_scp_amt": zero if ownpay else amount,
        # 收费项目等级: 03 丙类 out of scope, else 01 甲类 (the centre grades no item 乙类)
        "chrgitm_lv": "03" if ownpay else "01", "med_chrgitm_type": charge_type(line.med_list_codg),
        "bas_medn_flag": "0", "hi_nego_drug_flag": "0", "chld_medc_flag": "0", "list_sp_item_flag": "0",
        "lmt_used_flag": "0", "drt_reim_flag": "0", "memo": "",
    }


def node(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document["input"].get(name)
    if not isinstance(value, Mapping):
        raise Refusal(f"交易输入[{name}]不能为空")
    return value


def require(record: Mapping[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        if record.get(name) in (None, ""):
            raise Refusal(f"{where}[{name}]不能为空")


#: 日期时间型 as the tables write it
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def moment(value: Any, what: str) -> datetime:
    """A 日期时间型 value (yyyy-MM-dd HH:mm:ss); a bare date counts as its midnight."""
    text = str(value or "")
    for fmt in (TIME_FORMAT, "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise Refusal(f"{what}[{text}]应为yyyy-MM-dd HH:mm:ss")


def window(data: Mapping[str, Any], where: str) -> tuple[datetime, datetime]:
    """The begntime..endtime of a query's input (both 日期时间型, both included)."""
    require(data, ("begntime", "endtime"), where)
    begin, end = moment(data["begntime"], f"{where}开始时间"), moment(data["endtime"], f"{where}结束时间")
    if begin > end:
        raise Refusal(f"{where}开始时间[{data['begntime']}]晚于结束时间[{data['endtime']}]")
    return begin, end
