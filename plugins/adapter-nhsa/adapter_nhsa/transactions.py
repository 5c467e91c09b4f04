"""The national record transactions as data (reference §3.6, §3.7, §3.9, §3.12): fields in the
order of the published edition the profile follows (``RegionProfile.interface_edition``), with
its types, lengths and required flags, the business key, and the HIS codes to map.

Where the reference names a node's fields but not their lengths or required flags (4101A
setlinfo and its lists), the values here are inference; a region that differs replaces the
spec in its own profile."""

from __future__ import annotations

from adapter.plugin.api import ChildSpec, FieldSpec, MappingKind, TransactionSpec, f
from adapter_nhsa.settlement import SETTLEMENT_LIST

#: "0000" in a cancel is a command, not a key: 2302 feedetl_sn 说明 "传入“0000”时删除全部", 2205
#: chrg_bchno 说明 "传入“0000”删除所有未结算明细". Every run of zeros is taken for it, not only
#: "0000": feedetl_sn is 数字型 in 2301/2204, so a centre may compare it as a number (0 = 0000).
#: A cancel carrying one is parked, never sent (a HIS value of 0000 must not wipe a visit), and a
#: line or batch numbered so is not uploaded (it could never be cancelled on its own).
_ALL_ZEROS = r"0+"
_DELETES_ALL_LINES = "2302 reads “0000” as delete every fee line of the visit (传入“0000”时删除全部)"
_DELETES_ALL_BATCHES = ("2205 reads “0000” as delete every unsettled fee line of the visit "
                        "(传入“0000”删除所有未结算明细)")

#: feedetl_sn of 2301 and 2204 is 数字型 (30) with the 说明 "单次就诊内唯一"; the rule itself is in
#: the revision history of the edition every region follows (RegionProfile.interface_edition,
#: Hunan V1.1.27, row 1 of 2021-09-01, items 7 and 26): "feedetl_sn（费用明细流水号）只能传数字，
#: 不能传0，不能大于15位". Leading zeros are not forbidden (0000010001: 10 digits, not 0). A region
#: whose centre takes longer serials replaces the field. The references to a line (2301
#: init_feedetl_sn, 2302 feedetl_sn) are 字符型 (30) there and stay free: they name a line the
#: centre already holds, whatever form it was uploaded in.
_FEEDETL_SN_FORM = r"(?!0+$)[0-9]{1,15}"
_FEEDETL_SN_TEXT = "1 to 15 digits, not 0 (只能传数字，不能传0，不能大于15位)"

#: The tables below follow the edition the national profile names (RegionProfile.interface_edition,
#: Hunan V1.1.27, itself "基于国家2021年12月30号下发接口标准基线版"): its fields in its order, with
#: its types, lengths and required flags; a number written N (2) or N,M (16,2) is num(N, M). Where
#: the national baseline reads a table differently, hooks.py declares it (edition_differences).
_DISEINFO_2401 = ChildSpec(
    "diseinfo",
    (
        f("psn_no", req=True), f("diag_type", length=3, req=True), f("maindiag_flag", length=3, req=True),
        f("diag_srt_no", "num", 2, req=True), f("diag_code", length=20, req=True),
        f("diag_name", length=100, req=True), f("adm_cond", length=500), f("diag_dept", length=50, req=True),
        f("dise_dor_no", length=30, req=True), f("dise_dor_name", length=50, req=True),
        f("diag_time", "datetime", req=True),
    ),
    required=True,
)

#: 2401 mdtrtinfo and 2402 dscginfo share the childbirth and birth-control fields
_BIRTH = (
    f("fpsc_no", length=50), f("matn_type", length=6), f("birctrl_type", length=6), f("latechb_flag", length=3),
    f("geso_val", "num", 2), f("fetts", "num", 3), f("fetus_cnt", "num", 3), f("pret_flag", length=3),
    f("birctrl_matn_date", "date"),
)

