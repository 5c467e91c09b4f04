"""Hook implementations of the nhsa region: the national profile."""

from __future__ import annotations

from collections.abc import Callable

from adapter.plugin.api import EditionDifference, LostReply, LostReplyMethod, RegionProfile, hookimpl
from adapter_nhsa.catalogues import CATALOGUES
from adapter_nhsa.dialect import NhsaDialect
from adapter_nhsa.transactions import TRANSACTIONS

#: Where the Hunan V1.1.27 edition contradicts itself, the one reading every bundled region takes
#: (hunan included: these are readings of the edition, not departures from it).
READINGS_V1_1_27 = (
    # Two tables are printed under clr_type: 6.23 清算类别 (11 门诊, 21 住院, ...) and 6.220
    # 清算类别(异地购药) (310411 职工省内药店购药, ...). Every clr_type of the edition's
    # transactions (3201-3203 inputs, 2207/2304/5203 outputs) is the institution's own clearing
    # type, so 6.23 is read and a 6.220 code is refused. (longterm_admrol_flag also has two
    # tables, but no transaction field reads it.)
    EditionDifference("clr_type", table="clr_type",
                      source="V1.1.27 6.23 清算类别; 6.220 (异地购药) is the cross-region pharmacy table"),
    # 6.187 lists only 1 经办机构用户, while the envelope's own note (§4.1) lists 1-经办人,
    # 2-自助终端, 3-移动终端: the envelope's note is read ([centre] opter_type takes 1, 2 or 3).
    EditionDifference("opter_type", {"2": "自助终端", "3": "移动终端"},
                      source="V1.1.27 §4.1 opter_type: 1-经办人；2-自助终端；3-移动终端"),
    # The envelope's infno is 字符型 4, but the edition's own transactions 1306A, 3592B and
    # 100001 are longer: the longest of its transaction codes is read.
    EditionDifference("infno", length="6", source="V1.1.27 transactions 1306A, 3592B, 100001"),
    # 6.28 医疗类别 has no 12, though 2206/2207 say "仅门诊挂号结算时，医疗类别传入'12 门诊挂号'".
    EditionDifference("med_type", {"12": "门诊挂号"}, infno="2206", source="V1.1.27 2206 med_type 说明"),
    EditionDifference("med_type", {"12": "门诊挂号"}, infno="2207", source="V1.1.27 2207 med_type 说明"),
)

#: Per-transaction paths (reference §2.1 b) for regions that use one path per service.
PATHS = {
    "9001": "/fsi/api/signInSignOutService/signIn",
    "9002": "/fsi/api/signInSignOutService/signOut",
    "9101": "/fsi/api/fileupload/upload",
    "9102": "/fsi/api/fileupload/download",
    "2201": "/fsi/api/outpatientDocInfoService/outpatientRregistration",
    "2202": "/fsi/api/outpatientDocInfoService/outpatientRegistrationCancel",
    "2203": "/fsi/api/outpatientDocInfoService/outpatientMdtrtinfoUp",
    "2204": "/fsi/api/outpatientDocInfoService/outpatientFeeListUp",
    "2205": "/fsi/api/outpatientDocInfoService/outpatientFeeListUpCancel",
    "2301": "/fsi/api/hospFeeDtlService/feeDtlUp",
    "2302": "/fsi/api/hospFeeDtlService/feeDtlCl",
    "2401": "/fsi/api/hospitalRegisterService/hospitalRegisterSave",
    "2402": "/fsi/api/dscgService/dischargeProcess",
    "2601": "/fsi/api/reverseService/revsMethod",
    "3201": "/fsi/api/ybSettlementStmtService/stmtTotal",
    "3202": "/fsi/api/ybSettlementStmtService/stmtDetail",
    "3501": "/fsi/api/goodsService/goodsUpload",
    "3502": "/fsi/api/goodsService/goodsUpdate",
    "3503": "/fsi/api/goodsService/goodsBuy",
    "3504": "/fsi/api/goodsService/goodsBuyReturn",
    "3505": "/fsi/api/goodsService/goodsSell",
    "3506": "/fsi/api/goodsService/goodsSellReturn",
    "3507": "/fsi/api/goodsService/goodsInfoDelete",
    "4101": "/fsi/api/medinfoupload/setllistinfoupld",
    "4101A": "/fsi/api/medinfoupload/setllistinfoupldA",
    # From here on the paths are inference (no source shows them); a region that uses
    # per-path URLs and differs states its own.
    "4103": "/fsi/api/medinfoupload/setllistinfoquery",
    "5201": "/fsi/api/fsiIntegratedQueryService/queryMdtrtInfo",
    "1301": "/fsi/api/catalogdownService/wmcpmDown",
    "1305": "/fsi/api/catalogdownService/medSrvItmDown",
    "1307": "/fsi/api/catalogdownService/diseDown",
    "1308": "/fsi/api/catalogdownService/oprtDown",
    "5203": "/fsi/api/fsiIntegratedQueryService/querySetlInfo",
    "5204": "/fsi/api/fsiIntegratedQueryService/queryFeeList",
    "5303": "/fsi/api/fsiIntegratedQueryService/queryInhospInfo",
}

