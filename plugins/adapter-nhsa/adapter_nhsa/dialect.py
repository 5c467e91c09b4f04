"""How the national interface words its payloads (reference §3.2, §3.7)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from adapter.errors import BusinessRejection
from adapter.plugin.api import MappedFeeLine, Settlement


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

    #: words of the refusal that means "sign in again"; regions with other wording override
    session_expired_words: tuple[str, ...] = ("签到", "sign_no")

    def session_expired(self, err_msg: str) -> bool:
        return any(word in err_msg for word in self.session_expired_words) and (
            "过期" in err_msg or "无效" in err_msg or "expired" in err_msg.lower()
        )

    # -- finding out after a lost reply (reference §5) ------------------------------------
    # 5204 lists a visit's fee lines (2301, 2204 and their cancels 2302, 2205), 5303 the stays
    # still in hospital (2402), 5201 a person's visits (2201), 4103 a settlement list (4101): by
    # the person and the settlement (psn_no, setl_id, both required), answering one setlinfo.
    def outcome_query(self, infno: str, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if infno in ("2301", "2204", "2302", "2205"):
            node = payload["feedetail"] if infno in ("2301", "2204") else payload["data"]
            first = node[0] if isinstance(node, list) else node
            return "5204", {"data": {"psn_no": first["psn_no"], "mdtrt_id": first["mdtrt_id"]}}
        if infno == "2402":
            return "5303", {"data": {"psn_no": payload["dscginfo"]["psn_no"]}}
        if infno == "2201":
            return "5201", {"data": {"psn_no": payload["data"]["psn_no"]}}
        if infno == "4101":
            info = payload["setlinfo"]
            return "4103", {"data": {"psn_no": info["psn_no"], "setl_id": info["setl_id"]}}
        return None

    def message_keys(self, infno: str, payload: Mapping[str, Any]) -> set[str]:
        if infno in ("2301", "2204"):
            return {str(item["feedetl_sn"]) for item in payload["feedetail"]}
        if infno == "2302":
            return {str(item["feedetl_sn"]) for item in payload["data"]}
        if infno == "2205":
            return {str(payload["data"]["chrg_bchno"])}
        if infno == "2402":
            return {str(payload["dscginfo"]["mdtrt_id"])}
        if infno == "2201":
            return {str(payload["data"]["ipt_otp_no"])}
        if infno == "4101":
            return {str(payload["setlinfo"]["setl_id"])}
        return set()

    def committed_keys(self, infno: str, payload: Mapping[str, Any], output: Mapping[str, Any]) -> set[str]:
        wanted = self.message_keys(infno, payload)
        if infno in ("2301", "2204"):
            return {str(item.get("feedetl_sn")) for item in output.get("feedetail") or []}
        if infno == "2302":  # a cancel took effect where the line is gone
            return wanted - {str(item.get("feedetl_sn")) for item in output.get("feedetail") or []}
        if infno == "2205":
            return wanted - {str(item.get("chrg_bchno")) for item in output.get("feedetail") or []}
        if infno == "2402":
            return wanted - {str(stay.get("mdtrt_id")) for stay in output.get("data") or []}
        if infno == "2201":
            return {str(visit.get("ipt_otp_no")) for visit in output.get("mdtrtinfo") or []}
        if infno == "4101":  # one setlinfo object (a list is read too)
            held = output.get("setlinfo")
            entries = [held] if isinstance(held, Mapping) else held if isinstance(held, list) else []
            return {str(item["setl_id"]) for item in entries if isinstance(item, Mapping) and item.get("setl_id")}
        return set()

    def visit_from_inquiry(self, infno: str, payload: Mapping[str, Any], output: Mapping[str, Any]) -> str | None:
        """The mdtrt_id a registration got, read from the inquiry that found it committed."""
        if infno == "2201":
            wanted = str(payload["data"]["ipt_otp_no"])
            for visit in output.get("mdtrtinfo") or []:
                if str(visit.get("ipt_otp_no")) == wanted and visit.get("mdtrt_id"):
                    return str(visit["mdtrt_id"])
        return None

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

    def nothing_to_reverse(self, err_msg: str) -> bool:
        return "原交易" in err_msg and ("不存在" in err_msg or "已冲正" in err_msg)

    def mdtrt_id_from_output(self, infno: str, output: Mapping[str, Any]) -> str:
        for node in ("result", "data"):
            value = (output.get(node) or {}).get("mdtrt_id") if isinstance(output, Mapping) else None
            if value:
                return str(value)
        raise BusinessRejection(f"{infno} answered without output.result.mdtrt_id")

    def fund_pay_sumamt(self, settlement: Settlement) -> Decimal:
        """What this region counts as fund_pay_sumamt in reconciliation (reference §3.10: some
        regions subtract parts); nationally the settlement's own figure."""
        return settlement.fund_pay_sumamt

    def exp_content(self, line: MappedFeeLine) -> str:
        """The 扩展内容 field of a fee line (a JSON text) where the HIS gave none; regions that
        want extra fields override this."""
        return ""