ADMISSION = TransactionSpec(
    infno="2401",
    description="入院办理 inpatient admission",
    node="mdtrtinfo",
    fields=(
        f("psn_no", req=True), f("insutype", length=6, req=True), f("coner_name", length=50),
        f("tel", length=50), f("begntime", "datetime", req=True), f("mdtrt_cert_type", length=3, req=True),
        f("mdtrt_cert_no", length=50), f("card_sn", length=32), f("cert_type", length=3, req=True),
        f("certno", length=20, req=True), f("med_type", length=6, req=True),
        f("ipt_no", length=30, req=True), f("medrcdno", length=30), f("atddr_no", length=30, req=True),
        f("chfpdr_name", length=50, req=True), f("adm_diag_dscr", length=200, req=True),
        f("adm_dept_codg", length=30, req=True), f("adm_dept_name", length=100, req=True),
        f("adm_bed", length=30, req=True), f("dscg_maindiag_code", length=20, req=True),
        f("dscg_maindiag_name", length=300, req=True), f("main_cond_dscr", length=1000),
        f("dise_codg", length=30), f("dise_name", length=500), f("oprn_oprt_code", length=30),
        f("oprn_oprt_name", length=500), *_BIRTH, f("dise_type_code", length=6), f("exp_content", length=4000),
        f("insuplc_admdvs", length=6, req=True), f("mdtrtarea_admvs", length=6, req=True),
    ),
    children=(_DISEINFO_2401,),
    key=("ipt_no",),
    group_field="ipt_no",
    phase=0,
    mapped={
        "atddr_no": (MappingKind.DOCTOR, "atddr_no"),
        "adm_dept_codg": (MappingKind.DEPT, "adm_dept_codg"),
        "diseinfo.dise_dor_no": (MappingKind.DOCTOR, "dise_dor_no"),
    },
    registers_visit=True,
)

DISCHARGE = TransactionSpec(
    infno="2402",
    description="出院办理 inpatient discharge",
    node="dscginfo",
    fields=(
        f("mdtrt_id", req=True), f("psn_no", req=True), f("insutype", length=6, req=True),
        f("endtime", "datetime", req=True), f("dise_codg", length=30), f("dise_name", length=500),
        f("oprn_oprt_code", length=30), f("oprn_oprt_name", length=500), *_BIRTH, f("cop_flag", length=3),
        f("dscg_dept_codg", length=30, req=True), f("dscg_dept_name", length=100, req=True),
        f("dscg_bed", length=30), f("dscg_way", length=3, req=True), f("die_date", "date"),
        f("exp_content", length=4000),
    ),
    children=(
        ChildSpec(
            "diseinfo",
            (
                f("mdtrt_id", req=True), f("psn_no", req=True), f("diag_type", length=3, req=True),
                f("maindiag_flag", length=3, req=True), f("diag_srt_no", "num", 2, req=True),
                f("diag_code", length=20, req=True), f("diag_name", length=100, req=True),
                f("diag_dept", length=50, req=True), f("dise_dor_no", length=30, req=True),
                f("dise_dor_name", length=50, req=True), f("diag_time", "datetime", req=True),
            ),
            required=True,
        ),
    ),
    key=("mdtrt_id",),
    group_field="mdtrt_id",
    phase=2,
    mapped={
        "dscg_dept_codg": (MappingKind.DEPT, "dscg_dept_codg"),
        "diseinfo.dise_dor_no": (MappingKind.DOCTOR, "dise_dor_no"),
    },
)

_ITEM = (
    f("med_list_codg", length=50, req=True), f("fixmedins_hilist_id", length=30, req=True),
    f("fixmedins_hilist_name", length=200, req=True),
)
_BATCH = f("fixmedins_bchno", length=30, req=True)


def _trace_codes(length: int, *, required: bool = False) -> ChildSpec:
    """溯源码节点信息: the drug trace codes of the boxes moved, a list inside the main node."""
    return ChildSpec("drugtracinfo", (f("drug_trac_codg", length=length),), required=required, inside=True)


