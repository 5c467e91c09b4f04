"""The national record transactions as data (reference §3.7, §3.12): fields in the spec's
order with type, length and required flag, the business key, and the HIS codes to map."""

from __future__ import annotations

from adapter.mapping.store import MappingKind
from adapter.transactions import ChildSpec, TransactionSpec, f

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

ADMISSION = TransactionSpec(
    infno="2401",
    description="入院办理 inpatient admission",
    node="mdtrtinfo",
    fields=(
        f("psn_no", req=True), f("insutype", length=6, req=True), f("coner_name", length=50),
        f("tel", length=50), f("begntime", "datetime", req=True), f("mdtrt_cert_type", length=3, req=True),
        f("mdtrt_cert_no", length=50, req=True), f("med_type", length=6, req=True),
        f("ipt_no", length=30, req=True), f("medrcdno", length=30), f("atddr_no", length=30, req=True),
        f("chfpdr_name", length=50, req=True), f("adm_diag_dscr", length=200),
        f("adm_dept_codg", length=30, req=True), f("adm_dept_name", length=100, req=True),
        f("adm_bed", length=30), f("dscg_maindiag_code", length=30, req=True),
        f("dscg_maindiag_name", length=300, req=True), f("main_cond_dscr", length=500),
        f("dise_codg", length=30), f("dise_name", length=300), f("oprn_oprt_code", length=30),
        f("oprn_oprt_name", length=500), f("fpsc_no", length=50), f("matn_type", length=6),
        f("birctrl_type", length=6), f("latechb_flag", length=3), f("geso_val", "num", 2),
        f("fetts", "num", 3), f("fetus_cnt", "num", 3), f("pret_flag", length=3),
        f("birctrl_matn_date", "date"), f("dise_type_code", length=30), f("exp_content", length=4000),
    ),
    children=(_DISEINFO_2401,),
    key=("ipt_no",),
    group_field="ipt_no",
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
        f("endtime", "datetime", req=True), f("dise_codg", length=30), f("dise_name", length=300),
        f("oprn_oprt_code", length=30), f("oprn_oprt_name", length=500), f("fpsc_no", length=50),
        f("matn_type", length=6), f("birctrl_type", length=6), f("latechb_flag", length=3),
        f("geso_val", "num", 2), f("fetts", "num", 3), f("fetus_cnt", "num", 3), f("pret_flag", length=3),
        f("birctrl_matn_date", "date"), f("cop_flag", length=3),
        f("dscg_dept_codg", length=30, req=True), f("dscg_dept_name", length=100, req=True),
        f("dscg_bed", length=30), f("dscg_way", length=6, req=True), f("die_date", "date"),
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
    mapped={
        "dscg_dept_codg": (MappingKind.DEPT, "dscg_dept_codg"),
        "diseinfo.dise_dor_no": (MappingKind.DOCTOR, "dise_dor_no"),
    },
    binds_visit=True,
)

_ITEM = (
    f("med_list_codg", length=50, req=True), f("fixmedins_hilist_id", length=30, req=True),
    f("fixmedins_hilist_name", length=200, req=True),
)
_BATCH = (f("fixmedins_bchno", length=30, req=True),)
_MANU = (f("manu_lotnum", length=30), f("manu_date", "date"), f("expy_end", "date"))


def _inventory(infno: str, description: str, node: str, fields: tuple, key: tuple[str, ...]) -> TransactionSpec:
    return TransactionSpec(
        infno=infno,
        description=description,
        node=node,
        fields=fields,
        key=key,
        # Moves of one stock item leave in the order they happened (purchase before sale).
        group_field="fixmedins_hilist_id",
        group_prefix="item",
        mapped={"med_list_codg": (MappingKind.ITEM, "fixmedins_hilist_id")}
        if any(item.name == "med_list_codg" for item in fields) else {},
    )


