"""The simulated centre's side of the protocol: strict envelope checks and transactions.

Checks follow reference §1.2 and §3.7 so that a malformed message is refused here as the real
centre would refuse it, with an err_msg in the centre's style.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from adapter.rehearsal.centre import files, reconcile, transactions
from adapter.rehearsal.centre.checks import Refusal, check_fee_line, fee_answer, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger, StoredFeeLine

_HEADER_RULES: dict[str, tuple[bool, int]] = {
    # field: (required, max length)
    "infno": (True, 6),
    "msgid": (True, 30),
    "mdtrtarea_admvs": (True, 6),
    "insuplc_admdvs": (False, 6),
    "recer_sys_code": (True, 10),
    "dev_no": (False, 100),
    "dev_safe_info": (False, 2000),
    "cainfo": (False, 1024),
    "signtype": (False, 10),
    "infver": (True, 6),
    "opter_type": (True, 3),
    "opter": (True, 30),
    "opter_name": (True, 50),
    "inf_time": (True, 19),
    "fixmedins_code": (True, 30),
    "fixmedins_name": (True, 200),
    "sign_no": (False, 30),
}
_MSGID = re.compile(r"^(?P<code>[HP]\d{11})(?P<stamp>\d{14})\d{4}$")
def check_envelope(document: Any, ledger: CentreLedger, faults: FaultPlan | None = None) -> str:
    """Refuse a malformed envelope; returns the infno."""
    if not isinstance(document, Mapping):
        raise Refusal("请求报文不是JSON对象")
    for name, (required, limit) in _HEADER_RULES.items():
        value = document.get(name)
        if value is None or value == "":
            if required:
                raise Refusal(f"报文头[{name}]不能为空")
            continue
        if not isinstance(value, str):
            raise Refusal(f"报文头[{name}]应为字符串")
        if len(value) > limit:
            raise Refusal(f"报文头[{name}]长度超过{limit}")
    msgid = document["msgid"]
    match = _MSGID.match(msgid)
    if not match or match["code"] != document["fixmedins_code"]:
        raise Refusal(f"发送方报文ID[{msgid}]格式错误: 应为定点医药机构编号+yyyyMMddHHmmss+4位顺序号")
    try:
        datetime.strptime(match["stamp"], "%Y%m%d%H%M%S")
        datetime.strptime(document["inf_time"], "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Refusal("交易时间格式错误: inf_time 应为 yyyy-MM-dd HH:mm:ss") from None
    for name in ("mdtrtarea_admvs", "insuplc_admdvs"):
        value = document.get(name)
        if value and not re.fullmatch(r"\d{6}", value):
            raise Refusal(f"报文头[{name}]应为6位医保区划")
    if document["opter_type"] not in ("1", "2", "3"):
        raise Refusal("经办人类别[opter_type]取值错误")
    if not isinstance(document.get("input"), Mapping):
        raise Refusal("交易输入[input]不能为空")
    with ledger.lock:
        if msgid in ledger.msgids:
            raise Refusal(f"发送方报文ID[{msgid}]重复")
        ledger.msgids.add(msgid)
    infno: str = document["infno"]  # checked above: a non-empty string
    if infno != "9001":
        _use_session(str(document.get("sign_no") or ""), ledger, faults)
    return infno


def _use_session(sign_no: str, ledger: CentreLedger, faults: FaultPlan | None) -> None:
    max_uses = faults.session_max_uses if faults is not None else 0
    with ledger.lock:
        uses = ledger.sign_nos.get(sign_no)
        if uses is None:
            raise Refusal("签到流水号[sign_no]无效或已过期, 请重新签到")
        if max_uses and uses >= max_uses:
            del ledger.sign_nos[sign_no]
            ledger.expired_sessions += 1
            raise Refusal("签到流水号[sign_no]无效或已过期, 请重新签到")
        ledger.sign_nos[sign_no] = uses + 1


def handle(infno: str, document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """Run one transaction; returns ``output`` or raises :class:`Refusal`."""
    handler = _HANDLERS.get(infno)
    if handler is None:
        raise Refusal(f"交易编号[{infno}]不存在")
    return handler(document, ledger, faults)


def _sign_in(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    sign_in = document["input"].get("signIn")
    if not isinstance(sign_in, Mapping) or not sign_in.get("opter_no") or not sign_in.get("ip"):
        raise Refusal("签到输入[signIn]缺少 opter_no 或 ip")
    sign_no = str(secrets.randbelow(10**9)).zfill(9)
    with ledger.lock:
        ledger.sign_nos[sign_no] = 0
    now = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    return {"signinoutb": {"sign_no": sign_no, "sign_time": now}}


def _sign_out(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    sign_out = document["input"].get("signOut")
    if not isinstance(sign_out, Mapping) or not sign_out.get("sign_no"):
        raise Refusal("签退输入[signOut]缺少 sign_no")
    with ledger.lock:
        if ledger.sign_nos.pop(str(sign_out["sign_no"]), None) is None:
            raise Refusal("签退的签到流水号不存在")
        ledger.sign_outs += 1
    return {"signoutoutb": {"sign_time": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}}


def _fee_detail_upload(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    details = document["input"].get("feedetail")
    if not isinstance(details, list) or not details:
        raise Refusal("费用明细[feedetail]不能为空")
    parsed = [check_fee_line(item, faults) for item in details]
    if faults.require_admission:
        with ledger.lock:
            for line in parsed:
                if line.mdtrt_id not in ledger.visits:
                    raise Refusal(f"就诊ID[{line.mdtrt_id}]不存在, 请先办理入院登记")
    msgid = document["msgid"]
    with ledger.lock:
        keys_in_message = set()
        for line, item in zip(parsed, details, strict=True):
            original = item.get("init_feedetl_sn") or ""
            if line.cnt < 0:
                if not original:
                    raise Refusal(f"费用明细[{line.feedetl_sn}]为退费明细, 原费用明细流水号不能为空")
                if (line.mdtrt_id, original) not in ledger.fee_lines and (
                    line.mdtrt_id, original
                ) not in keys_in_message:
                    raise Refusal(f"费用明细[{line.feedetl_sn}]的原费用明细流水号[{original}]不存在")
            keys_in_message.add((line.mdtrt_id, line.feedetl_sn))
        result = []
        for line in parsed:
            key = (line.mdtrt_id, line.feedetl_sn)
            if key in ledger.fee_lines:
                ledger.duplicate_lines += 1
            else:
                ledger.fee_lines[key] = StoredFeeLine(
                    line.mdtrt_id, line.feedetl_sn, line.med_list_codg, line.cnt,
                    line.det_item_fee_sumamt, msgid, str(item.get("hosp_appr_flag") or ""),
                    str(item.get("exp_content") or ""), init_feedetl_sn=str(item.get("init_feedetl_sn") or ""),
                )
            result.append(fee_answer(line, faults))
    return {"result": result}


def _fee_list_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """5204 费用明细查询: the lines the centre holds for one visit."""
    data = document["input"].get("data")
    if not isinstance(data, Mapping) or not data.get("mdtrt_id") or not data.get("psn_no"):
        raise Refusal("查询输入[data]缺少 mdtrt_id 或 psn_no")
    mdtrt_id = str(data["mdtrt_id"])
    with ledger.lock:
        lines = [line for key, line in ledger.fee_lines.items() if key[0] == mdtrt_id]
    return {
        "feedetail": [
            {
                "feedetl_sn": line.feedetl_sn,
                "mdtrt_id": line.mdtrt_id,
                "med_list_codg": line.med_list_codg,
                "cnt": line.cnt,
                "det_item_fee_sumamt": line.det_item_fee_sumamt,
                "chrg_bchno": line.chrg_bchno,
            }
            for line in lines
        ]
    }


#: 2601 may cancel only these (reference §5).
REVERSIBLE = frozenset({"2102", "2103", "2207", "2208", "2304", "2305", "2401"})


def _reversal(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2601 冲正: undo what the original message (omsgid) committed."""
    data = document["input"].get("data")
    if not isinstance(data, Mapping) or not all(data.get(k) for k in ("psn_no", "omsgid", "oinfno")):
        raise Refusal("冲正输入[data]缺少 psn_no、omsgid 或 oinfno")
    oinfno = str(data["oinfno"])
    if oinfno not in REVERSIBLE:
        raise Refusal(f"交易[{oinfno}]不支持冲正")
    with ledger.lock:
        undo = ledger.reversible.pop(str(data["omsgid"]), None)
        if undo is None:
            raise Refusal(f"原交易[{data['omsgid']}]不存在或已冲正")
        undo()
        ledger.reversals += 1
    return None