def _inventory(infno: str, description: str, node: str, fields: tuple[FieldSpec, ...], key: tuple[str, ...],
               children: tuple[ChildSpec, ...] = (), phase: int = 1) -> TransactionSpec:
    return TransactionSpec(
        infno=infno,
        description=description,
        node=node,
        fields=fields,
        key=key,
        # Moves of one batch leave in the order they happened (purchase before sale, a 3507
        # deletion after what it deletes): the batch is what 3507 names, and it is one item's.
        group_field="fixmedins_bchno",
        group_prefix="batch",
        children=children,
        mapped={"med_list_codg": (MappingKind.ITEM, "fixmedins_hilist_id")}
        if any(item.name == "med_list_codg" for item in fields) else {},
        phase=phase,
    )


#: 3501-3507 (进销存). A key is made of required fields only: 3504 medins_prod_purc_no and 3506
#: medins_prod_sel_no are optional in the edition, so a return is known by item, batch and time.
INVENTORY = (
    _inventory(
        "3501", "商品盘存 stocktake", "invinfo",
        (*_ITEM, f("rx_flag", length=3, req=True), f("invdate", "date", req=True),
         f("inv_cnt", "num", 16, 2, req=True), f("manu_lotnum", length=30), _BATCH,
         f("manu_date", "date", req=True), f("expy_end", "date", req=True), f("memo", length=500)),
        ("fixmedins_hilist_id", "fixmedins_bchno", "invdate"),
        (_trace_codes(100),),
    ),
    _inventory(
        "3502", "商品库存变更 stock change", "invinfo",
        (f("med_list_codg", length=50, req=True), f("inv_chg_type", length=6, req=True),
         f("fixmedins_hilist_id", length=30, req=True), f("fixmedins_hilist_name", length=200, req=True),
         _BATCH, f("pric", "num", 16, 6, req=True), f("cnt", "num", 16, 4, req=True),
         f("rx_flag", length=3, req=True), f("inv_chg_time", "datetime", req=True),
         f("inv_chg_opter_name", length=50), f("memo", length=500), f("trdn_flag", length=2)),
        ("fixmedins_hilist_id", "fixmedins_bchno", "inv_chg_time"),
    ),
    _inventory(
        "3503", "商品采购 purchase", "purcinfo",
        (*_ITEM, f("dynt_no", length=50), _BATCH, f("spler_name", length=200, req=True),
         f("spler_pmtno", length=50), f("manu_lotnum", length=30, req=True),
         f("prodentp_name", length=200, req=True), f("aprvno", length=100, req=True),
         f("manu_date", "date", req=True), f("expy_end", "date", req=True),
         f("finl_trns_pric", "num", 16, 6), f("purc_retn_cnt", "num", 16, 4, req=True),
         f("purc_invo_codg", length=50), f("purc_invo_no", length=50), f("rx_flag", length=3, req=True),
         f("purc_retn_stoin_time", "datetime", req=True), f("purc_retn_opter_name", length=50, req=True),
         f("prod_geay_flag", length=3), f("memo", length=500)),
        ("fixmedins_hilist_id", "fixmedins_bchno"),
    ),
    _inventory(
        "3504", "商品采购退货 purchase return", "purcinfo",
        (*_ITEM, _BATCH, f("spler_name", length=200, req=True), f("spler_pmtno", length=50),
         f("manu_date", "date", req=True), f("expy_end", "date", req=True),
         f("finl_trns_pric", "num", 16, 6), f("purc_retn_cnt", "num", 16, 4, req=True),
         f("purc_invo_codg", length=50), f("purc_invo_no", length=50, req=True),
         f("rx_flag", length=3, req=True), f("purc_retn_stoin_time", "datetime", req=True),
         f("purc_retn_opter_name", length=50, req=True), f("memo", length=500),
         f("medins_prod_purc_no", length=50)),
        ("fixmedins_hilist_id", "fixmedins_bchno", "purc_retn_stoin_time"),
    ),
    _inventory(
        "3505", "商品销售 sale", "selinfo",
        (*_ITEM, _BATCH,
         f("prsc_dr_cert_type", length=6), f("prsc_dr_certno", length=50), f("prsc_dr_name", length=50, req=True),
         f("phar_cert_type", length=6), f("phar_certno", length=50), f("phar_name", length=50, req=True),
         f("phar_prac_cert_no", length=50, req=True), f("hi_feesetl_type", length=6), f("setl_id", length=30),
         f("mdtrt_sn", length=30, req=True), f("psn_no", length=30), f("psn_cert_type", length=6),
         f("certno", length=50), f("psn_name", length=50), f("manu_lotnum", length=30, req=True),
         f("manu_date", "date", req=True), f("expy_end", "date"), f("rx_flag", length=3, req=True),
         f("trdn_flag", length=3, req=True), f("finl_trns_pric", "num", 16, 6), f("rxno", length=40),
         f("rx_circ_flag", length=3), f("rtal_docno", length=40, req=True), f("stoout_no", length=40),
         f("bchno", length=30), f("drug_trac_codg", length=30), f("drug_prod_barc", length=30),
         f("shelf_posi", length=20), f("sel_retn_cnt", "num", 16, 4, req=True),
         f("sel_retn_time", "datetime", req=True), f("sel_retn_opter_name", length=50, req=True),
         f("memo", length=500), f("MDTRT_SETL_TYPE", length=6)),
        ("rtal_docno", "fixmedins_hilist_id", "fixmedins_bchno"),
        (_trace_codes(30, required=True),),
    ),
    _inventory(
        "3506", "商品销售退货 sale return", "selinfo",
        (*_ITEM, _BATCH, f("setl_id", length=30), f("psn_no", length=30), f("psn_cert_type", length=6),
         f("certno", length=50), f("psn_name", length=50), f("manu_lotnum", length=30, req=True),
         f("manu_date", "date", req=True), f("expy_end", "date"), f("rx_flag", length=3, req=True),
         f("trdn_flag", length=3, req=True), f("finl_trns_pric", "num", 16, 6),
         f("sel_retn_cnt", "num", 16, 4, req=True), f("sel_retn_time", "datetime", req=True),
         f("sel_retn_opter_name", length=50, req=True), f("memo", length=500),
         f("medins_prod_sel_no", length=50), f("mdtrt_sn", length=30, req=True)),
        ("fixmedins_hilist_id", "fixmedins_bchno", "sel_retn_time"),
        (_trace_codes(100),),
    ),
    _inventory(
        # deletes what 3501-3506 uploaded for one batch, by data type (1 盘存, 2 库存变更, 3 采购,
        # 4 销售): it closes the batch's group, after the data it deletes
        "3507", "商品信息删除 delete a batch's data", "data",
        (_BATCH, f("inv_data_type", length=30, req=True)),
        ("fixmedins_bchno", "inv_data_type"),
        phase=2,
    ),
)