INVENTORY = (
    _inventory(
        "3501", "商品盘存 stocktake", "invinfo",
        _ITEM + (f("rx_flag", length=3, req=True), f("invdate", "date", req=True),
                 f("inv_cnt", "num", 16, 4, req=True)) + _MANU[:1] + _BATCH + _MANU[1:]
        + (f("memo", length=500),),
        ("fixmedins_hilist_id", "fixmedins_bchno", "invdate"),
    ),
    _inventory(
        "3502", "商品库存变更 stock change", "invinfo",
        (f("med_list_codg", length=50, req=True), f("inv_chg_type", length=6, req=True),
         f("fixmedins_hilist_id", length=30, req=True), f("fixmedins_hilist_name", length=200, req=True))
        + _BATCH + (f("pric", "num", 16, 6, req=True), f("cnt", "num", 16, 4, req=True),
                    f("rx_flag", length=3, req=True), f("inv_chg_time", "datetime", req=True),
                    f("inv_chg_opter_name", length=50), f("memo", length=500), f("trdn_flag", length=3, req=True)),
        ("fixmedins_hilist_id", "fixmedins_bchno", "inv_chg_time"),
    ),
    _inventory(
        "3503", "商品采购 purchase", "purcinfo",
        _ITEM + (f("dynt_no", length=30),) + _BATCH
        + (f("spler_name", length=200, req=True), f("spler_pmtno", length=50)) + _MANU[:1]
        + (f("prodentp_name", length=200, req=True), f("aprvno", length=100, req=True)) + _MANU[1:]
        + (f("finl_trns_pric", "num", 16, 6, req=True), f("purc_retn_cnt", "num", 16, 4, req=True),
           f("purc_invo_codg", length=50), f("purc_invo_no", length=50), f("rx_flag", length=3, req=True),
           f("purc_retn_stoin_time", "datetime", req=True), f("purc_retn_opter_name", length=50, req=True),
           f("prod_geay_flag", length=3), f("memo", length=500)),
        ("fixmedins_hilist_id", "fixmedins_bchno"),
    ),
    _inventory(
        "3504", "商品采购退货 purchase return", "purcinfo",
        _ITEM + _BATCH + (f("spler_name", length=200, req=True), f("spler_pmtno", length=50))
        + _MANU[2:] + (f("finl_trns_pric", "num", 16, 6, req=True), f("purc_retn_cnt", "num", 16, 4, req=True),
                       f("purc_retn_stoin_time", "datetime", req=True),
                       f("purc_retn_opter_name", length=50, req=True), f("memo", length=500),
                       f("medins_prod_purc_no", length=50, req=True)),
        ("medins_prod_purc_no",),
    ),
    _inventory(
        "3505", "商品销售 sale", "selinfo",
        _ITEM + _BATCH
        + (f("prsc_dr_cert_type", length=6), f("prsc_dr_certno", length=50), f("prsc_dr_name", length=50, req=True),
           f("phar_cert_type", length=6), f("phar_certno", length=50), f("phar_name", length=50, req=True),
           f("phar_prac_cert_no", length=50, req=True), f("hi_feesetl_type", length=6), f("setl_id", length=30),
           f("mdtrt_sn", length=30, req=True), f("psn_no", length=30), f("psn_cert_type", length=6),
           f("certno", length=600), f("psn_name", length=50)) + _MANU
        + (f("rx_flag", length=3, req=True), f("trdn_flag", length=3, req=True),
           f("finl_trns_pric", "num", 16, 6), f("rxno", length=40), f("rx_circ_flag", length=3),
           f("rtal_docno", length=40, req=True), f("stoout_no", length=40), f("bchno", length=30),
           f("drug_trac_codg", length=500), f("drug_prod_barc", length=30), f("shelf_posi", length=20),
           f("sel_retn_cnt", "num", 16, 4, req=True), f("sel_retn_time", "datetime", req=True),
           f("sel_retn_opter_name", length=50, req=True), f("memo", length=500)),
        ("rtal_docno", "fixmedins_hilist_id", "fixmedins_bchno"),
    ),
    _inventory(
        "3506", "商品销售退货 sale return", "selinfo",
        _ITEM + _BATCH
        + (f("setl_id", length=30), f("psn_no", length=30), f("psn_cert_type", length=6),
           f("certno", length=600), f("psn_name", length=50)) + _MANU
        + (f("rx_flag", length=3, req=True), f("trdn_flag", length=3, req=True),
           f("finl_trns_pric", "num", 16, 6), f("sel_retn_cnt", "num", 16, 4, req=True),
           f("sel_retn_time", "datetime", req=True), f("sel_retn_opter_name", length=50, req=True),
           f("memo", length=500), f("medins_prod_sel_no", length=50, req=True)),
        ("medins_prod_sel_no",),
    ),
    _inventory(
        "3507", "商品信息删除 delete a batch", "data",
        (f("fixmedins_bchno", length=30, req=True), f("inv_data_type", length=6, req=True),
         f("fixmedins_hilist_id", length=30, req=True)),
        ("fixmedins_bchno", "inv_data_type"),
    ),
)

TRANSACTIONS = {spec.infno: spec for spec in (ADMISSION, DISCHARGE, *INVENTORY)}
