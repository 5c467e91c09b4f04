"""The HIS queries of the record transactions for the sample HIS schema (what ``demo`` and
the tests read). A hospital writes its own in ``[sources."<infno>"]``; these show the shape:
columns named as the national fields, ``:watermark`` and ``:limit`` bound by the extractor,
child lists as a JSON array column named after the node (SQLite json_group_array here,
json_agg on PostgreSQL).

Every join is a LEFT JOIN: a row whose visit or patient row is missing (an orphan fee line)
still arrives, and is parked as malformed naming what it lacks (mdtrt_id, psn_no...), instead
of being dropped silently by an inner join."""

from __future__ import annotations

#: The sample HIS schema's inpatient fee-line query. ``:watermark`` and ``:limit`` are bound by
#: the extractor; the query must return rows ordered by the watermark column. ``opter`` and
#: ``opter_name`` (who entered the charge) are optional, for the self-inspection report.
FEE_LINES = """
SELECT f.line_id            AS line_id,
       v.mdtrt_id           AS mdtrt_id,
       p.psn_no             AS psn_no,
       p.insuplc_admdvs     AS insuplc_admdvs,
       v.med_type           AS med_type,
       f.feedetl_sn         AS feedetl_sn,
       f.init_feedetl_sn    AS init_feedetl_sn,
       f.order_no           AS drord_no,
       f.charged_at         AS fee_ocur_time,
       f.item_code          AS his_item_code,
       i.item_name          AS his_item_name,
       f.qty                AS cnt,
       f.unit_price         AS pric,
       f.amount             AS det_item_fee_sumamt,
       f.dept_code          AS his_dept_code,
       d.dept_name          AS his_dept_name,
       f.doctor_code        AS his_doctor_code,
       dr.doctor_name       AS his_doctor_name,
       i.category           AS his_item_category,
       i.unit_price         AS his_std_price,
       f.rxno               AS rxno,
       f.rx_days            AS prd_days,
       f.dscg_drug          AS dscg_tkdrug_flag,
       v.main_diag_code     AS main_diag_code,
       v.injury_cause       AS injury_cause,
       v.admitted_at        AS adm_time,
       v.discharged_at      AS dscg_time,
       f.operator_code      AS opter,
       op.operator_name     AS opter_name
FROM fee_lines f
LEFT JOIN inpatient_visits v ON v.visit_id = f.visit_id
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN charge_items i ON i.item_code = f.item_code
LEFT JOIN departments d ON d.dept_code = f.dept_code
LEFT JOIN doctors dr ON dr.doctor_code = f.doctor_code
LEFT JOIN operators op ON op.operator_code = f.operator_code
WHERE f.line_id > :watermark
ORDER BY f.line_id
LIMIT :limit
"""

#: Settlements in a period (:start, :end as yyyy-MM-dd HH:mm:ss), for the self-inspection
#: indicators and reconciliation. Optional columns: drug_sumamt/drug_selfpay_amt; setl_optins,
#: the clearing agency the centre returned at settlement (empty: ``[centre] setl_optins``);
#: msgid, the msgid of the settlement transaction (2207/2304); dual_channel_amt, the 双通道
#: deduction the agency names for the settlement (``report budget``); chfpdr_code/chfpdr_name,
#: dscg_dept_codg/dscg_dept_name and opter/opter_name, who answers for the settlement (the stay's
#: doctor and department, the cashier), for the reconciliation's differences.
SETTLEMENTS = """
SELECT s.setl_id, v.mdtrt_id, s.psn_no, s.insutype, s.clr_type, s.setl_time, s.medfee_sumamt,
       s.fund_pay_sumamt, s.acct_pay, s.psn_cash_pay, s.fulamt_ownpay_amt, s.refd_setl_flag,
       s.drug_sumamt, s.drug_selfpay_amt, s.setl_optins, s.msgid, s.dual_channel_amt,
       v.doctor_code AS chfpdr_code, dr.doctor_name AS chfpdr_name, v.dept_code AS dscg_dept_codg,
       d.dept_name AS dscg_dept_name, s.operator_code AS opter, op.operator_name AS opter_name
FROM settlements s
JOIN inpatient_visits v ON v.visit_id = s.visit_id
LEFT JOIN doctors dr ON dr.doctor_code = v.doctor_code
LEFT JOIN departments d ON d.dept_code = v.dept_code
LEFT JOIN operators op ON op.operator_code = s.operator_code
WHERE s.setl_time >= :start AND s.setl_time < :end
ORDER BY s.setl_time
"""

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
       v.mdtrtarea_admvs AS mdtrtarea_admvs, v.insutype AS insutype, v.admitted_at AS begntime,
       '02' AS mdtrt_cert_type, v.certno AS mdtrt_cert_no, p.cert_type AS cert_type, p.certno AS certno,
       v.med_type AS med_type, v.mdtrt_id AS ipt_no,
       v.doctor_code AS atddr_no, dr.doctor_name AS chfpdr_name, v.adm_diag_dscr AS adm_diag_dscr,
       v.dept_code AS adm_dept_codg, d.dept_name AS adm_dept_name, v.bed_no AS adm_bed,
       v.main_diag_code AS dscg_maindiag_code, v.main_diag_name AS dscg_maindiag_name,
       p.patient_name AS coner_name,
       {_DISEINFO}
