"""The simulated centre's side of the protocol: strict envelope checks and transactions.

The envelope is checked against the request table of the region's edition (its §4.1
报文头: required fields, lengths, types, dictionary values) so that a malformed message is
refused here as the real centre would refuse it, with an err_msg in the centre's style; the
msgid's shape (定点医药机构编号 + yyyyMMddHHmmss + 4位顺序号) and 6-digit 医保区划 are checked
besides, as the tables' notes describe them.

Repeats and withdrawals, as the adapter relies on them. The spec's words are in the tables'
notes; everything else is this simulation's choice, written as a real centre would plausibly
behave:

* 2301 (spec: none on repeats). A line is known by mdtrt_id + feedetl_sn. A message whose lines
  are all held already, each exactly as held, is a resend: kept once, answered again, counted
  in ``ledger.duplicate_lines`` (per line) and ``ledger.duplicates["2301"]`` (per message).
  Any other message with a held line is refused, "就诊[…]的费用明细流水号[…]已存在", naming the
  first such feedetl_sn; a feedetl_sn twice in one message is refused too.
* 2302, 2205: see :mod:`adapter.rehearsal.centre.transactions`.
* 3507 商品信息删除 (spec: "根据数据类型分别删除对应交易的数据", 1 → 3501, 2 → 3502, 3 → 3503/3504,
  4 → 3505/3506): deletes the batch's data of that type; with nothing to delete it is refused,
  "批次[…]没有可删除的…数据" (simulation).
* 2601 冲正 (spec: the reversible transactions are 2102, 2207, 2304 and 2401; omsgid and oinfno
  name the original): undoes what the original committed; an omsgid with nothing to reverse
  is refused, "原交易[…]不存在或已冲正"; an oinfno or psn_no other than the original's is refused
  (simulation).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from adapter.plugin.editions import EditionDifference
from adapter.rehearsal.centre import files, people, reconcile, transactions
from adapter.rehearsal.centre.checks import (
    ParsedLine,
    Refusal,
    check_fee_line,
    fee_answer,
    list_type,
    moment,
    node,
    require,
    stored_line,
    window,
)
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger, Reversible, StoredFeeLine
from adapter.spec.check import check_value, envelope_fields
from adapter.spec.tables import Edition, FieldTable, load_edition

_MSGID = re.compile(r"^(?P<code>[HP]\d{11})(?P<stamp>\d{14})\d{4}$")
#: what a message with a sign_no the centre does not hold is told (a restart forgot it, or it
#: was never issued); the centre cannot tell those apart, and says neither 过期 nor 无效
SESSION_UNKNOWN = "签到信息不存在,请重新签到"
#: what a message is told when its session ran out (``FaultPlan.session_max_uses``)
SESSION_EXPIRED = "签到流水号[sign_no]无效或已过期, 请重新签到"


def check_envelope(document: Any, ledger: CentreLedger, faults: FaultPlan | None = None,
                   edition: Edition | None = None, changes: Sequence[EditionDifference] = ()) -> str:
    """Refuse a malformed envelope; returns the infno. ``edition``: the region's (the default
    edition without one), read with the region's ``changes`` (e.g. the infno length)."""
    if not isinstance(document, Mapping):
        raise Refusal("请求报文不是JSON对象")
    edition, request = envelope_fields(edition or load_edition(), changes)
    for field in request:
        if field.code != "input":  # an object, checked below (the table gives it as 40000 characters)
            _check_header(edition, field, document.get(field.code))
    msgid = document["msgid"]
    match = _MSGID.match(msgid)
    if not match or match["code"] != document["fixmedins_code"]:
        raise Refusal(f"发送方报文ID[{msgid}]格式错误: 应为定点医药机构编号+yyyyMMddHHmmss+4位顺序号")
    try:
        datetime.strptime(match["stamp"], "%Y%m%d%H%M%S")
    except ValueError:
        raise Refusal(f"发送方报文ID[{msgid}]格式错误: 时间应为yyyyMMddHHmmss") from None
    for name in ("mdtrtarea_admvs", "insuplc_admdvs"):
        value = document.get(name)
        if value and not re.fullmatch(r"\d{6}", value):
            raise Refusal(f"报文头[{name}]应为6位医保区划")
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