OUTPATIENT_REGISTRATION = TransactionSpec(
    infno="2201",
    description="门诊挂号 outpatient registration",
    node="data",
    fields=(
        f("psn_no", req=True), f("insutype", length=6, req=True), f("begntime", "datetime", req=True),
        f("mdtrt_cert_type", length=3, req=True), f("mdtrt_cert_no", length=50, req=True),
        f("card_sn", length=32), f("psn_cert_type", length=3, req=True), f("certno", length=20, req=True),
        f("psn_type", length=3, req=True), f("psn_name", length=20, req=True),
        f("ipt_otp_no", length=30, req=True), f("atddr_no", length=30), f("dr_name", length=50),
        f("dept_code", length=30, req=True), f("dept_name", length=100, req=True),
        f("caty", length=10, req=True), f("exp_content", length=4000),
    ),
    key=("ipt_otp_no",),
    group_field="ipt_otp_no",
    phase=0,
    # caty 科别 is a value of the edition's 科室代码 dictionary (dept, A03.04...): the national
    # code the department mapping gives
    mapped={"atddr_no": (MappingKind.DOCTOR, "atddr_no"), "dept_code": (MappingKind.DEPT, "dept_code"),
            "caty": (MappingKind.DEPT, "caty")},
    registers_visit=True,
)