FROM inpatient_visits v
LEFT JOIN patients p ON p.patient_id = v.patient_id
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
       v.dept_code AS dscg_dept_codg, d.dept_name AS dscg_dept_name, v.bed_no AS dscg_bed,
       v.dscg_way AS dscg_way,
       {_DISEINFO}
FROM inpatient_visits v
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
WHERE v.discharge_seq IS NOT NULL AND v.discharge_seq > :watermark
ORDER BY v.discharge_seq
LIMIT :limit
"""

#: Columns every inventory transaction takes from one stock movement; each transaction picks
#: the ones it has (the others are ignored). The batch gives the manufacturer's lot and dates;
#: the trace codes of the boxes moved are the drugtracinfo list. A sale's document is its
#: 就医流水号 (mdtrt_sn), and a sale return names the sale it gives back.
_STOCK_COLUMNS = """
SELECT m.move_id AS move_id, m.item_code AS fixmedins_hilist_id, i.item_name AS fixmedins_hilist_name,
       m.batch_no AS fixmedins_bchno, '1' AS rx_flag, '0' AS trdn_flag,
       b.manu_lotnum AS manu_lotnum, b.manu_date AS manu_date, b.expy_end AS expy_end,
       substr(m.moved_at, 1, 10) AS invdate, m.qty AS inv_cnt,
       abs(m.qty) AS cnt, m.price AS pric, m.chg_type AS inv_chg_type, m.moved_at AS inv_chg_time,
       m.operator AS inv_chg_opter_name,
       '示例医药有限公司' AS spler_name, '示例制药厂' AS prodentp_name, '国药准字H00000000' AS aprvno,
       m.price AS finl_trns_pric, abs(m.qty) AS purc_retn_cnt, m.invoice_no AS purc_invo_no,
       m.moved_at AS purc_retn_stoin_time, m.operator AS purc_retn_opter_name,
       m.ref_doc_no AS medins_prod_purc_no,
       m.operator AS prsc_dr_name, m.operator AS phar_name, 'YS000000' AS phar_prac_cert_no,
       coalesce(m.ref_doc_no, m.doc_no) AS mdtrt_sn, m.doc_no AS rtal_docno, m.doc_no AS stoout_no,
       abs(m.qty) AS sel_retn_cnt, m.moved_at AS sel_retn_time, m.operator AS sel_retn_opter_name,
       m.ref_doc_no AS medins_prod_sel_no, m.data_type AS inv_data_type,
       (SELECT json_group_array(json_object('drug_trac_codg', t.trace_code))
        FROM stock_trace_codes t WHERE t.move_id = m.move_id) AS drugtracinfo
FROM stock_moves m
LEFT JOIN charge_items i ON i.item_code = m.item_code
LEFT JOIN stock_batches b ON b.batch_no = m.batch_no
"""


def _stock(infno: str) -> str:
    return (
        _STOCK_COLUMNS
        + f"WHERE m.infno = '{infno}' AND m.move_id > :watermark\nORDER BY m.move_id\nLIMIT :limit\n"
    )


OUTPATIENT_REGISTRATIONS = """
SELECT v.visit_id AS visit_id, p.psn_no AS psn_no, p.insuplc_admdvs AS insuplc_admdvs,
       v.insutype AS insutype, v.begntime AS begntime, '02' AS mdtrt_cert_type,
       v.certno AS mdtrt_cert_no, p.cert_type AS psn_cert_type, p.certno AS certno,
       p.psn_type AS psn_type, p.patient_name AS psn_name, v.otp_no AS ipt_otp_no, v.doctor_code AS atddr_no,
       dr.doctor_name AS dr_name, v.dept_code AS dept_code, d.dept_name AS dept_name,
       v.dept_code AS caty