def _check_header(edition: Edition, field: FieldTable, value: Any) -> None:
    """One field of the envelope against its row of the request table."""
    if value is None or value == "":
        if field.required:
            raise Refusal(f"报文头[{field.code}]不能为空")
        return
    if not isinstance(value, str):
        raise Refusal(f"报文头[{field.code}]应为字符串")
    problem = check_value(edition, field, value)
    if problem:
        raise Refusal(f"报文头[{field.code}]({field.label})校验失败: {problem}")


def _use_session(sign_no: str, ledger: CentreLedger, faults: FaultPlan | None) -> None:
    max_uses = faults.session_max_uses if faults is not None else 0
    with ledger.lock:
        uses = ledger.sign_nos.get(sign_no)
        if uses is None:
            if sign_no in ledger.forgotten_sign_nos:
                ledger.forgotten_session_refusals += 1
            raise Refusal(SESSION_UNKNOWN)
        if max_uses and uses >= max_uses:
            del ledger.sign_nos[sign_no]
            ledger.expired_sessions += 1
            raise Refusal(SESSION_EXPIRED)
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
    # 【9002】 of this edition names its output node sign_time (the national one: signoutoutb)
    return {"sign_time": {"sign_time": datetime.now().strftime("%Y-%m-%d %H:%M:%S")}}