_INQUIRE, _WITHDRAW, _REVERSE, _RESEND = (
    LostReplyMethod.INQUIRE, LostReplyMethod.WITHDRAW, LostReplyMethod.REVERSE, LostReplyMethod.RESEND,
)
_PURCHASES, _SALES = frozenset({"3503", "3504"}), frozenset({"3505", "3506"})

#: How a lost reply is settled per transaction, and the passage of the edition that allows it.
#: Fee details are not queryable before settlement (【5204】 requires setl_id), so unsettled lines
#: are withdrawn by name and sent again; 2601 covers only 2401 among what the adapter sends.
LOST_REPLIES: dict[str, LostReply] = {
    "2301": LostReply(_WITHDRAW, "【2302】 withdraws the named unsettled lines (data[].feedetl_sn); "
                                 "【5204】 needs setl_id, so unsettled lines cannot be queried"),
    "2204": LostReply(_WITHDRAW, "【2205】 withdraws one charge batch (chrg_bchno), which is what one 2204 carries"),
    "2302": LostReply(_RESEND, "a repeated 【2302】 finds the lines gone (不存在或已撤销): withdrawn"),
    "2205": LostReply(_RESEND, "a repeated 【2205】 finds the batch gone (不存在或已撤销): withdrawn"),
    "2201": LostReply(_INQUIRE, "【5201】 lists a person's visits of the day (psn_no, begntime, endtime, med_type)"),
    "2203": LostReply(_RESEND, "【2203】 uploads a registered visit's diagnosis by mdtrt_id; a repeat "
                               "replaces it (no query or withdrawal of it exists in the edition)"),
    "2401": LostReply(_REVERSE, "【2601】 冲正 reverses a 2401 by its msgid (omsgid)"),
    "2402": LostReply(_WITHDRAW, "【2405】 出院撤销 withdraws the discharge (mdtrt_id, psn_no)"),
    "4101": LostReply(_INQUIRE, "【4103】 answers the settlement list of psn_no and setl_id (one setlinfo)"),
    "3501": LostReply(_WITHDRAW, "【3507】 deletes a batch's 盘存 data (inv_data_type 1)", frozenset({"3501"})),
    "3502": LostReply(_WITHDRAW, "【3507】 deletes a batch's 库存变更 data (inv_data_type 2)", frozenset({"3502"})),
    "3503": LostReply(_WITHDRAW, "【3507】 deletes a batch's 采购 data, returns included (inv_data_type 3)",
                      _PURCHASES),
    "3504": LostReply(_WITHDRAW, "【3507】 deletes a batch's 采购 data, returns included (inv_data_type 3)",
                      _PURCHASES),
    "3505": LostReply(_WITHDRAW, "【3507】 deletes a batch's 销售 data, returns included (inv_data_type 4)", _SALES),
    "3506": LostReply(_WITHDRAW, "【3507】 deletes a batch's 销售 data, returns included (inv_data_type 4)", _SALES),
    "3507": LostReply(_RESEND, "a repeated 【3507】 finds nothing left to delete (没有可删除): deleted"),
}

NHSA = RegionProfile(
    name="nhsa",
    description="National platform interface v1.x: single endpoint, TIF gateway",
    dialect=NhsaDialect(),
    gateway="tif",
    url_style="single",
    # The national reference's header table: "例如 V1.0, 版本号由医保下发通知"; V1.0 is what most
    # implementations send (reference/nhsa-interface.md §1.2). The Hunan edition's example 1.0.0
    # is that province's, and the note leaves the value to each centre's notice.
    infver="V1.0",
    recer_sys_code="YBXT",
    paths=PATHS,
    transactions=TRANSACTIONS,
    catalogues=CATALOGUES,
    interface_edition="hunan-v1.1.27",
    edition_readings=READINGS_V1_1_27,
    lost_replies=LOST_REPLIES,
    # Answers that say "not now" rather than "not this": retried with backoff, never parked.
    transient_answers=("系统繁忙", "请稍后", "稍后再试", "稍后重试", "服务繁忙", "超时", "timeout", "busy"),
    # Where the national baseline reads the tables differently from this provincial edition.
    edition_differences=(
        EditionDifference("med_type", {"11": "普通门诊", "14": "门诊慢特病", "21": "普通住院"},
                          source="national baseline 医疗类别 (2021-12-30): 21 普通住院; the Hunan edition writes 2101"),
    ),
    rule_set={
        # 000 §2-二.3 (Shaanxi hospital rules): acute 7 / chronic 15 / specified diseases a month,
        # discharge medication half a month; 000 §2-三.3 readmission within 10 days.
        "dispensing-days": {"acute_days": 7, "chronic_days": 15, "specified_days": 30, "discharge_days": 15,
                            "source": "000 §2-二.3"},
        "split-hospitalisation": {"days": 10, "source": "000 §2-三.3"},
    },
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(NHSA)
