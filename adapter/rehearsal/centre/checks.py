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


def node(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document["input"].get(name)
    if not isinstance(value, Mapping):
        raise Refusal(f"交易输入[{name}]不能为空")
    return value


def require(record: Mapping[str, Any], names: tuple[str, ...], where: str) -> None:
    for name in names:
        if record.get(name) in (None, ""):
            raise Refusal(f"{where}[{name}]不能为空")


