"""The HIS queries of the record transactions for the sample HIS schema (what ``demo`` and
the tests read). A hospital writes its own in ``[sources."<infno>"]``; these show the shape:
columns named as the national fields, ``:watermark`` and ``:limit`` bound by the extractor,
child lists as a JSON array column named after the node (SQLite json_group_array here,
json_agg on PostgreSQL)."""

from __future__ import annotations

_DISEINFO = """
(SELECT json_group_array(json_object(
    'psn_no', p.psn_no, 'mdtrt_id', v.mdtrt_id, 'diag_type', g.diag_type,
    'maindiag_flag', g.maindiag_flag, 'diag_srt_no', g.srt_no, 'diag_code', g.diag_code,
    'diag_name', g.diag_name, 'diag_dept', d.dept_name, 'dise_dor_no', g.doctor_code,
    'dise_dor_name', dr.doctor_name, 'diag_time', g.diag_time, 'adm_cond', ''))
 FROM diagnoses g
 LEFT JOIN doctors dr ON dr.doctor_code = g.doctor_code
 WHERE g.visit_id = v.visit_id) AS diseinfo
"""

ADMISSIONS = f"""
SELECT v.visit_id AS visit_id, p.psn_no AS psn_no, p.insuplc_admdvs AS insuplc_admdvs,
       v.insutype AS insutype, v.admitted_at AS begntime, '02' AS mdtrt_cert_type,
       v.certno AS mdtrt_cert_no, v.med_type AS med_type, v.mdtrt_id AS ipt_no,
       v.doctor_code AS atddr_no, dr.doctor_name AS chfpdr_name, v.dept_code AS adm_dept_codg,
       d.dept_name AS adm_dept_name, v.main_diag_code AS dscg_maindiag_code,
       v.main_diag_name AS dscg_maindiag_name, p.patient_name AS coner_name,
       {_DISEINFO}
FROM inpatient_visits v
JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
LEFT JOIN doctors dr ON dr.doctor_code = v.doctor_code
WHERE v.visit_id > :watermark
ORDER BY v.visit_id
LIMIT :limit
"""

DISCHARGES = f"""
SELECT v.discharge_seq AS discharge_seq, v.mdtrt_id AS mdtrt_id, p.psn_no AS psn_no,
       p.insuplc_admdvs AS insuplc_admdvs, v.insutype AS insutype, v.discharged_at AS endtime,
       v.main_diag_code AS dise_codg, v.main_diag_name AS dise_name,
       v.dept_code AS dscg_dept_codg, d.dept_name AS dscg_dept_name, v.dscg_way AS dscg_way,
       {_DISEINFO}
FROM inpatient_visits v
JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
WHERE v.discharge_seq IS NOT NULL AND v.discharge_seq > :watermark
ORDER BY v.discharge_seq
LIMIT :limit
"""

#: Columns every inventory transaction takes from one stock movement; each transaction picks
#: the ones it has (the others are ignored).
_STOCK_COLUMNS = """
SELECT m.move_id AS move_id, m.item_code AS fixmedins_hilist_id, i.item_name AS fixmedins_hilist_name,
       m.batch_no AS fixmedins_bchno, '1' AS rx_flag, '0' AS trdn_flag,
       substr(m.moved_at, 1, 10) AS invdate, m.qty AS inv_cnt,
       m.qty AS cnt, m.price AS pric, '1' AS inv_chg_type, m.moved_at AS inv_chg_time,
       m.operator AS inv_chg_opter_name,
       '示例医药有限公司' AS spler_name, '示例制药厂' AS prodentp_name, '国药准字H00000000' AS aprvno,
       m.price AS finl_trns_pric, abs(m.qty) AS purc_retn_cnt, m.moved_at AS purc_retn_stoin_time,
       m.operator AS purc_retn_opter_name, m.doc_no AS medins_prod_purc_no,
       m.operator AS prsc_dr_name, m.operator AS phar_name, 'YS000000' AS phar_prac_cert_no,
       m.doc_no AS mdtrt_sn, m.doc_no AS rtal_docno, m.doc_no AS stoout_no,
       abs(m.qty) AS sel_retn_cnt, m.moved_at AS sel_retn_time, m.operator AS sel_retn_opter_name,
       m.doc_no AS medins_prod_sel_no, '3' AS inv_data_type
FROM stock_moves m
LEFT JOIN charge_items i ON i.item_code = m.item_code
"""


def _stock(infno: str) -> str:
    return (
        _STOCK_COLUMNS
        + f"WHERE m.infno = '{infno}' AND m.move_id > :watermark\nORDER BY m.move_id\nLIMIT :limit\n"
    )


#: infno -> (query, watermark column)
SAMPLE_QUERIES: dict[str, tuple[str, str]] = {
    "2401": (ADMISSIONS, "visit_id"),
    "2402": (DISCHARGES, "discharge_seq"),
    **{infno: (_stock(infno), "move_id") for infno in ("3501", "3502", "3503", "3504", "3505", "3506", "3507")},
}