OUTPATIENT_VISIT = TransactionSpec(
    infno="2203",
    description="门诊就诊信息上传 outpatient visit information",
    node="mdtrtinfo",
    fields=(
        f("mdtrt_id", req=True), f("psn_no", req=True), f("med_type", length=6, req=True),
        f("begntime", "datetime", req=True), f("main_cond_dscr", length=1000),
        f("dise_type_code", length=30), f("dise_codg", length=30, req=True), f("dise_name", length=500, req=True),
        f("birctrl_type", length=6), f("birctrl_matn_date", "date"), f("exp_content", length=4000),
    ),
    children=(
        ChildSpec(
            "diseinfo",
            (
                f("diag_type", length=3, req=True), f("diag_srt_no", "num", 2, req=True),
                f("diag_code", length=20, req=True), f("diag_name", length=100, req=True),
                f("diag_dept", length=50, req=True), f("dise_dor_no", length=30, req=True),
                f("dise_dor_name", length=50, req=True), f("diag_time", "datetime", req=True),
                f("vali_flag", length=3, req=True),
            ),
            required=True,
        ),
    ),
    key=("mdtrt_id",),
    group_field="mdtrt_id",
    mapped={"diseinfo.dise_dor_no": (MappingKind.DOCTOR, "dise_dor_no")},
)

_FEEDETAIL_2204 = ChildSpec(
    "feedetail",
    (
        f("feedetl_sn", req=True, pattern=_FEEDETL_SN_FORM, pattern_text=_FEEDETL_SN_TEXT),
        f("mdtrt_id", req=True), f("psn_no", req=True),
        f("chrg_bchno", req=True, reserved=_ALL_ZEROS,
          reserved_text=f"a batch numbered so could never be cancelled on its own: {_DELETES_ALL_BATCHES}"),
        f("dise_codg"), f("rxno"), f("rx_circ_flag", length=3, req=True),
        f("fee_ocur_time", "datetime", req=True), f("med_list_codg", length=50, req=True),
        f("medins_list_codg", length=150, req=True), f("det_item_fee_sumamt", "num", 16, 2, req=True),
        f("cnt", "num", 16, 4, req=True), f("pric", "num", 16, 6, req=True),
        f("sin_dos_dscr", length=200), f("used_frqu_dscr", length=200), f("prd_days", "num", 4, 2),
        f("medc_way_dscr", length=200), f("bilg_dept_codg", req=True), f("bilg_dept_name", length=100, req=True),
        f("bilg_dr_codg", req=True), f("bilg_dr_name", length=50, req=True), f("acord_dept_codg"),
        f("acord_dept_name", length=100), f("orders_dr_code"), f("orders_dr_name", length=50),
        f("hosp_appr_flag", length=3, req=True), f("tcmdrug_used_way", length=6), f("etip_flag", length=3),
        f("etip_hosp_code"), f("dscg_tkdrug_flag", length=3), f("matn_fee_flag", length=6),
        f("exp_content", length=4000),
    ),
    required=True,
    unique=("feedetl_sn",),
    same=("dise_codg", "mdtrt_id", "chrg_bchno"),
    amount=("det_item_fee_sumamt", "cnt", "pric"),
)

OUTPATIENT_FEES = TransactionSpec(
    infno="2204",
    description="门诊费用明细上传 outpatient fee details (one charge batch)",
    node="",
    fields=(f("mdtrt_id", req=True), f("chrg_bchno", req=True)),
    children=(_FEEDETAIL_2204,),
    key=("mdtrt_id", "chrg_bchno"),
    group_field="mdtrt_id",
    mapped={
        "feedetail.med_list_codg": (MappingKind.ITEM, "medins_list_codg"),
        "feedetail.bilg_dept_codg": (MappingKind.DEPT, "bilg_dept_codg"),
        "feedetail.bilg_dr_codg": (MappingKind.DOCTOR, "bilg_dr_codg"),
    },
    fee_lines="feedetail",
    # HIS facts for the policy rules, from the child entries' underscore keys (never sent)
    facts={"his_item_category": "_category", "his_std_price": "_std_price", "his_item_name": "_item_name",
           "main_diag_code": "_main_diag", "er_flag": "_er_flag"},
)

