"""The simulated centre's outpatient, cancellation and settlement-list transactions
(reference §3.6, §3.7, §3.9) and the queries that answer for them after a lost reply.

Withdrawals, as the adapter relies on them. The spec's words are the tables' notes; the rest
is this simulation's choice:

* 2302 住院费用明细撤销 names lines by feedetl_sn (spec: "传入‘0000’时删除全部"). It withdraws
  exactly the lines named, all or nothing: a line the centre does not hold refuses the whole
  request, "费用明细[…]不存在或已撤销"; so does a line named twice, or an original whose refund
  is still held and not withdrawn with it. A feedetl_sn of "0000" is refused (the real centre
  would delete every line of the visit; the adapter must never send it), "费用明细流水号[0000]
  会删除就诊[…]的全部明细, 模拟中心不受理".
* 2205 门诊费用明细信息撤销 withdraws one charge batch, chrg_bchno (spec: "传入‘0000’删除所有
  未结算明细", "已参与结算的明细不能撤销"). A batch the centre does not hold is refused,
  "收费批次号[…]不存在或已撤销"; one of a visit the centre holds a settlement of,
  "收费批次号[…]的明细已参与结算, 已参与结算的明细不能撤销"; "0000" is refused as for 2302.
* 5201 answers the person's visits that began within begntime..endtime with that med_type
  (a 2201 registration carries no 医疗类别: the centre registers it as 11 普通门诊 until a 2203
  names another); 4103 answers one setlinfo object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from adapter.rehearsal.centre import people
from adapter.rehearsal.centre.checks import (
    FEE_REQUIRED,
    Refusal,
    charge_type,
    check_fee_line,
    fee_answer,
    moment,
    node,
    require,
    stored_line,
    window,
)
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger

_NATIONAL_DOCTOR = re.compile(r"D\d{12}")
#: 医疗类别 of a registration until a 2203 names one (11 普通门诊): 2201 carries none
REGISTRATION_MED_TYPE = "11"
#: what 2302 and 2205 take to mean "every line" (the spec's 删除全部), refused here
EVERYTHING = "0000"
#: 2204 carries no med_type and adds the batch and the prescription-circulation flag.
_OUTPATIENT_FEE_REQUIRED = (
    *(name for name in FEE_REQUIRED if name != "med_type"), "chrg_bchno", "rx_circ_flag", "hosp_appr_flag",
)


def _doctor(code: Any, what: str) -> None:
    if not _NATIONAL_DOCTOR.fullmatch(str(code)):
        raise Refusal(f"{what}[{code}]必须为国家医保医师代码")


def _doctor_if_given(code: Any, what: str) -> None:
    if code not in (None, ""):
        _doctor(code, what)


# 2201 and 2203 keep the centre's business rules only (keys, repeats, registered visits, national
# codes): what the published tables require of a request is checked by TableCheck when the
# centre runs with check_tables; a handler asks only for the keys its rules need.
def registration(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2201 门诊挂号: answers the centre's mdtrt_id; one registration per HIS visit number."""
    data = node(document, "data")
    require(data, ("psn_no", "ipt_otp_no"), "挂号信息")
    _doctor_if_given(data.get("atddr_no"), "医师编码")
    key = (str(data["psn_no"]), str(data["ipt_otp_no"]))
    with ledger.lock:
        if key in ledger.registrations:
            ledger.duplicates["2201"] += 1
            raise Refusal(f"门诊号[{key[1]}]已挂号, 不能重复挂号")
        mdtrt_id = f"{document['mdtrtarea_admvs']}{ledger.next_serial():012d}"
        ledger.registrations[key] = mdtrt_id
        ledger.visits[mdtrt_id] = {"psn_no": key[0], "ipt_no": key[1], "discharged": False, "outpatient": True,
                                   "begntime": str(data.get("begntime") or ""),
                                   "insutype": str(data.get("insutype") or ""), "med_type": REGISTRATION_MED_TYPE}
    people.learn(ledger, key[0], {name: data.get(name) for name in
                                  ("psn_name", "psn_cert_type", "certno", "psn_type", "insutype")})
    return {"data": {"mdtrt_id": mdtrt_id, "psn_no": key[0], "ipt_otp_no": key[1]}}