# The handlers below keep the centre's business rules only (keys, repeats, registered visits,
# national codes, one main diagnosis). What the published tables require of a request (fields
# present, lengths, types, dictionary values) is checked by TableCheck when the centre runs with
# check_tables; a handler asks only for the keys its rules need.


def _check_diseinfo(document: Mapping[str, Any]) -> None:
    diseinfo = document["input"].get("diseinfo")
    if not isinstance(diseinfo, list) or not diseinfo:
        raise Refusal("诊断信息[diseinfo]不能为空")
    mains = [d for d in diseinfo if isinstance(d, Mapping) and d.get("maindiag_flag") == "1"]
    if len(mains) != 1:
        raise Refusal("入院诊断只能有一个主诊断")
    for entry in diseinfo:
        if not isinstance(entry, Mapping):
            raise Refusal("诊断信息[diseinfo]格式错误")
        _national_doctor(entry.get("dise_dor_no"), "诊断医生编码")


def _national_doctor(code: Any, what: str) -> None:
    if code not in (None, "") and not re.fullmatch(r"D\d{12}", str(code)):
        raise Refusal(f"{what}[{code}]必须为国家医保医师代码")


def _admission(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2401 入院办理: registers the stay (one per person and ipt_no) and answers the centre's mdtrt_id."""
    info = node(document, "mdtrtinfo")
    require(info, ("psn_no", "ipt_no"), "入院信息")
    _national_doctor(info.get("atddr_no"), "主治医生编码")
    _check_diseinfo(document)
    key = (str(info["psn_no"]), str(info["ipt_no"]))
    with ledger.lock:
        if key in ledger.admissions_by_ipt:
            ledger.duplicates["2401"] += 1
            raise Refusal(f"该人员住院号[{key[1]}]已办理入院登记, 不能重复办理")
        mdtrt_id = f"{document['mdtrtarea_admvs']}{ledger.next_serial():012d}"
        ledger.visits[mdtrt_id] = {"psn_no": key[0], "ipt_no": key[1], "discharged": False}
        ledger.admissions_by_ipt[key] = mdtrt_id

        def undo() -> None:
            ledger.visits.pop(mdtrt_id, None)
            ledger.admissions_by_ipt.pop(key, None)

        ledger.reversible[str(document["msgid"])] = undo
    return {"result": {"mdtrt_id": mdtrt_id}}


def _discharge(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2402 出院办理: the stay must be registered and not yet discharged."""
    info = node(document, "dscginfo")
    require(info, ("mdtrt_id",), "出院信息")
    _check_diseinfo(document)
    with ledger.lock:
        visit = ledger.visits.get(str(info["mdtrt_id"]))
        if visit is None:
            raise Refusal(f"就诊ID[{info['mdtrt_id']}]不存在, 请先办理入院登记")
        if visit["discharged"]:
            ledger.duplicates["2402"] += 1
            raise Refusal(f"就诊ID[{info['mdtrt_id']}]已办理出院")
        visit["discharged"] = True
    return None


#: 进销存: (node, business key) per transaction; the centre keeps a record once per key.
_INVENTORY: dict[str, tuple[str, tuple[str, ...]]] = {
    "3501": ("invinfo", ("fixmedins_hilist_id", "fixmedins_bchno", "invdate")),
    "3502": ("invinfo", ("fixmedins_hilist_id", "fixmedins_bchno", "inv_chg_time")),
    "3503": ("purcinfo", ("fixmedins_hilist_id", "fixmedins_bchno")),
    "3504": ("purcinfo", ("fixmedins_hilist_id", "fixmedins_bchno", "purc_retn_stoin_time")),
    "3505": ("selinfo", ("rtal_docno", "fixmedins_hilist_id", "fixmedins_bchno")),
    "3506": ("selinfo", ("fixmedins_hilist_id", "fixmedins_bchno", "sel_retn_time")),
    "3507": ("data", ("fixmedins_bchno", "inv_data_type")),
}
#: 3507 进销存数据类型 -> the transactions whose data of the batch it deletes
_DELETES = {"1": ("3501",), "2": ("3502",), "3": ("3503", "3504"), "4": ("3505", "3506")}


def _inventory(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    infno = str(document["infno"])
    node_name, key_fields = _INVENTORY[infno]
    record = node(document, node_name)
    require(record, key_fields, "进销存信息")
    code = record.get("med_list_codg")
    if code is not None and code in faults.reject_codes:
        raise Refusal(f"医疗目录编码[{code}]不存在或已失效")
    key = (infno, *(str(record[name]) for name in key_fields))
    with ledger.lock:
        if key in ledger.inventory and key not in ledger.deleted_inventory:
            ledger.duplicates[infno] += 1  # the centre keeps it once
            return None
        ledger.deleted_inventory.discard(key)  # uploaded again after a 3507 deleted it
        if infno == "3507":
            _delete_batch_data(ledger, str(record["fixmedins_bchno"]), str(record["inv_data_type"]))
        ledger.inventory[key] = dict(record)
    return None


def _delete_batch_data(ledger: CentreLedger, batch: str, data_type: str) -> None:
    """3507 商品信息删除: the batch's data of that type is deleted (what arrived stays listed in
    ``ledger.inventory``; ``ledger.deleted_inventory`` names what a 3507 deleted)."""
    infnos = _DELETES.get(data_type)
    if infnos is None:
        raise Refusal(f"进销存数据类型[{data_type}]取值错误")
    doomed = [key for key, held in ledger.inventory.items()
              if key[0] in infnos and str(held.get("fixmedins_bchno")) == batch and key not in ledger.deleted_inventory]
    if not doomed:
        raise Refusal(f"批次[{batch}]没有可删除的{'/'.join(infnos)}数据")
    ledger.deleted_inventory.update(doomed)


def _in_hospital_query(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """5303 在院信息查询: the person's stays that are registered and not discharged."""
    data = node(document, "data")
    require(data, ("psn_no",), "查询输入")
    with ledger.lock:
        stays = [
            {"mdtrt_id": mdtrt_id, "psn_no": visit["psn_no"], "ipt_no": visit["ipt_no"]}
            for mdtrt_id, visit in ledger.visits.items()
            if visit["psn_no"] == data["psn_no"] and not visit["discharged"]
        ]
    return {"data": stays}


_HANDLERS = {
    "5303": _in_hospital_query,
    "9001": _sign_in, "9002": _sign_out, "2301": _fee_detail_upload, "2601": _reversal,
    "5204": _fee_list_query, "2401": _admission, "2402": _discharge,
    **{infno: _inventory for infno in _INVENTORY},
    **transactions.HANDLERS,
    **files.HANDLERS,
    **reconcile.HANDLERS,
}
