"""The simulated centre's outpatient, cancellation and settlement-list transactions
(reference §3.6, §3.7, §3.9) and the queries that answer for them after a lost reply."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapter.rehearsal.centre.checks import FEE_REQUIRED, Refusal, check_fee_line, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger, StoredFeeLine

_NATIONAL_DOCTOR = re.compile(r"D\d{12}")
#: 2204 carries no med_type and adds the batch and the prescription-circulation flag.
_OUTPATIENT_FEE_REQUIRED = (
    *(name for name in FEE_REQUIRED if name != "med_type"), "chrg_bchno", "rx_circ_flag", "hosp_appr_flag",
)


def _doctor(code: Any, what: str) -> None:
    if not _NATIONAL_DOCTOR.fullmatch(str(code)):
        raise Refusal(f"{what}[{code}]必须为国家医保医师代码")


def registration(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2201 门诊挂号: answers the centre's mdtrt_id; one registration per HIS visit number."""
    data = node(document, "data")
    require(data, ("psn_no", "insutype", "begntime", "mdtrt_cert_type", "mdtrt_cert_no", "ipt_otp_no",
                   "atddr_no", "dr_name", "dept_code", "dept_name", "caty"), "挂号信息")
    _doctor(data["atddr_no"], "医师编码")
    key = (str(data["psn_no"]), str(data["ipt_otp_no"]))
    with ledger.lock:
        if key in ledger.registrations:
            ledger.duplicates["2201"] += 1
            raise Refusal(f"门诊号[{key[1]}]已挂号, 不能重复挂号")
        mdtrt_id = f"{document['mdtrtarea_admvs']}{ledger.next_serial():012d}"
        ledger.registrations[key] = mdtrt_id
        ledger.visits[mdtrt_id] = {"psn_no": key[0], "ipt_no": key[1], "discharged": False, "outpatient": True,
                                   "begntime": str(data["begntime"])}
    return {"data": {"mdtrt_id": mdtrt_id, "psn_no": key[0], "ipt_otp_no": key[1]}}


def visit_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """5201 就诊信息查询: the person's visits (the adapter asks after a lost 2201 reply)."""
    data = node(document, "data")
    require(data, ("psn_no",), "查询输入")
    with ledger.lock:
        visits = [
            {"mdtrt_id": mdtrt_id, "psn_no": visit["psn_no"], "ipt_otp_no": visit["ipt_no"],
             "begntime": visit.get("begntime", "")}
            for mdtrt_id, visit in ledger.visits.items() if visit["psn_no"] == data["psn_no"]
        ]
    return {"mdtrtinfo": visits}


def _registered(ledger: CentreLedger, mdtrt_id: str, psn_no: str) -> None:
    visit = ledger.visits.get(mdtrt_id)
    if visit is None:
        raise Refusal(f"就诊ID[{mdtrt_id}]不存在, 请先办理挂号或入院登记")
    if visit["psn_no"] != psn_no:
        raise Refusal(f"就诊ID[{mdtrt_id}]与人员编号[{psn_no}]不匹配")