def _fee_detail_upload(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """2301 住院费用明细上传: the lines, each once (see the module's notes on repeats)."""
    details = document["input"].get("feedetail")
    if not isinstance(details, list) or not details:
        raise Refusal("费用明细[feedetail]不能为空")
    parsed = [check_fee_line(item, faults) for item in details]
    if faults.require_admission:
        with ledger.lock:
            for parsed_line in parsed:
                if parsed_line.mdtrt_id not in ledger.visits:
                    raise Refusal(f"就诊ID[{parsed_line.mdtrt_id}]不存在, 请先办理入院登记")
    stored = [stored_line(line, item, str(document["msgid"])) for line, item in zip(parsed, details, strict=True)]
    with ledger.lock:
        _check_refunds(stored, ledger)
        if _repeated(stored, ledger, "2301"):
            ledger.duplicate_lines += len(stored)
            ledger.duplicates["2301"] += 1
        else:
            for held in stored:
                ledger.fee_lines[(held.mdtrt_id, held.feedetl_sn)] = held
    return {"result": [fee_answer(line, faults) for line in parsed]}


def _check_refunds(lines: list[StoredFeeLine], ledger: CentreLedger) -> None:
    """A refund line (negative count) names the line it refunds, held or sent before it."""
    keys_in_message: set[tuple[str, str]] = set()
    for line in lines:
        if line.cnt < 0:
            original = line.init_feedetl_sn
            if not original:
                raise Refusal(f"费用明细[{line.feedetl_sn}]为退费明细, 原费用明细流水号不能为空")
            if (line.mdtrt_id, original) not in ledger.fee_lines and (line.mdtrt_id, original) not in keys_in_message:
                raise Refusal(f"费用明细[{line.feedetl_sn}]的原费用明细流水号[{original}]不存在")
        keys_in_message.add((line.mdtrt_id, line.feedetl_sn))


def _repeated(lines: list[StoredFeeLine], ledger: CentreLedger, infno: str) -> bool:
    """True when every line is held already, each exactly so (a resend: kept once); refuses a
    message that repeats a held line otherwise, or names a line twice."""
    keys = [(line.mdtrt_id, line.feedetl_sn) for line in lines]
    twice = next((key for index, key in enumerate(keys) if key in keys[:index]), None)
    if twice is not None:
        raise Refusal(f"费用明细流水号[{twice[1]}]在本次上传的明细中出现多次")
    held = [line for line, key in zip(lines, keys, strict=True) if key in ledger.fee_lines]
    if not held:
        return False
    if len(held) == len(lines) and all(ledger.fee_lines[key].same_as(line) for key, line in zip(keys, lines,
                                                                                                 strict=True)):
        return True
    ledger.duplicates[infno] += 1
    raise Refusal(f"就诊[{held[0].mdtrt_id}]的费用明细流水号[{held[0].feedetl_sn}]已存在")


def _fee_list_query(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """5204 费用明细查询: the fee lines of one settlement (psn_no, setl_id and mdtrt_id, all
    required), answered as the list itself with no node, in the edition's output fields."""
    data = node(document, "data")
    require(data, ("psn_no", "setl_id", "mdtrt_id"), "查询输入")
    setl_id, mdtrt_id, psn_no = str(data["setl_id"]), str(data["mdtrt_id"]), str(data["psn_no"])
    with ledger.lock:
        settlement = ledger.settlements.get(setl_id) or ledger.counter_settlements.get(setl_id)
        if settlement is None:
            raise Refusal(f"结算ID[{setl_id}]不存在")
        if str(settlement.get("mdtrt_id") or mdtrt_id) != mdtrt_id:
            raise Refusal(f"结算ID[{setl_id}]不属于就诊ID[{mdtrt_id}]")
        if str(settlement.get("psn_no") or psn_no) != psn_no:
            raise Refusal(f"结算ID[{setl_id}]与人员编号[{psn_no}]不匹配")
        lines = [line for key, line in ledger.fee_lines.items() if key[0] == mdtrt_id]
        names = catalogue_names(ledger)
    return [_fee_list_entry(line, setl_id, names, faults) for line in lines]


def catalogue_names(ledger: CentreLedger) -> dict[str, str]:
    """National code -> its name in the catalogues the centre publishes (医保目录名称)."""
    names: dict[str, str] = {}
    for rows in ledger.catalogues.values():
        for row in rows:
            if isinstance(row, Mapping):
                code, name = row.get("hilist_code"), row.get("hilist_name")
            else:
                code, name = getattr(row, "code", None), getattr(row, "name", None)
            if code and name:
                names.setdefault(str(code), str(name))
    return names


def _fee_list_entry(line: StoredFeeLine, setl_id: str, names: Mapping[str, str], faults: FaultPlan) -> dict[str, Any]:
    """One line of a 5204 answer: the line as uploaded, its split as 2301/2204 answered it, and
    the catalogue's name (医保目录名称; the institution's own name the centre never received, so
    医药机构目录名称 is the catalogue's too). The simulated centre keeps no dosage forms: 剂型名称
    is 无 (none)."""
    parsed = ParsedLine(line.mdtrt_id, line.feedetl_sn, line.med_list_codg, line.cnt, line.pric,
                        line.det_item_fee_sumamt)
    name = names.get(line.med_list_codg, line.med_list_codg)
    return {
        "mdtrt_id": line.mdtrt_id, "setl_id": setl_id, "rx_drord_no": line.drord_no, "med_type": line.med_type,
        "fee_ocur_time": line.fee_ocur_time, **fee_answer(parsed, faults),
        "hilist_code": line.med_list_codg, "hilist_name": name, "list_type": list_type(line.med_list_codg),
        "med_list_codg": line.med_list_codg, "medins_list_codg": line.medins_list_codg or line.med_list_codg,
        "medins_list_name": name, "dosform_name": "无", "bilg_dept_codg": line.bilg_dept_codg,
        "bilg_dept_name": line.bilg_dept_name, "bilg_dr_codg": line.bilg_dr_codg, "bilg_dr_name": line.bilg_dr_name,
        "hosp_appr_flag": line.hosp_appr_flag,
    }


#: 2601 may cancel only these (【2601】 重点说明: 2102 药店结算, 2207 门诊结算, 2304 住院结算,
#: 2401 入院办理; their cancels 2103, 2208 and 2305 as the national interface allows too)
REVERSIBLE = frozenset({"2102", "2103", "2207", "2208", "2304", "2305", "2401"})


def _reversal(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2601 冲正: undo what the original message (omsgid) committed."""
    data = node(document, "data")
    require(data, ("psn_no", "omsgid", "oinfno"), "冲正输入")
    oinfno, omsgid = str(data["oinfno"]), str(data["omsgid"])
    if oinfno not in REVERSIBLE:
        raise Refusal(f"交易[{oinfno}]不支持冲正")
    with ledger.lock:
        original = ledger.reversible.get(omsgid)
        if original is None:
            raise Refusal(f"原交易[{omsgid}]不存在或已冲正")
        if original.infno != oinfno:
            raise Refusal(f"原交易[{omsgid}]是[{original.infno}]交易, 不是[{oinfno}]")
        if original.psn_no != str(data["psn_no"]):
            raise Refusal(f"原交易[{omsgid}]与人员编号[{data['psn_no']}]不匹配")
        del ledger.reversible[omsgid]
        original.undo()
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
        ledger.visits[mdtrt_id] = {"psn_no": key[0], "ipt_no": key[1], "discharged": False,
                                   **{name: str(info.get(name) or "") for name in ("begntime", "insutype", "med_type")}}
        ledger.admissions_by_ipt[key] = mdtrt_id

        def undo() -> None:
            ledger.visits.pop(mdtrt_id, None)
            ledger.admissions_by_ipt.pop(key, None)

        ledger.reversible[str(document["msgid"])] = Reversible("2401", key[0], undo)
    people.learn(ledger, key[0], {"psn_cert_type": info.get("cert_type"), "certno": info.get("certno"),
                                  "insutype": info.get("insutype")})
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
        visit["endtime"] = str(info.get("endtime") or "")
    return None


def _discharge_cancel(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    """2405 出院撤销: the stay is in hospital again (the adapter withdraws a discharge whose
    reply was lost, then sends it again)."""
    data = node(document, "data")
    require(data, ("mdtrt_id", "psn_no"), "出院撤销信息")
    with ledger.lock:
        visit = ledger.visits.get(str(data["mdtrt_id"]))
        if visit is None or visit["psn_no"] != str(data["psn_no"]):
            raise Refusal(f"就诊ID[{data['mdtrt_id']}]不存在")
        if not visit["discharged"]:
            raise Refusal(f"就诊ID[{data['mdtrt_id']}]未办理出院, 不能撤销")
        visit["discharged"] = False
        ledger.cancelled_lines["2405"] += 1
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
        if infno == "3507":
            # A deletion is an act, not data: each one deletes what the batch holds now.
            _delete_batch_data(ledger, str(record["fixmedins_bchno"]), str(record["inv_data_type"]))
            ledger.inventory[key] = dict(record)
            return None
        if key in ledger.inventory and key not in ledger.deleted_inventory:
            ledger.duplicates[infno] += 1  # the centre keeps it once
            return None
        ledger.deleted_inventory.discard(key)  # uploaded again after a 3507 deleted it
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
    """5303 在院信息查询: the stays admitted (2401) within begntime..endtime and not discharged
    (the edition: "开始时间、结束时间填写入院时间所在期间"), of one person when psn_no is given
    (optional in the edition), as the edition's ``data`` list."""
    data = node(document, "data")
    begin, end = window(data, "查询输入")
    psn_no = str(data.get("psn_no") or "")
    with ledger.lock:
        stays = [(mdtrt_id, dict(visit)) for mdtrt_id, visit in ledger.visits.items()
                 if not visit.get("outpatient") and not visit["discharged"]
                 and (not psn_no or visit["psn_no"] == psn_no)
                 and _within(visit.get("begntime"), begin, end)]
    return {"data": [_in_hospital_entry(ledger, mdtrt_id, visit) for mdtrt_id, visit in stays]}


def _within(value: Any, begin: datetime, end: datetime) -> bool:
    try:
        return begin <= moment(value, "") <= end
    except Refusal:
        return False  # a stay without a time the centre could read is in no window


def _in_hospital_entry(ledger: CentreLedger, mdtrt_id: str, visit: Mapping[str, Any]) -> dict[str, Any]:
    """One stay of a 5303 answer: the stay, and the person as the centre's registry has them."""
    person = people.person(ledger, str(visit["psn_no"]))
    return {
        "mdtrt_id": mdtrt_id, "psn_no": person["psn_no"], "psn_cert_type": person["psn_cert_type"],
        "certno": person["certno"], "psn_name": person["psn_name"], "gend": person["gend"], "brdy": person["brdy"],
        "age": person["age"], "insutype": visit.get("insutype") or person["insutype"],
        "begndate": str(visit.get("begntime") or "")[:10], "med_type": visit.get("med_type") or "21",
        "ipt_otp_no": visit["ipt_no"],
    }


_HANDLERS = {
    "5303": _in_hospital_query,
    "9001": _sign_in, "9002": _sign_out, "2301": _fee_detail_upload, "2601": _reversal,
    "5204": _fee_list_query, "2401": _admission, "2402": _discharge,
    "2405": _discharge_cancel,
    **{infno: _inventory for infno in _INVENTORY},
    **transactions.HANDLERS,
    **files.HANDLERS,
    **reconcile.HANDLERS,
}