def visit_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """5201 就诊信息查询: the person's visits that began within begntime..endtime with that
    med_type (and that mdtrt_id, if given), as the edition's ``mdtrtinfo`` list (the adapter
    asks after a lost 2201 reply)."""
    data = node(document, "data")
    require(data, ("psn_no", "med_type"), "查询输入")
    begin, end = window(data, "查询输入")
    psn_no, med_type, mdtrt_id = str(data["psn_no"]), str(data["med_type"]), str(data.get("mdtrt_id") or "")
    with ledger.lock:
        visits = [(key, dict(visit)) for key, visit in ledger.visits.items()
                  if visit["psn_no"] == psn_no and visit.get("med_type") == med_type
                  and (not mdtrt_id or key == mdtrt_id) and _began_within(visit, begin, end)]
    return {"mdtrtinfo": [_visit_entry(ledger, key, visit) for key, visit in visits]}


def _began_within(visit: Mapping[str, Any], begin: datetime, end: datetime) -> bool:
    try:
        return begin <= moment(visit.get("begntime"), "") <= end
    except Refusal:
        return False  # a visit without a time the centre could read is in no window


def _visit_entry(ledger: CentreLedger, mdtrt_id: str, visit: Mapping[str, Any]) -> dict[str, Any]:
    """One visit of a 5201 answer: the visit and the person as the centre's registry has them.
    A visit not yet ended answers its begntime as endtime (the edition marks endtime
    non-empty)."""
    person = people.person(ledger, str(visit["psn_no"]))
    begntime = str(visit.get("begntime") or "")
    return {
        "mdtrt_id": mdtrt_id, "psn_no": person["psn_no"], "psn_cert_type": person["psn_cert_type"],
        "certno": person["certno"], "psn_name": person["psn_name"], "gend": person["gend"], "naty": person["naty"],
        "brdy": person["brdy"], "age": person["age"], "insutype": visit.get("insutype") or person["insutype"],
        "psn_type": person["psn_type"], "cvlserv_flag": person["cvlserv_flag"], "begntime": begntime,
        "endtime": str(visit.get("endtime") or begntime), "med_type": visit.get("med_type"),
        "ipt_otp_no": visit["ipt_no"],
    }


def _registered(ledger: CentreLedger, mdtrt_id: str, psn_no: str) -> None:
    visit = ledger.visits.get(mdtrt_id)
    if visit is None:
        raise Refusal(f"就诊ID[{mdtrt_id}]不存在, 请先办理挂号或入院登记")
    if visit["psn_no"] != psn_no:
        raise Refusal(f"就诊ID[{mdtrt_id}]与人员编号[{psn_no}]不匹配")