FROM outpatient_visits v
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
LEFT JOIN doctors dr ON dr.doctor_code = v.doctor_code
WHERE v.visit_id > :watermark
ORDER BY v.visit_id
LIMIT :limit
"""

OUTPATIENT_VISITS = """
SELECT v.visit_id AS visit_id, v.otp_no AS mdtrt_id, p.psn_no AS psn_no,
       p.insuplc_admdvs AS insuplc_admdvs, v.med_type AS med_type, v.begntime AS begntime,
       v.diag_code AS dise_codg, v.diag_name AS dise_name,
       json_array(json_object(
           'diag_type', '1', 'diag_srt_no', 1, 'diag_code', v.diag_code, 'diag_name', v.diag_name,
           'diag_dept', d.dept_name, 'dise_dor_no', v.doctor_code, 'dise_dor_name', dr.doctor_name,
           'diag_time', v.begntime, 'vali_flag', '1')) AS diseinfo
FROM outpatient_visits v
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
LEFT JOIN doctors dr ON dr.doctor_code = v.doctor_code
WHERE v.visit_id > :watermark
ORDER BY v.visit_id
LIMIT :limit
"""

#: One row per charge batch; its lines are the feedetail list. A batch is complete when the
#: counter charges it, so the first line id of the batch is a safe watermark.
OUTPATIENT_FEES = """
SELECT min(f.line_id) AS first_line, v.otp_no AS mdtrt_id, f.chrg_bchno AS chrg_bchno,
       max(p.insuplc_admdvs) AS insuplc_admdvs,
       json_group_array(json_object(
           'feedetl_sn', f.feedetl_sn, 'mdtrt_id', v.otp_no, 'psn_no', p.psn_no,
           'chrg_bchno', f.chrg_bchno, 'dise_codg', '', 'rxno', f.rxno, 'rx_circ_flag', '0',
           'fee_ocur_time', f.charged_at, 'medins_list_codg', f.item_code,
           'det_item_fee_sumamt', f.amount, 'cnt', f.qty, 'pric', f.unit_price,
           'bilg_dept_codg', v.dept_code, 'bilg_dept_name', d.dept_name,
           'bilg_dr_codg', v.doctor_code, 'bilg_dr_name', dr.doctor_name, 'prd_days', f.rx_days,
           '_category', i.category, '_std_price', i.unit_price, '_item_name', i.item_name,
           '_main_diag', v.diag_code, 'opter', f.operator_code, 'opter_name', op.operator_name)) AS feedetail
FROM outpatient_fees f
LEFT JOIN outpatient_visits v ON v.visit_id = f.visit_id
LEFT JOIN charge_items i ON i.item_code = f.item_code
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
LEFT JOIN doctors dr ON dr.doctor_code = v.doctor_code
LEFT JOIN operators op ON op.operator_code = f.operator_code
GROUP BY v.otp_no, f.chrg_bchno
HAVING min(f.line_id) > :watermark
ORDER BY min(f.line_id)
LIMIT :limit
"""


def _cancels(infno: str) -> str:
    return f"""
SELECT c.cancel_id AS cancel_id, c.visit_no AS mdtrt_id, c.psn_no AS psn_no,
       c.feedetl_sn AS feedetl_sn, c.chrg_bchno AS chrg_bchno