OUTPATIENT_FEES_CANCEL = TransactionSpec(
    infno="2205",
    description="门诊费用明细撤销 cancel an outpatient charge batch",
    node="data",
    fields=(f("mdtrt_id", req=True), f("chrg_bchno", req=True, reserved=_ALL_ZEROS, reserved_text=_DELETES_ALL_BATCHES),
            f("psn_no", req=True)),
    key=("mdtrt_id", "chrg_bchno"),
    group_field="mdtrt_id",
    cancels="2204",
)

INPATIENT_FEES_CANCEL = TransactionSpec(
    infno="2302",
    description="住院费用明细撤销 cancel uploaded inpatient fee lines",
    node="data",
    node_is_list=True,
    fields=(f("feedetl_sn", req=True, reserved=_ALL_ZEROS, reserved_text=_DELETES_ALL_LINES),
            f("mdtrt_id", req=True), f("psn_no", req=True), f("exp_content", length=4000)),
    key=("mdtrt_id", "feedetl_sn"),
    group_field="mdtrt_id",
    cancels="2301",
)

#: 2301 feedetail, in the spec's field order (reference §3.7)
_FEEDETAIL_2301: tuple[FieldSpec, ...] = (
    f("feedetl_sn", req=True, pattern=_FEEDETL_SN_FORM, pattern_text=_FEEDETL_SN_TEXT, reserved=_ALL_ZEROS,
      reserved_text=f"a line numbered so could never be cancelled on its own: {_DELETES_ALL_LINES}"),
    f("init_feedetl_sn"), f("mdtrt_id", req=True), f("drord_no"),
    f("psn_no", req=True), f("med_type", length=6, req=True), f("fee_ocur_time", "datetime", req=True),
    f("med_list_codg", length=50, req=True), f("medins_list_codg", length=150, req=True),
    f("det_item_fee_sumamt", "num", 16, 2, req=True), f("cnt", "num", 16, 4, req=True),
    f("pric", "num", 16, 6, req=True), f("bilg_dept_codg", req=True), f("bilg_dept_name", length=100, req=True),
    f("bilg_dr_codg", req=True), f("bilg_dr_name", length=50, req=True), f("acord_dept_codg"),
    f("acord_dept_name", length=100), f("orders_dr_code"), f("orders_dr_name", length=50),
    f("hosp_appr_flag", length=3), f("tcmdrug_used_way", length=6), f("etip_flag", length=3),
    f("etip_hosp_code"), f("dscg_tkdrug_flag", length=3), f("matn_fee_flag", length=6), f("memo", length=500),
    f("exp_content", length=4000),
)

INPATIENT_FEES = TransactionSpec(
    infno="2301",
    description="住院费用明细上传 inpatient fee details (one record per fee line)",
    node="feedetail",
    node_is_list=True,
    fields=_FEEDETAIL_2301,
    key=("mdtrt_id", "feedetl_sn"),
    group_field="mdtrt_id",
    # The fee query names the HIS codes and names by their HIS meaning ([his] fee_query).
    his_columns={"medins_list_codg": "his_item_code", "bilg_dept_codg": "his_dept_code",
                 "bilg_dept_name": "his_dept_name", "bilg_dr_codg": "his_doctor_code",
                 "bilg_dr_name": "his_doctor_name"},
    mapped={
        "med_list_codg": (MappingKind.ITEM, "medins_list_codg"),
        "bilg_dept_codg": (MappingKind.DEPT, "bilg_dept_codg"),
        "bilg_dr_codg": (MappingKind.DOCTOR, "bilg_dr_codg"),
    },
    fee_lines=".",
    batched=True,
    refund_of=("init_feedetl_sn", "feedetl_sn"),
    blame_fields=("feedetl_sn", "med_list_codg"),
)

TRANSACTIONS = {
    spec.infno: spec
    for spec in (
        OUTPATIENT_REGISTRATION, OUTPATIENT_VISIT, OUTPATIENT_FEES, OUTPATIENT_FEES_CANCEL,
        INPATIENT_FEES, INPATIENT_FEES_CANCEL, ADMISSION, DISCHARGE, SETTLEMENT_LIST, *INVENTORY,
    )
}