def visit_info(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2203 门诊就诊信息上传: the diagnosis of a registered visit (a repeat replaces it)."""
    info = node(document, "mdtrtinfo")
    require(info, ("mdtrt_id", "psn_no", "med_type", "begntime"), "就诊信息")
    diseinfo = document["input"].get("diseinfo")
    if not isinstance(diseinfo, list) or not diseinfo:
        raise Refusal("诊断信息[diseinfo]不能为空")
    for entry in diseinfo:
        require(entry, ("diag_type", "diag_srt_no", "diag_code", "diag_name", "dise_dor_no", "vali_flag"), "诊断信息")
        _doctor(entry["dise_dor_no"], "诊断医生编码")
    with ledger.lock:
        _registered(ledger, str(info["mdtrt_id"]), str(info["psn_no"]))
        if str(info["mdtrt_id"]) in ledger.visit_info:
            ledger.duplicates["2203"] += 1
        ledger.visit_info[str(info["mdtrt_id"])] = {"mdtrtinfo": dict(info), "diseinfo": list(diseinfo)}
    return None


def outpatient_fees(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """2204 门诊费用明细上传: one charge batch of a registered visit."""
    details = document["input"].get("feedetail")
    if not isinstance(details, list) or not details:
        raise Refusal("费用明细[feedetail]不能为空")
    parsed = [check_fee_line(item, faults, _OUTPATIENT_FEE_REQUIRED) for item in details]
    batches = {(str(item["mdtrt_id"]), str(item["chrg_bchno"])) for item in details}
    diseases = {str(item.get("dise_codg") or "") for item in details}
    if len(batches) != 1:
        raise Refusal("一次上传的费用明细必须属于同一就诊的同一收费批次")
    if len(diseases) != 1:
        raise Refusal("同一收费批次的费用明细病种编码必须相同")
    mdtrt_id, bchno = next(iter(batches))
    with ledger.lock:
        _registered(ledger, mdtrt_id, str(details[0]["psn_no"]))
        held = {key[1] for key in ledger.fee_lines if key[0] == mdtrt_id}
        numbers = [line.feedetl_sn for line in parsed]
        if len(set(numbers)) != len(numbers):
            raise Refusal("费用明细流水号在本次就诊内必须唯一")
        repeats = [sn for sn in numbers if sn in held]
        if repeats and len(repeats) != len(numbers):
            raise Refusal(f"费用明细流水号[{repeats[0]}]在本次就诊内已存在")
        if repeats:
            ledger.duplicates["2204"] += 1  # the whole batch again: kept once
        for line, item in zip(parsed, details, strict=True):
            ledger.fee_lines.setdefault((mdtrt_id, line.feedetl_sn), StoredFeeLine(
                mdtrt_id, line.feedetl_sn, line.med_list_codg, line.cnt, line.det_item_fee_sumamt,
                str(document["msgid"]), str(item.get("hosp_appr_flag") or ""),
                str(item.get("exp_content") or ""), chrg_bchno=bchno,
            ))
    return {"result": [
        {"feedetl_sn": line.feedetl_sn, "det_item_fee_sumamt": line.det_item_fee_sumamt, "cnt": line.cnt,
         "pric": line.pric, "pric_uplmt_amt": line.pric, "selfpay_prop": Decimal("0"),
         "inscp_scp_amt": line.det_item_fee_sumamt, "chrgitm_lv": "01", "memo": ""}
        for line in parsed
    ]}


def cancel_batch(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2205 门诊费用明细撤销: withdraws every line of one charge batch."""
    data = node(document, "data")
    require(data, ("mdtrt_id", "chrg_bchno", "psn_no"), "撤销信息")
    mdtrt_id, bchno = str(data["mdtrt_id"]), str(data["chrg_bchno"])
    with ledger.lock:
        _registered(ledger, mdtrt_id, str(data["psn_no"]))
        keys = [key for key, line in ledger.fee_lines.items() if key[0] == mdtrt_id and line.chrg_bchno == bchno]
        if not keys:
            raise Refusal(f"收费批次号[{bchno}]不存在或已撤销")
        for key in keys:
            del ledger.fee_lines[key]
        ledger.cancelled_lines["2205"] += len(keys)
    return None


def cancel_lines(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2302 住院费用明细撤销: withdraws the named lines; all or nothing."""
    data = document["input"].get("data")
    if not isinstance(data, list) or not data:
        raise Refusal("撤销明细[data]不能为空")
    with ledger.lock:
        keys = []
        for entry in data:
            if not isinstance(entry, Mapping):
                raise Refusal("撤销明细格式错误")
            require(entry, ("feedetl_sn", "mdtrt_id", "psn_no"), "撤销明细")
            key = (str(entry["mdtrt_id"]), str(entry["feedetl_sn"]))
            if key not in ledger.fee_lines:
                raise Refusal(f"费用明细[{key[1]}]不存在或已撤销")
            refunds = [line.feedetl_sn for line in ledger.fee_lines.values()
                       if line.mdtrt_id == key[0] and line.cnt < 0 and line.init_feedetl_sn == key[1]]
            if refunds:
                raise Refusal(f"费用明细[{key[1]}]已有退费明细[{refunds[0]}], 请先撤销退费明细")
            keys.append(key)
        for key in keys:
            del ledger.fee_lines[key]
        ledger.cancelled_lines["2302"] += len(keys)
    return None


_SETLINFO_REQUIRED = (
    "mdtrt_id", "setl_id", "fixmedins_name", "fixmedins_code", "medcasno", "psn_name", "gend", "brdy",
    "hi_type", "insuplc", "ipt_med_type", "adm_time", "dscg_time", "act_ipt_days", "dscg_way",
    "chfpdr_name", "chfpdr_code", "setl_begn_date", "setl_end_date", "hi_paymtd",
)


def settlement_list(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """4101A 结算清单上传: one list per setl_id (a repeat is kept once)."""
    info = node(document, "setlinfo")
    require(info, _SETLINFO_REQUIRED, "结算清单")
    _doctor(info["chfpdr_code"], "主诊医师代码")
    for name in ("payinfo", "diseinfo", "iteminfo"):
        entries = document["input"].get(name)
        if not isinstance(entries, list) or not entries:
            raise Refusal(f"结算清单[{name}]不能为空")
    if sum(1 for d in document["input"]["diseinfo"] if d.get("maindiag_flag") == "1") != 1:
        raise Refusal("结算清单诊断信息必须有且只有一个主诊断")
    setl_id = str(info["setl_id"])
    with ledger.lock:
        if faults.require_admission and str(info["mdtrt_id"]) not in ledger.visits:
            raise Refusal(f"就诊ID[{info['mdtrt_id']}]不存在")
        if setl_id in ledger.settlement_lists:
            ledger.duplicates["4101A"] += 1
        else:
            ledger.settlement_lists[setl_id] = {k: v for k, v in document["input"].items()}
            ledger.settlements[setl_id] = _settlement_of(info, document)
    return {"setl_list_id": f"QD{setl_id}"}


def _settlement_of(info: Mapping[str, Any], document: Mapping[str, Any]) -> dict[str, Any]:
    """What the centre's own settlement ledger keeps of a settlement list (for 3201/3202)."""
    fund = sum((Decimal(str(p.get("fund_payamt") or 0)) for p in document["input"]["payinfo"]), Decimal(0))
    acct, cash = Decimal(str(info.get("acct_pay") or 0)), Decimal(str(info.get("psn_cashpay") or 0))
    return {
        "setl_id": str(info["setl_id"]), "mdtrt_id": str(info["mdtrt_id"]), "psn_no": str(info.get("psn_no") or ""),
        "insutype": str(info.get("hi_type") or ""), "clr_type": "21", "setl_date": str(info["setl_end_date"])[:10],
        "medfee_sumamt": fund + acct + cash, "fund_pay_sumamt": fund, "acct_pay": acct, "cash_payamt": cash,
        "refd_setl_flag": "0", "msgid": str(document["msgid"]),
    }


def settlement_list_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """4103 结算清单信息查询: the list held for a setl_id (empty when none)."""
    data = node(document, "data")
    require(data, ("setl_id",), "查询输入")
    with ledger.lock:
        held = ledger.settlement_lists.get(str(data["setl_id"]))
    return {"setlinfo": [dict(held["setlinfo"])] if held else []}


HANDLERS = {
    "2201": registration, "2203": visit_info, "2204": outpatient_fees, "2205": cancel_batch,
    "2302": cancel_lines, "4101A": settlement_list, "4103": settlement_list_query, "5201": visit_query,
}