FROM fee_cancels c
WHERE c.infno = '{infno}' AND c.cancel_id > :watermark
ORDER BY c.cancel_id
LIMIT :limit
"""


#: 4101: the settlement list of a settlement, from the stay, its 病案首页 (case_records), its
#: diagnoses and operations, the settlement's bill and its fund payments (one 统筹基金 payment
#: per settlement: 310100 for 职工, 390100 for 城乡居民). The money paid by the person is not in
#: this edition's list (the centre has it from the settlement).
SETTLEMENT_LISTS = """
SELECT s.seq AS seq, s.setl_id AS setl_id, v.mdtrt_id AS mdtrt_id, p.psn_no AS psn_no,
       p.insuplc_admdvs AS insuplc_admdvs, c.medcasno AS medcasno, c.ntly AS ntly, c.prfs AS prfs,
       c.curr_addr AS curr_addr, c.emp_name AS emp_name, c.coner_name AS coner_name,
       c.patn_rlts AS patn_rlts, c.coner_addr AS coner_addr, c.coner_tel AS coner_tel,
       c.adm_way AS adm_way, c.trt_type AS trt_type, v.admitted_at AS adm_time,
       v.dept_code AS adm_dept_code, d.dept_name AS adm_dept_name, v.discharged_at AS dscg_time,
       v.dept_code AS dscg_dept_code, d.dept_name AS dscg_dept_name, c.dscg_caty AS dscg_caty,
       v.main_diag_code AS wm_dise_code, v.dscg_way AS dscg_way, b.bill_code AS bill_code,
       b.bill_no AS bill_no, b.biz_sn AS biz_sn, c.days_rinp_flag_31 AS days_rinp_flag_31,
       v.doctor_code AS chfpdr_code, substr(v.admitted_at, 1, 10) AS setl_begn_date,
       substr(s.setl_time, 1, 10) AS setl_end_date, '医保办' AS medins_fill_dept,
       '系统' AS medins_fill_psn, '1' AS hi_paymtd, c.adm_caty AS adm_caty,
       (SELECT json_group_array(json_object(
            'diag_type', '1', 'diag_code', g.diag_code, 'diag_name', g.diag_name,
            'adm_cond_type', '1', 'maindiag_flag', g.maindiag_flag))
        FROM diagnoses g WHERE g.visit_id = v.visit_id) AS diseinfo,
       (SELECT json_group_array(json_object(
            'oprn_oprt_type', o.oprn_oprt_type, 'oprn_oprt_name', o.oprn_oprt_name,
            'oprn_oprt_code', o.oprn_oprt_code, 'anst_way', o.anst_way, 'oper_dr_code', o.oper_dr_code,
            'anst_dr_code', o.anst_dr_code, 'oprn_oprt_begntime', o.begntime,
            'oprn_oprt_endtime', o.endtime, 'anst_begntime', o.anst_begntime,
            'anst_endtime', o.anst_endtime))
        FROM operations o WHERE o.visit_id = v.visit_id) AS oprninfo,
       json_array(json_object(
           'fund_pay_type', CASE s.insutype WHEN '390' THEN '390100' ELSE '310100' END,
           'fund_payamt', s.fund_pay_sumamt)) AS payinfo,
       '[]' AS opspdiseinfo, '[]' AS icuinfo, '[]' AS bldinfo
FROM settlements s
LEFT JOIN inpatient_visits v ON v.visit_id = s.visit_id
LEFT JOIN patients p ON p.patient_id = v.patient_id
LEFT JOIN case_records c ON c.visit_id = v.visit_id
LEFT JOIN settlement_bills b ON b.setl_id = s.setl_id
LEFT JOIN departments d ON d.dept_code = v.dept_code
WHERE s.seq > :watermark
ORDER BY s.seq
LIMIT :limit
"""

#: infno -> (query, watermark column)
SAMPLE_QUERIES: dict[str, tuple[str, str]] = {
    "2301": (FEE_LINES, "line_id"),
    "2201": (OUTPATIENT_REGISTRATIONS, "visit_id"),
    "2203": (OUTPATIENT_VISITS, "visit_id"),
    "2204": (OUTPATIENT_FEES, "first_line"),
    "2205": (_cancels("2205"), "cancel_id"),
    "2302": (_cancels("2302"), "cancel_id"),
    "4101": (SETTLEMENT_LISTS, "seq"),
    "2401": (ADMISSIONS, "visit_id"),
    "2402": (DISCHARGES, "discharge_seq"),
    **{infno: (_stock(infno), "move_id") for infno in ("3501", "3502", "3503", "3504", "3505", "3506", "3507")},
}


def sample_sources_toml(skip: tuple[str, ...] = ()) -> str:
    """The same as TOML ``[sources."<infno>"]`` tables, for a configuration file."""
    blocks = []
    for infno, (query, column) in SAMPLE_QUERIES.items():
        if infno not in skip:
            blocks.append(f"[sources.\"{infno}\"]\nwatermark_column = \"{column}\"\nquery = '''{query}'''\n")
    return "\n".join(blocks)


def settlement_query_toml() -> str:
    """``settlement_query = ...`` for the [his] table of a configuration file."""
    return f"settlement_query = '''{SETTLEMENTS}'''"
