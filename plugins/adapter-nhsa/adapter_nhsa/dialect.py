"""How the national interface words its payloads (reference §3.2, §3.7)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapter.errors import BusinessRejection
from adapter.plugin.api import InquiryAnswer, MappedFeeLine, RefusalMeaning, Settlement, Verdict, settled_figure


class NhsaDialect:
    """The national field names; regions that differ subclass this and override a method."""

    #: 医院审批标志: 1 = approved / not a restricted item. Regions read it differently.
    hosp_appr_flag = "1"

    def sign_in_input(self, opter: str, mac: str, ip: str) -> dict[str, Any]:
        return {"signIn": {"opter_no": opter, "mac": mac, "ip": ip}}

    def sign_no_from_output(self, output: Mapping[str, Any]) -> str:
        sign_no = (output.get("signinoutb") or {}).get("sign_no")
        if not sign_no:
            raise BusinessRejection("9001 answered without output.signinoutb.sign_no")
        return str(sign_no)

    def sign_out_input(self, opter: str, sign_no: str) -> dict[str, Any]:
        return {"signOut": {"opter_no": opter, "sign_no": sign_no}}

    #: words that name the session in a refusal ("签到信息不存在,请重新签到", "sign_no无效"):
    #: whatever the refusal says happened to it, one fresh sign-in and one resend follow
    session_words: tuple[str, ...] = ("签到", "sign_no", "会话", "session")

    def session_refused(self, err_msg: str) -> bool:
        lowered = err_msg.lower()
        return any(word.lower() in lowered for word in self.session_words)

    # -- a lost reply (adapter.plugin.outcomes; the ways are declared in hooks.LOST_REPLIES) --
    #: 医疗类别 of an outpatient registration, which 5201 requires and 2201 does not carry
    registration_med_type = "11"

    def inquiry(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if infno == "2201":
            # 【5201】 requires psn_no, begntime, endtime and med_type: the registration's day.
            data = payload["data"]
            day = str(data.get("begntime") or "")[:10]
            return "5201", {"data": {"psn_no": data["psn_no"], "begntime": f"{day} 00:00:00",
                                     "endtime": f"{day} 23:59:59", "med_type": self.registration_med_type}}
        if infno == "4101":
            # 【4103】 requires psn_no and setl_id and answers one setlinfo object.
            info = payload["setlinfo"]
            return "4103", {"data": {"psn_no": info["psn_no"], "setl_id": info["setl_id"]}}
        return None

    def inquiry_verdict(self, infno: str, payload: Mapping[str, Any], output: Any) -> InquiryAnswer:
        # An answer is evidence only in the shape the query answers in: a missing node says
        # nothing (a gateway's empty body is not "the centre holds nothing").
        if not isinstance(output, Mapping):
            return InquiryAnswer(Verdict.UNDECIDED, "the answer has no output")
        if infno == "2201":
            visits = output.get("mdtrtinfo")
            if not isinstance(visits, list):
                return InquiryAnswer(Verdict.UNDECIDED, "5201 answered without a mdtrtinfo list")
            wanted, person = str(payload["data"]["ipt_otp_no"]), str(payload["data"]["psn_no"])
            if any(isinstance(visit, Mapping) and visit.get("psn_no") and str(visit["psn_no"]) != person
                   for visit in visits):
                return InquiryAnswer(Verdict.UNDECIDED, "5201 answered with another person's visits")
            for visit in visits:
                if isinstance(visit, Mapping) and str(visit.get("ipt_otp_no")) == wanted:
                    mdtrt_id = str(visit.get("mdtrt_id") or "") or None
                    return InquiryAnswer(Verdict.HELD, f"5201 lists visit {wanted}", mdtrt_id)
            return InquiryAnswer(Verdict.NOT_HELD, f"5201 lists {len(visits)} visit(s) that day, not {wanted}")
        if infno == "4101":
            if "setlinfo" not in output:
                return InquiryAnswer(Verdict.UNDECIDED, "4103 answered without setlinfo")
            held = output.get("setlinfo")
            entries = [held] if isinstance(held, Mapping) else held if isinstance(held, list) else []
            wanted = str(payload["setlinfo"]["setl_id"])
            if any(isinstance(item, Mapping) and str(item.get("setl_id")) == wanted for item in entries):
                return InquiryAnswer(Verdict.HELD, f"4103 shows the settlement list of {wanted}")
            if not any(isinstance(item, Mapping) and item for item in entries):
                return InquiryAnswer(Verdict.NOT_HELD, f"4103 holds no settlement list of {wanted}")
            return InquiryAnswer(Verdict.UNDECIDED, f"4103 answered with another settlement than {wanted}")
        return InquiryAnswer(Verdict.UNDECIDED, f"no inquiry reads {infno}")

    def withdrawal(self, infno: str, payload: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if infno == "2301":
            # 【2302】 names each line; refunds first, so no original is withdrawn while a refund
            # of it is still held. Never "0000" (删除全部): the field table refuses it upstream.
            lines = sorted(payload["feedetail"], key=lambda line: _number(line.get("cnt")) >= 0)
            return [("2302", {"data": [{"feedetl_sn": line["feedetl_sn"], "mdtrt_id": line["mdtrt_id"],
                                        "psn_no": line["psn_no"]} for line in lines]})]
        if infno == "2204":
            first = payload["feedetail"][0]
            return [("2205", {"data": {"mdtrt_id": payload.get("mdtrt_id") or first["mdtrt_id"],
                                       "chrg_bchno": payload.get("chrg_bchno") or first["chrg_bchno"],
                                       "psn_no": first["psn_no"]}})]
        if infno == "2402":
            info = payload["dscginfo"]
            return [("2405", {"data": {"mdtrt_id": info["mdtrt_id"], "psn_no": info["psn_no"]}})]
        if infno in _INVENTORY_DATA_TYPES:
            record = next(iter(payload.values()))
            return [("3507", {"data": {"fixmedins_bchno": record["fixmedins_bchno"],
                                       "inv_data_type": _INVENTORY_DATA_TYPES[infno]}})]
        return []

    #: refusals that say the centre holds it already (checked first: "已存在" is not "不存在")
    already_held_words: tuple[str, ...] = ("已存在", "重复", "已上传", "已办理", "已挂号", "已结算", "已参与结算")
    #: refusals that say there is nothing of it at the centre
    nothing_there_words: tuple[str, ...] = ("不存在", "已撤销", "已冲正", "已删除", "没有可删除", "未查询到", "未办理")

    def refusal_meaning(self, err_msg: str) -> RefusalMeaning:
        if any(word in err_msg for word in self.already_held_words):
            return RefusalMeaning.ALREADY_HELD
        if any(word in err_msg for word in self.nothing_there_words):
            return RefusalMeaning.NOTHING_THERE
        return RefusalMeaning.OTHER

    def answer_mismatch(self, infno: str, payload: Mapping[str, Any], output: Any) -> str | None:
        if infno in ("2301", "2204"):
            # 【2301】/【2204】 answer one result line per line sent, each naming its feedetl_sn.
            result = output.get("result") if isinstance(output, Mapping) else None
            if not isinstance(result, list):
                return f"{infno} answered without its result lines"
            sent = {str(line.get("feedetl_sn")) for line in payload["feedetail"]}
            answered = {str(item.get("feedetl_sn")) for item in result if isinstance(item, Mapping)}
            if answered != sent:
                strange, missing = len(answered - sent), len(sent - answered)
                return f"the result lines do not match the lines sent ({strange} not sent, {missing} missing)"
        if infno == "2201":
            data = output.get("data") if isinstance(output, Mapping) else None
            sent_data = payload["data"]
            if isinstance(data, Mapping):
                for name in ("ipt_otp_no", "psn_no"):
                    if data.get(name) and str(data[name]) != str(sent_data.get(name)):
                        return f"the answer is for {name} {data[name]}, not {sent_data.get(name)}"
        return None

    def answer_names_its_request(self, infno: str) -> bool:
        # the result lines checked above name every line sent
        return infno in ("2301", "2204")

    def confirmation(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        # 【2401】 answers only mdtrt_id, which cannot show whose stay it is: 【5303】 lists the
        # person's stays admitted that day with their ipt_otp_no.
        if infno == "2401":
            info = payload["mdtrtinfo"]
            day = str(info.get("begntime") or "")[:10]
            return "5303", {"data": {"psn_no": info["psn_no"], "begntime": f"{day} 00:00:00",
                                     "endtime": f"{day} 23:59:59"}}
        return None

    def confirmed(self, infno: str, payload: Mapping[str, Any], mdtrt_id: str, output: Any) -> bool | None:
        if infno != "2401":
            return None
        stays = output.get("data") if isinstance(output, Mapping) else None
        if not isinstance(stays, list):
            return None
        info = payload["mdtrtinfo"]
        for stay in stays:
            if isinstance(stay, Mapping) and str(stay.get("mdtrt_id")) == mdtrt_id:
                return str(stay.get("psn_no") or info["psn_no"]) == str(info["psn_no"]) and str(
                    stay.get("ipt_otp_no") or info["ipt_no"]) == str(info["ipt_no"])
        return False

    def record_defaults(self, infno: str) -> dict[str, str]:
        """Values this region puts into empty record fields ("node.field" for a child list)."""
        if infno == "2204":
            return {"feedetail.hosp_appr_flag": self.hosp_appr_flag}
        if infno == "2301":
            return {"med_type": "21", "hosp_appr_flag": self.hosp_appr_flag}
        return {}

    def reversal_input(self, infno: str, payload: Mapping[str, Any], omsgid: str) -> dict[str, Any]:
        node = next(iter(payload.values()))
        record = node[0] if isinstance(node, list) else node
        return {"data": {"psn_no": record.get("psn_no", ""), "omsgid": omsgid, "oinfno": infno}}

    def mdtrt_id_from_output(self, infno: str, output: Mapping[str, Any]) -> str:
        for node in ("result", "data"):
            value = (output.get(node) or {}).get("mdtrt_id") if isinstance(output, Mapping) else None
            if value:
                return str(value)
        raise BusinessRejection(f"{infno} answered without output.result.mdtrt_id")

    @settled_figure
    def fund_pay_sumamt(self, settlement: Settlement) -> Decimal:
        """What this region counts as fund_pay_sumamt in reconciliation (reference §3.10: some
        regions subtract parts); nationally the settlement's own figure (marked so: a region
        that overrides this without the mark is asked about every settlement)."""
        return settlement.fund_pay_sumamt

    def exp_content(self, line: MappedFeeLine) -> str:
        """The 扩展内容 field of a fee line (a JSON text) where the HIS gave none; regions that
        want extra fields override this."""
        return ""


#: 【3507】 进销存数据类型 of the data each inventory transaction uploads
_INVENTORY_DATA_TYPES = {"3501": "1", "3502": "2", "3503": "3", "3504": "3", "3505": "4", "3506": "4"}


def _number(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return Decimal(0)
