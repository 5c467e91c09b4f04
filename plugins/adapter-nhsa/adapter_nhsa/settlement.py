"""The settlement list (医疗保障基金结算清单) as data."""

from __future__ import annotations

from adapter.plugin.api import ChildSpec, MappingKind, TransactionSpec, f

SETTLEMENT_LIST = TransactionSpec(
    infno="4101A",
    description="医疗保障基金结算清单上传 settlement list",
    node="setlinfo",
    fields=(
        f("mdtrt_id", req=True), f("setl_id", req=True), f("psn_no"), f("fixmedins_name", length=200, req=True),
        f("fixmedins_code", length=30, req=True), f("hi_setl_lv", length=3), f("hi_no", length=30),
        f("medcasno", length=40, req=True), f("dcla_time", "date"), f("psn_name", length=50, req=True),
        f("gend", length=6, req=True), f("brdy", "date", req=True), f("age", "num", 4, 1),
        f("ntly", length=6), f("patn_cert_type", length=6), f("certno", length=50),
        f("prfs", length=6), f("hi_type", length=6, req=True), f("insuplc", length=6, req=True),
        f("ipt_med_type", length=6, req=True), f("adm_way", length=6), f("trt_type", length=6),
        f("adm_time", "datetime", req=True), f("adm_caty", length=30, req=True),
        f("dscg_time", "datetime", req=True), f("dscg_caty", length=30, req=True),
        f("act_ipt_days", "num", 4, req=True), f("wm_dise_code", length=30),
        f("diag_code_cnt", "num", 3, req=True), f("oprn_oprt_code_cnt", "num", 3, req=True),
        f("dscg_way", length=6, req=True), f("chfpdr_name", length=50, req=True),
        f("chfpdr_code", length=30, req=True), f("setl_begn_date", "date", req=True),
        f("setl_end_date", "date", req=True), f("psn_selfpay", "num", 16, 2, req=True),
        f("psn_ownpay", "num", 16, 2, req=True), f("acct_pay", "num", 16, 2, req=True),
        f("psn_cashpay", "num", 16, 2, req=True), f("hi_paymtd", length=6, req=True),
        f("medins_fill_dept", length=100, req=True), f("medins_fill_psn", length=50, req=True),
    ),
    children=(
        ChildSpec("payinfo", (f("fund_pay_type", length=6, req=True), f("fund_payamt", "num", 16, 2, req=True)),
                  required=True),
        ChildSpec("opspdiseinfo", (f("diag_name", length=100), f("diag_code", length=30),
                                   f("oprn_oprt_name", length=100), f("oprn_oprt_code", length=30))),
        ChildSpec(
            "diseinfo",
            (f("diag_type", length=3, req=True), f("diag_code", length=30, req=True),
             f("diag_name", length=100, req=True), f("adm_cond_type", length=3),
             f("maindiag_flag", length=3, req=True)),
            required=True,
        ),
        ChildSpec(
            "iteminfo",
            (f("med_chrgitm", length=30, req=True), f("amt", "num", 16, 2, req=True),
             f("claa_sumfee", "num", 16, 2, req=True), f("clab_amt", "num", 16, 2, req=True),
             f("fulamt_ownpay_amt", "num", 16, 2, req=True), f("oth_amt", "num", 16, 2, req=True)),
            required=True,
        ),
        ChildSpec(
            "oprninfo",
            (f("oprn_oprt_type", length=3, req=True), f("oprn_oprt_name", length=500, req=True),
             f("oprn_oprt_code", length=30, req=True), f("oprn_oprt_date", "datetime", req=True),
             f("anst_way", length=6), f("oper_dr_name", length=50, req=True), f("oper_dr_code", length=30, req=True),
             f("anst_dr_name", length=50), f("anst_dr_code", length=30)),
        ),
        ChildSpec(
            "icuinfo",
            (f("scs_cutd_ward_type", length=6, req=True), f("scs_cutd_inpool_time", "datetime", req=True),
             f("scs_cutd_exit_time", "datetime", req=True), f("scs_cutd_sum_dura", length=20, req=True)),
        ),
    ),
    key=("setl_id",),
    group_field="mdtrt_id",
    phase=2,
    mapped={"chfpdr_code": (MappingKind.DOCTOR, "chfpdr_code")},
)
