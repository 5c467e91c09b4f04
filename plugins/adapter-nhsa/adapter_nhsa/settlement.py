"""The settlement list (医疗保障基金结算清单) as data: 【4101】医疗保障基金结算清单信息上传 of
the edition every bundled region follows (``RegionProfile.interface_edition``, Hunan V1.1.27
§5.4.1), its nodes and fields in the edition's order with their types, lengths and required
flags as its tables give them.

4101A, the layout that had replaced 4101's input in 2022 (payinfo, iteminfo and the patient's
particulars in setlinfo), is not in this edition: its revision history (row 7, V1.1.18 of
2022-06-23) reads "6月1日起，全省已全面启用新的4101接口，停用原4101A接口". A region whose
centre still takes 4101A describes it in its own profile.

What the tables say and the spec follows: setlinfo is one object, every other node a list (重点
说明: 交易输入结算清单信息为单行数据，输入其他信息均为多行数据); one call carries one
patient's list. patn_rlts, coner_addr and coner_tel are flagged required although their 说明
says "当coner_name非空时必填": the flag is what a centre checks, so they are required here. The
money of the settlement (amounts paid by the person, the account, in cash) is no longer in the
list: the centre has it from the settlement itself (2304), and 4103 answers it from there. The
old list's iteminfo (收费项目信息) is not an input either: 4103 answers the centre's own.

Two things are the adapter's rather than the tables': payinfo and diseinfo must have an entry
(a settlement list without a fund payment or a diagnosis is refused by its 填写规范), and the
doctor codes are mapped to the national ones (目录对照)."""

from __future__ import annotations

from adapter.plugin.api import ChildSpec, MappingKind, TransactionSpec, f

#: 结算清单信息 (节点标识 setlinfo, 单行数据)
_SETLINFO = (
    f("psn_no", length=30, req=True), f("mdtrt_id", length=30, req=True), f("setl_id", length=30, req=True),
    f("medcasno", length=30), f("dcla_time", "datetime"), f("ntly", length=6, req=True),
    f("prfs", length=6, req=True), f("curr_addr", length=200), f("emp_name", length=200),
    f("emp_addr", length=200), f("emp_tel", length=50), f("poscode", length=6), f("coner_name", length=50),
    f("patn_rlts", length=6, req=True), f("coner_addr", length=200, req=True), f("coner_tel", length=50, req=True),
    f("nwb_adm_type", length=3), f("nwb_bir_wt", "num", 6, 2), f("nwb_adm_wt", "num", 6, 2),
    f("mul_nwb_bir_wt", length=50), f("mul_nwb_adm_wt", length=50), f("opsp_diag_caty", length=50),
    f("opsp_mdtrt_date", "date"), f("adm_way", length=30), f("trt_type", length=3), f("adm_time", "datetime"),
    f("adm_dept_code", length=30), f("adm_dept_name", length=100), f("refldept_dept", length=50),
    f("dscg_time", "datetime"), f("dscg_dept_code", length=30), f("dscg_dept_name", length=100),
    f("dscg_caty", length=6, req=True), f("otp_wm_dise", length=200), f("wm_dise_code", length=30),
    f("otp_tcm_dise", length=200), f("tcm_dise_code", length=30), f("vent_used_dura", length=10),
    f("pwcry_bfadm_coma_dura", length=10), f("pwcry_afadm_coma_dura", length=10),
    f("spga_nurscare_days", "num", 4, 1), f("lv1_nurscare_days", "num", 4, 1), f("scd_nurscare_days", "num", 4, 1),
    f("lv3_nurscare_days", "num", 4, 1), f("dscg_way", length=3), f("acp_medins_name", length=100),
    f("acp_optins_code", length=30), f("bill_code", length=50, req=True), f("bill_no", length=30, req=True),
    f("biz_sn", length=50, req=True), f("days_rinp_flag_31", length=3), f("days_rinp_pup_31", length=200),
    f("chfpdr_code", length=30), f("setl_begn_date", "date", req=True), f("setl_end_date", "date", req=True),
    f("medins_fill_dept", length=100, req=True), f("medins_fill_psn", length=50, req=True),
    f("resp_nurs_code", length=50), f("stas_type", length=10), f("hi_paymtd", length=3), f("age_days", "num", 3),
    f("adm_caty", length=10),
)

SETTLEMENT_LIST = TransactionSpec(
    infno="4101",
    description="医疗保障基金结算清单信息上传 settlement list",
    node="setlinfo",
    fields=_SETLINFO,
    children=(
        # 门诊慢特病诊断信息
        ChildSpec("opspdiseinfo", (f("oprn_oprt_name", length=500), f("oprn_oprt_code", length=30))),
        # 住院诊断信息
        ChildSpec(
            "diseinfo",
            (f("diag_type", length=3, req=True), f("diag_code", length=20, req=True),
             f("diag_name", length=500, req=True), f("adm_cond_type", length=3, req=True),
             f("maindiag_flag", length=3, req=True)),
            required=True,
        ),
        # 手术操作信息
        ChildSpec(
            "oprninfo",
            (f("oprn_oprt_type", length=3, req=True), f("oprn_oprt_name", length=500, req=True),
             f("oprn_oprt_code", length=30, req=True), f("anst_way", length=6), f("oper_dr_code", length=20, req=True),
             f("anst_dr_code", length=20), f("oprn_oprt_begntime", "datetime"), f("oprn_oprt_endtime", "datetime"),
             f("anst_begntime", "datetime"), f("anst_endtime", "datetime")),
        ),
        # 重症监护信息
        ChildSpec(
            "icuinfo",
            (f("scs_cutd_ward_type", length=6, req=True), f("scs_cutd_inpool_time", "datetime", req=True),
             f("scs_cutd_exit_time", "datetime", req=True), f("scs_cutd_sum_dura", length=10, req=True)),
        ),
        # 基金支付信息
        ChildSpec("payinfo", (f("fund_pay_type", length=6, req=True), f("fund_payamt", "num", 16, 2, req=True)),
                  required=True),
        # 输血信息
        ChildSpec(
            "bldinfo",
            (f("setl_List_bld_Id", length=30, req=True), f("psn_no", length=30, req=True),
             f("mdtrt_id", length=30, req=True), f("setl_id", length=30, req=True), f("bld_cat", length=3),
             f("bld_amt", "num", 6), f("bld_unt", length=15)),
        ),
    ),
    key=("setl_id",),
    group_field="mdtrt_id",
    phase=2,
    mapped={
        "chfpdr_code": (MappingKind.DOCTOR, "chfpdr_code"),
        "oprninfo.oper_dr_code": (MappingKind.DOCTOR, "oper_dr_code"),
        "oprninfo.anst_dr_code": (MappingKind.DOCTOR, "anst_dr_code"),
    },
)