def visit_info(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2203 门诊就诊信息上传: the diagnosis of a registered visit (a repeat replaces it)."""
    info = node(document, "mdtrtinfo")
    require(info, ("mdtrt_id", "psn_no"), "就诊信息")
    diseinfo = document["input"].get("diseinfo")
    if not isinstance(diseinfo, list) or not diseinfo:
        raise Refusal("诊断信息[diseinfo]不能为空")
    for entry in diseinfo:
        if not isinstance(entry, Mapping):
            raise Refusal("诊断信息[diseinfo]格式错误")
        _doctor_if_given(entry.get("dise_dor_no"), "诊断医生编码")
    with ledger.lock:
        _registered(ledger, str(info["mdtrt_id"]), str(info["psn_no"]))
        if str(info["mdtrt_id"]) in ledger.visit_info:
            ledger.duplicates["2203"] += 1
        ledger.visit_info[str(info["mdtrt_id"])] = {"mdtrtinfo": dict(info), "diseinfo": list(diseinfo)}
        if info.get("med_type"):
            ledger.visits[str(info["mdtrt_id"])]["med_type"] = str(info["med_type"])
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
        med_type = str(ledger.visits[mdtrt_id].get("med_type") or REGISTRATION_MED_TYPE)
        for line, item in zip(parsed, details, strict=True):
            ledger.fee_lines.setdefault((mdtrt_id, line.feedetl_sn), stored_line(
                line, item, str(document["msgid"]), chrg_bchno=bchno, med_type=med_type))
    return {"result": [fee_answer(line, faults) for line in parsed]}


def cancel_batch(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2205 门诊费用明细撤销: withdraws every line of one charge batch (see the module's notes)."""
    data = node(document, "data")
    require(data, ("mdtrt_id", "chrg_bchno", "psn_no"), "撤销信息")
    mdtrt_id, bchno = str(data["mdtrt_id"]), str(data["chrg_bchno"])
    if bchno == EVERYTHING:
        raise Refusal(f"收费批次号[{EVERYTHING}]会删除就诊[{mdtrt_id}]的全部未结算明细, 模拟中心不受理")
    with ledger.lock:
        _registered(ledger, mdtrt_id, str(data["psn_no"]))
        keys = [key for key, line in ledger.fee_lines.items() if key[0] == mdtrt_id and line.chrg_bchno == bchno]
        if not keys:
            raise Refusal(f"收费批次号[{bchno}]不存在或已撤销")
        if any(str(row.get("mdtrt_id")) == mdtrt_id for row in ledger.settlements.rows()):
            raise Refusal(f"收费批次号[{bchno}]的明细已参与结算, 已参与结算的明细不能撤销")
        for key in keys:
            del ledger.fee_lines[key]
        ledger.cancelled_lines["2205"] += len(keys)
    return None


def cancel_lines(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2302 住院费用明细撤销: withdraws exactly the named lines, all or nothing (see the
    module's notes)."""
    data = document["input"].get("data")
    if not isinstance(data, list) or not data:
        raise Refusal("撤销明细[data]不能为空")
    with ledger.lock:
        keys: list[tuple[str, str]] = []
        for entry in data:
            if not isinstance(entry, Mapping):
                raise Refusal("撤销明细格式错误")
            require(entry, ("feedetl_sn", "mdtrt_id", "psn_no"), "撤销明细")
            key = (str(entry["mdtrt_id"]), str(entry["feedetl_sn"]))
            if key[1] == EVERYTHING:
                raise Refusal(f"费用明细流水号[{EVERYTHING}]会删除就诊[{key[0]}]的全部明细, 模拟中心不受理")
            if key in keys:
                raise Refusal(f"费用明细[{key[1]}]在本次撤销中出现多次")
            if key not in ledger.fee_lines:
                raise Refusal(f"费用明细[{key[1]}]不存在或已撤销")
            # Refunds withdrawn in the same request do not hold their original back.
            named = {(str(e.get("mdtrt_id")), str(e.get("feedetl_sn"))) for e in data if isinstance(e, Mapping)}
            refunds = [line.feedetl_sn for line in ledger.fee_lines.values()
                       if line.mdtrt_id == key[0] and line.cnt < 0 and line.init_feedetl_sn == key[1]
                       and (line.mdtrt_id, line.feedetl_sn) not in named]
            if refunds:
                raise Refusal(f"费用明细[{key[1]}]已有退费明细[{refunds[0]}], 请先撤销退费明细")
            keys.append(key)
        for key in keys:
            del ledger.fee_lines[key]
        ledger.cancelled_lines["2302"] += len(keys)
    return None


# -- 4101 / 4103: the settlement list --------------------------------------------------------
# What the published tables require of a 4101 is checked by TableCheck when the centre runs
# with check_tables; the handler keeps the centre's own rules: the keys it files a list under,
# one main diagnosis, a national code for the chief physician, a registered stay where asked.

#: 4101 setlinfo fields that 4103 answers under another name (【4103】 输出 setlinfo)
_ANSWERED_AS = {
    "poscode": "emp_poscode", "opsp_mdtrt_date": "opsp_mdtrt_time", "adm_way": "adm_way_code",
    "adm_dept_code": "adm_dept_codg", "refldept_dept": "refl_caty", "dscg_dept_code": "dscg_dept_codg",
    "wm_dise_code": "otp_wm_diag_dise_code", "tcm_dise_code": "otp_tcm_diag_dise_code", "age_days": "age_daus",
}
#: 4101 durations written 天数/小时数/分钟数 ("1/13/24") that 4103 answers as three numbers
_DURATIONS = {
    "vent_used_dura": ("vent_used_days", "vent_used_h_cnt", "vent_used_m_cnt"),
    "pwcry_bfadm_coma_dura": ("bfadm_coma_days", "bfadm_coma_h_cnt", "bfadm_coma_m_cnt"),
    "pwcry_afadm_coma_dura": ("afadm_coma_days", "afadm_coma_h_cnt", "afadm_coma_m_cnt"),
}
#: 4103 list nodes -> the name of their own id field (结算清单…ID), which the centre issues
_ENTRY_IDS = {
    "payinfo": "", "opspdiseinfo": "setl_list_opsp_trt_id", "diseinfo": "setl_list_diag_id",
    "oprninfo": "setl_list_oprn_id", "icuinfo": "setl_list_scs_cutd_id", "bldinfo": "",
}
_CENT = Decimal("0.01")


def settlement_list(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """4101 医疗保障基金结算清单信息上传: one list per setl_id (a repeat is kept once), answered
    with the list's serial (清单流水号). The settlement the counter made of it
    (:meth:`CentreLedger.settled_at_counter`) enters the reconciled ledger with its list."""
    info = node(document, "setlinfo")
    require(info, ("setl_id", "mdtrt_id"), "结算清单")
    _doctor_if_given(info.get("chfpdr_code"), "主诊医师代码")
    diseinfo = document["input"].get("diseinfo")
    entries = diseinfo if isinstance(diseinfo, list) else []
    if sum(1 for d in entries if isinstance(d, Mapping) and str(d.get("maindiag_flag")) == "1") != 1:
        raise Refusal("结算清单诊断信息必须有且只有一个主诊断")
    setl_id, mdtrt_id = str(info["setl_id"]), str(info["mdtrt_id"])
    with ledger.lock:
        if faults.require_admission and mdtrt_id not in ledger.visits:
            raise Refusal(f"就诊ID[{mdtrt_id}]不存在")
        held = ledger.settlement_lists.get(setl_id)
        if held is not None:
            ledger.duplicates["4101"] += 1
            return {"data": {"setl_list_id": held["setlinfo"]["setl_list_sn"]}}
        serial = f"{ledger.next_serial():09d}"
        counter = ledger.counter_settlements.get(setl_id)
        ledger.settlement_lists[setl_id] = _held_list(document, serial, counter, ledger)
        if counter is not None:
            ledger.record_settlement(_settlement_of(counter, info))
    return {"data": {"setl_list_id": serial}}


def _amount(value: Any) -> Decimal:
    return Decimal(str(value if value not in (None, "") else 0)).quantize(_CENT)


def _settlement_of(counter: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
    """The centre's settlement ledger row (what 3201/3202 compare against) of a settlement the
    counter made, once its list arrived: the list names the stay by the centre's mdtrt_id."""
    row = {
        "setl_id": str(counter["setl_id"]), "mdtrt_id": str(info["mdtrt_id"]),
        "psn_no": str(info.get("psn_no") or counter.get("psn_no") or ""),
        "insutype": str(counter.get("insutype") or ""), "clr_type": str(counter.get("clr_type") or ""),
        "setl_date": str(counter.get("setl_time") or info.get("setl_end_date") or "")[:10],
        "medfee_sumamt": _amount(counter.get("medfee_sumamt")),
        "fund_pay_sumamt": _amount(counter.get("fund_pay_sumamt")), "acct_pay": _amount(counter.get("acct_pay")),
        "cash_payamt": _amount(counter.get("psn_cash_pay")),
        "refd_setl_flag": str(counter.get("refd_setl_flag") or "0"), "msgid": str(counter.get("msgid") or ""),
    }
    if counter.get("setl_optins"):
        row["setl_optins"] = str(counter["setl_optins"])
    return row


def _held_list(document: Mapping[str, Any], serial: str, counter: Mapping[str, Any] | None,
               ledger: CentreLedger) -> dict[str, Any]:
    """A 4101 as the centre keeps it and 4103 answers it (【4103】 输出): setlinfo one object,
    with the settlement's money where the counter settled it (0 where the centre knows of no
    settlement) and the person as the centre's registry has them; every other node a list
    whose entries name the settlement, each with the centre's own id; iteminfo the centre's own.
    What the edition marks non-empty but no message brings is this simulation's choice:
    病案号 the stay's 住院号, 联系人姓名 the person's name, 入院科别 the 出院科别, 门慢门特病种 无
    (a stay has none), 统筹区基金支付类型 from its dictionary (see :func:`_pool_fund_type`)."""
    given = document["input"]
    info = node(document, "setlinfo")
    setl_id, mdtrt_id, psn_no = str(info["setl_id"]), str(info["mdtrt_id"]), str(info.get("psn_no") or "")
    setlinfo: dict[str, Any] = {"setl_id": setl_id, "setl_list_sn": serial, "psn_no": psn_no, "mdtrt_id": mdtrt_id,
                                "fixmedins_name": document.get("fixmedins_name"),
                                "fixmedins_code": document.get("fixmedins_code"),
                                "dcla_time": datetime.now().strftime("%Y-%m-%d %H:%M:%S"), "ipt_med_type": "1",
                                "hsorg_opter": "模拟中心"}
    for name, value in info.items():
        if value in (None, "") or name in setlinfo:
            continue
        if name in _DURATIONS:
            parts = str(value).split("/")
            setlinfo.update({answered: part for answered, part in zip(_DURATIONS[name], parts, strict=False)
                             if part.strip().isdigit()})
        else:
            setlinfo[_ANSWERED_AS.get(name, name)] = value
    lists = {name: [e for e in given.get(name) or [] if isinstance(e, Mapping)] for name in _ENTRY_IDS}
    setlinfo["diag_code_cnt"] = len(lists["diseinfo"])
    setlinfo["oprn_oprt_code_cnt"] = len(lists["oprninfo"])
    visit = ledger.visits.get(mdtrt_id, {})
    _fill_person(setlinfo, people.person(ledger, psn_no), visit)
    setlinfo.update(_money(counter))
    # 医保类型 (dictionary mdcs_type) of an insured stay: its 险种
    insutype = (counter or {}).get("insutype") or visit.get("insutype") or setlinfo["insutype"]
    setlinfo.update({"insutype": insutype, "hi_type": insutype})
    if counter is not None and counter.get("setl_time"):
        setlinfo["setl_time"] = counter["setl_time"]
    names = {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no}
    held: dict[str, Any] = {"setlinfo": setlinfo}
    for name, id_field in _ENTRY_IDS.items():
        held[name] = [{**({id_field: f"{serial}{index:03d}"} if id_field else {}), **names, **entry}
                      for index, entry in enumerate(lists[name], start=1)]
    for entry in held["payinfo"]:
        entry.setdefault("poolarea_fund_pay_type", _pool_fund_type(str(insutype)))
    for entry in held["oprninfo"]:
        entry["main_oprn_flag"] = "1" if str(entry.pop("oprn_oprt_type", "")) == "1" else "0"
        if entry.get("oprn_oprt_begntime"):
            entry["oprn_oprt_date"] = str(entry["oprn_oprt_begntime"])[:10]
    held["iteminfo"] = _charge_items(ledger, serial, names)
    return held


def _fill_person(setlinfo: dict[str, Any], person: Mapping[str, Any], visit: Mapping[str, Any]) -> None:
    """The person's and the stay's fields of a 4103 setlinfo the 4101 did not give."""
    setlinfo.setdefault("psn_name", person["psn_name"])
    setlinfo.setdefault("gend", person["gend"])
    setlinfo.setdefault("brdy", person["brdy"])
    if person["age"] >= 1:  # 年龄: "大于1岁（含1岁）时必填"
        setlinfo.setdefault("age", person["age"])
    setlinfo.setdefault("naty", person["naty"])
    setlinfo.setdefault("patn_cert_type", people.patient_cert_type(str(person["psn_cert_type"])))
    setlinfo.setdefault("certno", person["certno"])
    setlinfo.setdefault("insutype", person["insutype"])
    setlinfo.setdefault("medcasno", str(visit.get("ipt_no") or setlinfo["mdtrt_id"]))
    setlinfo.setdefault("coner_name", person["psn_name"])
    if setlinfo.get("dscg_caty"):
        setlinfo.setdefault("adm_caty", setlinfo["dscg_caty"])
    setlinfo.setdefault("opsp_dise_code", "无")
    setlinfo.setdefault("opsp_dise_name", "无")


def _money(counter: Mapping[str, Any] | None) -> dict[str, Decimal]:
    """个人账户支出, 个人现金支付, 个人自费 and 个人自付 of the settlement the counter made (all 0
    when the centre knows of none)."""
    counter = counter or {}
    acct, cash = _amount(counter.get("acct_pay")), _amount(counter.get("psn_cash_pay"))
    ownpay = _amount(counter.get("fulamt_ownpay_amt"))
    return {"acct_pay": acct, "psn_cashpay": cash, "psn_ownpay": ownpay,
            "psn_selfpay": max(acct + cash - ownpay, Decimal(0)).quantize(_CENT)}


def _pool_fund_type(insutype: str) -> str:
    """统筹区基金支付类型 of a fund payment. The edition's dictionary 6.292 lists only 660101 城镇
    职工长期护理保险基金 and 660102 城乡居民长期护理保险基金, which a real centre would replace with
    its own local codes; the simulated centre answers the one of the person's scheme (职工 310,
    else 居民)."""
    return "660101" if insutype.startswith("31") else "660102"


def _charge_items(ledger: CentreLedger, serial: str, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """收费项目信息: the stay's fee lines the centre holds, totalled by 医疗收费项目类别 (all 甲类:
    the simulated centre grades no item)."""
    totals: dict[str, Decimal] = {}
    for line in ledger.fee_lines.values():
        if line.mdtrt_id == names["mdtrt_id"]:
            kind = charge_type(line.med_list_codg)
            totals[kind] = totals.get(kind, Decimal(0)) + line.det_item_fee_sumamt
    zero = Decimal(0).quantize(_CENT)
    return [{"etl_list_chrgitm_id": f"{serial}{index:03d}", **names, "med_chrgitm_type": kind,
             "item_sumamt": amount.quantize(_CENT), "item_claa_sumfee": amount.quantize(_CENT), "item_clab_amt": zero,
             "item_fulamt_ownpay_amt": zero, "item_ownpay_amt": zero}
            for index, (kind, amount) in enumerate(sorted(totals.items()), start=1)]


def settlement_list_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """4103 医疗保障基金结算清单信息查询: the list held for the person's settlement (psn_no and
    setl_id), in the edition's output layout. One it holds none of is refused in words that say
    so (this simulation's choice; the edition does not say how "none" is answered)."""
    data = node(document, "data")
    with ledger.lock:
        held = ledger.settlement_lists.get(str(data.get("setl_id") or ""))
        if held is None or str(held["setlinfo"].get("psn_no") or "") != str(data.get("psn_no") or ""):
            raise Refusal(f"结算ID[{data.get('setl_id')}]的结算清单信息不存在")
        return {name: dict(value) if isinstance(value, Mapping) else [dict(e) for e in value]
                for name, value in held.items()}


HANDLERS = {
    "2201": registration, "2203": visit_info, "2204": outpatient_fees, "2205": cancel_batch,
    "2302": cancel_lines, "4101": settlement_list, "4103": settlement_list_query, "5201": visit_query,
}
