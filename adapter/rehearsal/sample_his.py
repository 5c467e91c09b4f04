"""A sample HIS database: schema and a generator of realistic inpatient data of any size.

The schema is shaped like the fee tables of common HIS products (patients, inpatient visits with
the centre's mdtrt_id, fee lines with the hospital's own item codes, refund lines with a negative
quantity pointing at the original). It is what ``demo`` and the tests extract from.
"""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    create_engine,
    insert,
    select,
)

his_metadata = MetaData()

departments = Table(
    "departments",
    his_metadata,
    Column("dept_code", String(20), primary_key=True),
    Column("dept_name", String(100), nullable=False),
)
doctors = Table(
    "doctors",
    his_metadata,
    Column("doctor_code", String(20), primary_key=True),
    Column("doctor_name", String(50), nullable=False),
    Column("dept_code", String(20), nullable=False),
)
#: The HIS users who enter charges and settle: each ward's charge nurses (HS + the ward's index
#: + 0/1) and the cashiers of the counters (SF...). A fee line, a charge batch and a settlement
#: name the one who entered it (经办人): who answers for the line besides its doctor.
operators = Table(
    "operators",
    his_metadata,
    Column("operator_code", String(20), primary_key=True),
    Column("operator_name", String(50), nullable=False),
)
patients = Table(
    "patients",
    his_metadata,
    Column("patient_id", Integer, primary_key=True),
    Column("patient_name", String(50), nullable=False),
    Column("psn_no", String(30), nullable=False),
    Column("insuplc_admdvs", String(6), nullable=False),
    #: the person's certificate (人员证件类型 psn_cert_type: 01 居民身份证) and its number, and the
    #: person type (人员类别 psn_type: 11 在职, 15 居民) as the 1101 person query returned them
    Column("cert_type", String(3), nullable=False, default="01"),
    Column("certno", String(20), nullable=False, default=""),
    Column("psn_type", String(3), nullable=False, default="11"),
)
inpatient_visits = Table(
    "inpatient_visits",
    his_metadata,
    Column("visit_id", Integer, primary_key=True),
    Column("patient_id", Integer, nullable=False),
    Column("mdtrt_id", String(30), nullable=False, unique=True),
    Column("med_type", String(6), nullable=False),
    Column("insutype", String(6), nullable=False),
    Column("admitted_at", String(19), nullable=False),
    Column("dept_code", String(20), nullable=False),
    Column("doctor_code", String(20), nullable=False),
    Column("certno", String(18), nullable=False, default=""),
    Column("main_diag_code", String(20), nullable=False, default=""),
    Column("main_diag_name", String(100), nullable=False, default=""),
    #: the admission diagnosis as the admitting doctor wrote it, the bed, and where the stay is
    #: treated (就医地医保区划)
    Column("adm_diag_dscr", String(200), nullable=False, default=""),
    Column("bed_no", String(30), nullable=False, default=""),
    Column("mdtrtarea_admvs", String(6), nullable=False, default=""),
    #: set at discharge; discharge_seq orders discharges for incremental extraction
    Column("discharged_at", String(19)),
    Column("discharge_seq", Integer),
    Column("dscg_way", String(6)),
    #: injuries: traffic, work_injury, fight, self_harm (the fund does not pay for these)
    Column("injury_cause", String(20)),
)
diagnoses = Table(
    "diagnoses",
    his_metadata,
    Column("diag_id", Integer, primary_key=True, autoincrement=True),
    Column("visit_id", Integer, nullable=False),
    Column("diag_type", String(3), nullable=False),
    Column("maindiag_flag", String(3), nullable=False),
    Column("srt_no", Integer, nullable=False),
    Column("diag_code", String(20), nullable=False),
    Column("diag_name", String(100), nullable=False),
    Column("doctor_code", String(20), nullable=False),
    Column("diag_time", String(19), nullable=False),
)
#: 进销存: the pharmacy's batches (one item each) with the manufacturer's lot and dates...
stock_batches = Table(
    "stock_batches",
    his_metadata,
    Column("batch_no", String(30), primary_key=True),
    Column("item_code", String(20), nullable=False),
    Column("manu_lotnum", String(30), nullable=False),
    Column("manu_date", String(10), nullable=False),
    Column("expy_end", String(10), nullable=False),
)
#: ... every stock movement, one row each, typed by its national infno ...
stock_moves = Table(
    "stock_moves",
    his_metadata,
    Column("move_id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(4), nullable=False),
    Column("item_code", String(20), nullable=False),
    Column("batch_no", String(30), nullable=False),
    Column("qty", String(20), nullable=False),
    Column("price", String(20), nullable=False),
    Column("moved_at", String(19), nullable=False),
    Column("doc_no", String(40), nullable=False),
    Column("operator", String(50), nullable=False),
    #: a stock change's kind (库存变更类型 inv_chg_type: 104 盘损...)
    Column("chg_type", String(6)),
    #: the purchase invoice (采购发票号) of a purchase and of its return
    Column("invoice_no", String(50)),
    #: the document a return gives back: the purchase (3504) or the sale (3506)
    Column("ref_doc_no", String(40)),
    #: a deletion's data type (进销存数据类型 inv_data_type: 1 盘存, 2 库存变更, 3 采购, 4 销售)
    Column("data_type", String(2)),
)
#: ... and the drug trace codes (药品追溯码) of the boxes a movement moved.
stock_trace_codes = Table(
    "stock_trace_codes",
    his_metadata,
    Column("code_id", Integer, primary_key=True, autoincrement=True),
    Column("move_id", Integer, nullable=False),
    Column("trace_code", String(30), nullable=False),
)
#: 门诊: outpatient visits and their charges, paid in batches (chrg_bchno) at the counter.
outpatient_visits = Table(
    "outpatient_visits",
    his_metadata,
    Column("visit_id", Integer, primary_key=True),
    Column("patient_id", Integer, nullable=False),
    Column("otp_no", String(30), nullable=False, unique=True),
    Column("med_type", String(6), nullable=False),
    Column("insutype", String(6), nullable=False),
    Column("begntime", String(19), nullable=False),
    Column("dept_code", String(20), nullable=False),
    Column("doctor_code", String(20), nullable=False),
    Column("certno", String(18), nullable=False),
    Column("diag_code", String(20), nullable=False),
    Column("diag_name", String(100), nullable=False),
)
outpatient_fees = Table(
    "outpatient_fees",
    his_metadata,
    Column("line_id", Integer, primary_key=True, autoincrement=True),
    Column("visit_id", Integer, nullable=False),
    Column("chrg_bchno", String(30), nullable=False),
    Column("feedetl_sn", String(30), nullable=False),
    Column("rxno", String(30)),
    Column("item_code", String(20), nullable=False),
    Column("qty", String(20), nullable=False),
    Column("unit_price", String(20), nullable=False),
    Column("amount", String(20), nullable=False),
    Column("charged_at", String(19), nullable=False),
    #: days of supply of a drug line
    Column("rx_days", String(10)),
    #: the cashier who charged the batch (operators)
    Column("operator_code", String(20)),
)
#: Charges withdrawn after upload: 2302 names inpatient lines, 2205 an outpatient batch.
fee_cancels = Table(
    "fee_cancels",
    his_metadata,
    Column("cancel_id", Integer, primary_key=True, autoincrement=True),
    Column("infno", String(4), nullable=False),
    Column("visit_no", String(30), nullable=False),
    Column("psn_no", String(30), nullable=False),
    Column("feedetl_sn", String(30)),
    Column("chrg_bchno", String(30)),
    Column("cancelled_at", String(19), nullable=False),
)
#: Settlements done at the counter (the centre's setl_id), the source of 4101 and of
#: reconciliation. setl_optins is the clearing agency the centre returned at settlement, kept
#: for settlements of another pooling area (异地) only; msgid is the settlement request's.
settlements = Table(
    "settlements",
    his_metadata,
    Column("setl_id", String(30), primary_key=True),
    #: the order settlements were made in (what incremental extraction follows)
    Column("seq", Integer, nullable=False, unique=True),
    Column("visit_id", Integer, nullable=False),
    Column("psn_no", String(30), nullable=False),
    Column("insutype", String(6), nullable=False),
    Column("clr_type", String(6), nullable=False),
    Column("setl_time", String(19), nullable=False),
    Column("medfee_sumamt", Numeric(16, 2), nullable=False),
    Column("fund_pay_sumamt", Numeric(16, 2), nullable=False),
    Column("acct_pay", Numeric(16, 2), nullable=False),
    Column("psn_cash_pay", Numeric(16, 2), nullable=False),
    Column("refd_setl_flag", String(3), nullable=False, default="0"),
    #: 全自费 costs outside the insurance scope, and the drug costs with their self-paid part
    Column("fulamt_ownpay_amt", Numeric(16, 2), nullable=False, default=0),
    Column("drug_sumamt", Numeric(16, 2), nullable=False, default=0),
    Column("drug_selfpay_amt", Numeric(16, 2), nullable=False, default=0),
    #: 双通道: drugs the patient bought at a designated pharmacy on the hospital's external
    #: prescription, counted in the stay's fund payment, which the agency deducts from the
    #: hospital's transfer (and pays the pharmacy); as the agency's settlement data names them
    Column("dual_channel_amt", Numeric(16, 2)),
    Column("setl_optins", String(6)),
    Column("msgid", String(30)),
    #: the cashier who settled (operators)
    Column("operator_code", String(20)),
)
#: the clearing agency of the sample's settlements of another pooling area (长沙市本级), and
#: which settlements those are: the 2nd, 7th, 12th...
OTHER_AREA_OPTINS = "430100"
_OTHER_AREA_EVERY = 5
#: the sample's settlements with a 双通道 deduction: the 4th, 8th...
_DUAL_CHANNEL_EVERY = 4
#: the institution code in the msgid of the sample's settlement requests (as in its settlement lists)
_SETTLING_FIXMEDINS = "H43010000001"
charge_items = Table(
    "charge_items",
    his_metadata,
    Column("item_code", String(20), primary_key=True),
    Column("item_name", String(100), nullable=False),
    Column("category", String(20), nullable=False),
    Column("unit_price", Numeric(16, 6), nullable=False),
)
# qty and amount are declared loosely on purpose: real HIS tables hold whatever the front end
# let through, and the extractor must cope with text in a number column.
fee_lines = Table(
    "fee_lines",
    his_metadata,
    Column("line_id", Integer, primary_key=True, autoincrement=True),
    Column("visit_id", Integer, nullable=False),
    Column("feedetl_sn", String(30), nullable=False),
    Column("init_feedetl_sn", String(30)),
    Column("order_no", String(30)),
    Column("item_code", String(20), nullable=False),
    Column("qty", String(20)),
    Column("unit_price", String(20)),
    Column("amount", String(20)),
    Column("charged_at", String(19), nullable=False),
    Column("dept_code", String(20), nullable=False),
    Column("doctor_code", String(20), nullable=False),
    #: drug lines: prescription number, days of supply, discharge medication (1)
    Column("rxno", String(30)),
    Column("rx_days", String(10)),
    Column("dscg_drug", String(3)),
    #: the nurse who entered the charge (operators)
    Column("operator_code", String(20)),
)
#: a stay's lines, as a HIS keys them (settling a stay reads them; without it the generator
#: read every line for every stay, quadratic in the size asked for)
Index("ix_fee_lines_visit", fee_lines.c.visit_id)
#: 结算清单: what the settlement list (4101) is filled from besides the settlement and the stay.
#: The stay's 病案首页 (medical-record front page): the case number, the patient's nationality,
#: occupation (职业 prfs), address and contact person as the ward recorded them, how the patient
#: came in and was treated, the 科别 (national department codes, dictionary dept) of admission
#: and discharge, and the 31-day readmission plan.
case_records = Table(
    "case_records",
    his_metadata,
    Column("visit_id", Integer, primary_key=True),
    Column("medcasno", String(30), nullable=False),
    Column("ntly", String(6), nullable=False),
    Column("prfs", String(6), nullable=False),
    Column("curr_addr", String(200), nullable=False),
    Column("emp_name", String(200)),
    Column("coner_name", String(50), nullable=False),
    Column("patn_rlts", String(6), nullable=False),
    Column("coner_addr", String(200), nullable=False),
    Column("coner_tel", String(50), nullable=False),
    Column("adm_way", String(3), nullable=False),
    Column("trt_type", String(3), nullable=False),
    Column("adm_caty", String(10), nullable=False),
    Column("dscg_caty", String(6), nullable=False),
    Column("days_rinp_flag_31", String(3), nullable=False),
)
#: The operations of a stay (手术操作, ICD-9-CM-3 national codes), the surgeon and the
#: anaesthetist by their HIS doctor codes.
operations = Table(
    "operations",
    his_metadata,
    Column("oprn_id", Integer, primary_key=True, autoincrement=True),
    Column("visit_id", Integer, nullable=False),
    #: 手术操作类别: 1 主要手术及操作, 2 其他
    Column("oprn_oprt_type", String(3), nullable=False),
    Column("oprn_oprt_code", String(30), nullable=False),
    Column("oprn_oprt_name", String(500), nullable=False),
    Column("begntime", String(19), nullable=False),
    Column("endtime", String(19), nullable=False),
    Column("oper_dr_code", String(20), nullable=False),
    Column("anst_way", String(6)),
    Column("anst_dr_code", String(20)),
    Column("anst_begntime", String(19)),
    Column("anst_endtime", String(19)),
)
#: The medical-fee electronic bill (医疗收费电子票据) issued with each settlement: its 票据代码 and
#: 票据号码, and the settlement's business serial (业务流水号) at the counter.
settlement_bills = Table(
    "settlement_bills",
    his_metadata,
    Column("setl_id", String(30), primary_key=True),
    Column("bill_code", String(50), nullable=False),
    Column("bill_no", String(30), nullable=False),
    Column("biz_sn", String(50), nullable=False),
)

_DEPARTMENTS = [
    ("NK01", "心血管内科", "A03.04"),
    ("NK02", "呼吸内科", "A03.01"),
    ("WK01", "普通外科", "A04.01"),
    ("GK01", "骨科", "A04.03"),
    ("EK01", "儿科", "A07"),
    ("FK01", "妇产科", "A05"),
]
_ITEMS = [
    # (hospital code, name, category, price, national code)
    ("YP0001", "阿莫西林胶囊 0.25g", "drug", "0.86", "XJ01CAA040E001010101919"),
    ("YP0002", "头孢呋辛钠注射液 0.75g", "drug", "12.50", "XJ01DCT018B002010103527"),
    ("YP0003", "地喹氯铵含片 0.25mg", "drug", "1.20", "XA01ABD075A002010100483"),
    ("YP0004", "替硝唑片 0.5g", "drug", "0.95", "XJ01XDT045A001010104642"),
    ("YP0005", "氯化钠注射液 250ml", "drug", "3.10", "XB05BBL046B002020105110"),
    ("YP0006", "硝苯地平控释片 30mg", "drug", "4.35", "XC08CAX034A010010101466"),
    ("YP0007", "二甲双胍片 0.5g", "drug", "0.30", "XA10BAE002A001010102911"),
    ("YP0008", "奥美拉唑肠溶胶囊 20mg", "drug", "0.88", "XA02BCA211E001010104023"),
    ("ZL0001", "床位费(三人间)", "bed", "45.00", "001105000010000"),
    ("ZL0002", "一级护理", "service", "28.00", "001104000010000"),
    ("ZL0003", "静脉输液", "service", "12.00", "002000000030000"),
    ("ZL0004", "血常规", "service", "20.00", "250101015000000"),
    ("ZL0005", "心电图检查", "service", "25.00", "310701001000000"),
    ("ZL0006", "胸部X线摄影", "service", "60.00", "210102015000000"),
    ("ZL0007", "住院诊查费", "service", "18.00", "001102000000100"),
    ("HC0001", "一次性使用无菌注射器 5ml", "consumable", "0.65", "C0201010010000100001"),
    ("HC0002", "一次性输液器", "consumable", "2.80", "C0201020020000200002"),
    ("HC0003", "医用纱布块", "consumable", "1.50", "C1401010030000300003"),
    # Deliberately without a mapping: new items the mapping table has not caught up with.
    ("YP0999", "新进药品(未对照)", "drug", "9.90", ""),
    ("ZL0999", "新增检查项目(未对照)", "service", "80.00", ""),
]
_DIAGNOSES = [
    ("J18.900", "肺炎"), ("I10.x00", "高血压"), ("E11.900", "2型糖尿病"),
    ("K35.800", "急性阑尾炎"), ("I20.000", "不稳定型心绞痛"), ("S72.000", "股骨颈骨折"),
]
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
#: the names of the sample's operators: two charge nurses per ward, then the cashiers (fixed,
#: not drawn: the generator's random sequence, and so every count of the sample, stays as it was)
_NURSES = ("周雪", "吴婷", "郑琳", "王芳", "冯洁", "陈静", "褚颖", "卫红", "蒋丽", "沈燕", "韩梅", "杨柳")
_CASHIERS = (("SF001", "朱敏"), ("SF002", "秦丹"))
#: 人员类别 (psn_type) by 险种类型 (insutype): 职工 in work, 城乡居民 adult residents
_PSN_TYPE = {"310": "11", "390": "15"}
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚"


@dataclass
class SampleHis:
    """What the generator made: counts a test or the demo can check against."""

    url: str
    visits: int = 0
    lines: int = 0
    refund_lines: int = 0
    unmapped_lines: int = 0
    invalid_lines: int = 0
    malformed_lines: int = 0
    discharges: int = 0
    #: infno -> stock movements of that kind
    stock_moves: dict[str, int] = field(default_factory=dict)
    outpatient_visits: int = 0
    #: outpatient charge batches (2204 messages) and their lines
    outpatient_batches: int = 0
    outpatient_lines: int = 0
    #: infno (2302, 2205) -> cancellations
    cancels: dict[str, int] = field(default_factory=dict)
    settlements: int = 0
    #: of those, settlements of another pooling area (setl_optins OTHER_AREA_OPTINS)
    other_area_settlements: int = 0
    #: operations of the stays (the settlement lists' oprninfo)
    operations: int = 0
    mapping_rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: the stays planted for the policy rules (``with_rule_cases``), else None
    rule_cases: PolicyCases | None = None

    @property
    def mappable_valid_lines(self) -> int:
        return self.lines - self.unmapped_lines - self.invalid_lines - self.malformed_lines


def create_schema(url: str) -> None:
    """Create the sample HIS tables (idempotent)."""
    engine = create_engine(url, future=True)
    his_metadata.create_all(engine)
    engine.dispose()


class _Pending:
    """Rows waiting to be inserted, per table, written with one executemany per table (in the
    order the tables were first given, so a row's parent is always written before it)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.rows: dict[Table, list[dict[str, Any]]] = {}
        self.waiting = 0

    def add(self, table: Table, rows: list[dict[str, Any]]) -> None:
        self.rows.setdefault(table, []).extend(rows)
        self.waiting += len(rows)

    def flush_at(self, rows: int) -> None:
        """Write what waits once it is ``rows`` rows or more."""
        if self.waiting >= rows:
            self.flush()

    def flush(self) -> None:
        for table, rows in self.rows.items():
            if rows:
                self.conn.execute(insert(table), rows)
        self.rows = {}
        self.waiting = 0


def generate_sample_his(
    url: str,
    visits: int = 20,
    lines_per_visit: int = 12,
    seed: int = 2024,
    unmapped_share: float = 0.03,
    invalid_share: float = 0.02,
    malformed_share: float = 0.01,
    admdvs: str = "431199",
    start: datetime | None = None,
    discharged_share: float = 0.6,
    stock_items: int = 4,
    outpatient_visits: int | None = None,
    with_rule_cases: bool = False,
) -> SampleHis:
    """Fill a HIS database with visits and fee lines; returns what it made.

    Shares are probabilities per line: lines with an unmapped item code, lines whose amount
    is not quantity x price (a data-entry error the validator must catch), and lines that are
    unreadable (a quantity that is not a number). ``with_rule_cases`` adds, after them, stays
    that break every built-in policy rule (:func:`add_policy_cases`, what ``demo`` shows in its
    self-inspection report). They are the same whatever the seed, come on top of everything
    counted above, and are left out by default (the tests count the sample's rows and findings).
    """
    rng = random.Random(seed)
    create_schema(url)
    engine = create_engine(url, future=True)
    summary = SampleHis(url=url)
    start = start or datetime(2026, 11, 1, 8, 0, 0)
    mapped_items = [item for item in _ITEMS if item[4]]
    discharged_seq = 0
    unmapped_items = [item for item in _ITEMS if not item[4]]
    with engine.begin() as conn:
        conn.execute(
            insert(departments), [{"dept_code": c, "dept_name": n} for c, n, _ in _DEPARTMENTS]
        )
        doctor_rows = []
        for index, (dept_code, _name, _nat) in enumerate(_DEPARTMENTS):
            for k in range(2):
                doctor_rows.append(
                    {
                        "doctor_code": f"YS{index:02d}{k}",
                        "doctor_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                        "dept_code": dept_code,
                    }
                )
        conn.execute(insert(doctors), doctor_rows)
        conn.execute(insert(operators), [{"operator_code": code, "operator_name": name} for code, name in _operators()])
        conn.execute(
            insert(charge_items),
            [
                {"item_code": c, "item_name": n, "category": cat, "unit_price": Decimal(p)}
                for c, n, cat, p, _ in _ITEMS
            ],
        )
        # Rows are written a few hundred stays at a time (executemany), not a statement per
        # row: the draws and so the data are the same, 1M lines take seconds, not minutes.
        pending = _Pending(conn)
        for visit_no in range(1, visits + 1):
            patient_id = visit_no
            patient = {
                "patient_id": patient_id,
                "patient_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                "psn_no": f"{admdvs[:2]}{rng.randrange(10**17, 10**18)}",
                "insuplc_admdvs": admdvs,
            }
            doctor = rng.choice(doctor_rows)
            diag = rng.choice(_DIAGNOSES)
            admitted = start + timedelta(hours=rng.randrange(0, 24 * 20))
            stay = {
                "visit_id": visit_no,
                "patient_id": patient_id,
                "mdtrt_id": f"{admdvs}{visit_no:09d}",
                "med_type": "21",
                "insutype": rng.choice(["310", "390"]),
                "admitted_at": admitted.strftime("%Y-%m-%d %H:%M:%S"),
                "dept_code": doctor["dept_code"],
                "doctor_code": doctor["doctor_code"],
                "certno": f"{admdvs}19{rng.randrange(50, 99)}0101{rng.randrange(1000, 9999)}",
                "main_diag_code": diag[0],
                "main_diag_name": diag[1],
                "adm_diag_dscr": f"{diag[1]}，收入院治疗",
                "bed_no": f"{doctor['dept_code']}-{visit_no % 40 + 1:02d}",
                "mdtrtarea_admvs": admdvs,
                "discharged_at": None, "discharge_seq": None, "dscg_way": None,
            }
            # the person's certificate is the one the stay was registered with (02 居民身份证)
            patient.update(cert_type="01", certno=stay["certno"], psn_type=_PSN_TYPE[str(stay["insutype"])])
            pending.add(patients, [patient])
            pending.add(inpatient_visits, [stay])
            pending.add(
                diagnoses,
                [
                    {
                        "visit_id": visit_no, "diag_type": "1", "maindiag_flag": flag, "srt_no": srt,
                        "diag_code": code, "diag_name": name, "doctor_code": doctor["doctor_code"],
                        "diag_time": admitted.strftime("%Y-%m-%d %H:%M:%S"),
                    }
                    for srt, (flag, (code, name)) in enumerate(
                        [("1", diag), ("0", rng.choice(_DIAGNOSES))], start=1
                    )
                ],
            )
            rows: list[dict[str, Any]] = []
            for seq in range(1, lines_per_visit + 1):
                roll = rng.random()
                kind = "ok"
                if roll < unmapped_share:
                    item = rng.choice(unmapped_items)
                    kind = "unmapped"
                else:
                    item = rng.choice(mapped_items)
                    if roll < unmapped_share + invalid_share:
                        kind = "invalid"
                    elif roll < unmapped_share + invalid_share + malformed_share:
                        kind = "malformed"
                qty = Decimal(rng.choice([1, 1, 1, 2, 3, 5, 10]))
                price = Decimal(item[3])
                amount = (qty * price).quantize(Decimal("0.01"))
                if kind == "invalid":
                    amount += Decimal("1.00")
                charged = admitted + timedelta(minutes=seq * 37)
                rows.append(
                    {
                        "visit_id": visit_no,
                        "feedetl_sn": f"{visit_no:06d}{seq:04d}",
                        "init_feedetl_sn": None,
                        "order_no": f"YZ{visit_no:06d}{seq:03d}",
                        "item_code": item[0],
                        "qty": "abc" if kind == "malformed" else str(qty),
                        "unit_price": str(price),
                        "amount": str(amount),
                        "charged_at": charged.strftime("%Y-%m-%d %H:%M:%S"),
                        "dept_code": doctor["dept_code"],
                        "doctor_code": doctor["doctor_code"],
                        "operator_code": _nurse(doctor["doctor_code"], seq),
                    }
                )
                summary.lines += 1
                if kind == "unmapped":
                    summary.unmapped_lines += 1
                elif kind == "invalid":
                    summary.invalid_lines += 1
                elif kind == "malformed":
                    summary.malformed_lines += 1
            # One refund per visit: the last good line is partly returned.
            original = next((r for r in reversed(rows) if _is_clean(r)), None)
            if original is not None:
                qty = Decimal(original["qty"])
                price = Decimal(original["unit_price"])
                rows.append(
                    {
                        **original,
                        "feedetl_sn": f"{visit_no:06d}{lines_per_visit + 1:04d}",
                        "init_feedetl_sn": original["feedetl_sn"],
                        "qty": str(-qty),
                        "amount": str((-qty * price).quantize(Decimal("0.01"))),
                        "charged_at": (
                            datetime.fromisoformat(original["charged_at"]) + timedelta(hours=2)
                        ).strftime("%Y-%m-%d %H:%M:%S"),
                    }
                )
                summary.lines += 1
                summary.refund_lines += 1
            pending.add(fee_lines, rows)
            if rng.random() < discharged_share:
                discharged_seq += 1
                last = max(datetime.fromisoformat(r["charged_at"]) for r in rows)
                stay.update(discharged_at=(last + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S"),
                            discharge_seq=discharged_seq, dscg_way="1")
                summary.discharges += 1
            pending.flush_at(10_000)  # about 600 stays
        pending.flush()
        summary.stock_moves = _stock_moves(conn, rng, start, stock_items)
        summary.visits = visits
        # Drawn from their own generator so the inpatient data above stays as it always was.
        _settle_and_cancel(conn, random.Random(seed + 1), summary)
        _outpatient(conn, random.Random(seed + 2), start, admdvs, outpatient_visits, summary, doctor_rows)
        _settlement_lists(conn, random.Random(seed + 3), summary)
    engine.dispose()
    summary.mapping_rows = sample_mapping_rows()
    if with_rule_cases:
        summary.rule_cases = add_policy_cases(url, admdvs, every_rule=True)
        summary.mapping_rows += summary.rule_cases.mapping_rows
    return summary


def _stock_moves(conn: Any, rng: random.Random, start: datetime, items: int) -> dict[str, int]:
    """A month of pharmacy movements for the first ``items`` mapped drugs: purchase, sales, a
    sale return, a purchase return, a stock correction and the month-end stocktake; the first
    drug's correction turns out to be wrong and is deleted (3507)."""
    drugs = [item for item in _ITEMS if item[2] == "drug" and item[4]][:items]
    batches: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for index, (code, _name, _cat, price, _nat) in enumerate(drugs):
        batch = _batch(start, index, code)
        batches.append(batch)
        moves = _drug_moves(rng, start, index, code, price, batch["batch_no"])
        for move in moves:
            codes = move.pop("trace_codes")
            move_id = conn.execute(insert(stock_moves), move).inserted_primary_key[0]
            if codes:
                conn.execute(insert(stock_trace_codes), [{"move_id": move_id, "trace_code": c} for c in codes])
            counts[move["infno"]] = counts.get(move["infno"], 0) + 1
    if batches:
        conn.execute(insert(stock_batches), batches)
    return counts


def _batch(start: datetime, index: int, code: str) -> dict[str, Any]:
    """The batch a drug is bought in: made some months before, good for two years."""
    made = start - timedelta(days=90 + 7 * index)
    return {"batch_no": f"PC{start:%Y%m}{index:03d}", "item_code": code, "manu_lotnum": f"{made:%y%m%d}{index + 1:02d}",
            "manu_date": f"{made:%Y-%m-%d}", "expy_end": f"{made.replace(year=made.year + 2):%Y-%m-%d}"}


def _drug_moves(rng: random.Random, start: datetime, index: int, code: str, price: str,
                batch: str) -> list[dict[str, Any]]:
    """One drug's movements of the month, in order, each some hours after the one before."""
    rows: list[dict[str, Any]] = []
    moment = start
    boxes = 0  # trace codes handed out (one per box sold)

    def move(infno: str, qty: int, doc: str, hours: int, **extra: Any) -> dict[str, Any]:
        nonlocal moment
        moment += timedelta(hours=hours)
        row = {
            "infno": infno, "item_code": code, "batch_no": batch, "qty": str(qty), "price": price,
            "moved_at": moment.strftime("%Y-%m-%d %H:%M:%S"), "doc_no": doc,
            "operator": rng.choice(_SURNAMES) + rng.choice(_GIVEN), "chg_type": None, "invoice_no": None,
            "ref_doc_no": None, "data_type": None, "trace_codes": [], **extra,
        }
        rows.append(row)
        return row

    def trace_codes(count: int) -> list[str]:
        nonlocal boxes
        boxes += count
        # 20 digits: the product's 7, the box's serial
        return [f"8{index + 1:06d}{n:013d}" for n in range(boxes - count + 1, boxes + 1)]

    invoice = f"{43000000 + index:08d}"
    purchase = move("3503", 500, f"CG{index:04d}", 1, invoice_no=invoice)
    sales = []
    for sale in range(rng.randrange(2, 5)):
        sold = rng.randrange(1, 10)
        sales.append(move("3505", sold, f"XS{index:04d}{sale:02d}", 5, trace_codes=trace_codes(sold)))
    # one box of the first sale comes back
    move("3506", 1, f"XT{index:04d}", 3, ref_doc_no=sales[0]["doc_no"], trace_codes=sales[0]["trace_codes"][:1])
    move("3504", 20, f"CT{index:04d}", 2, invoice_no=invoice, ref_doc_no=purchase["doc_no"])
    correction = move("3502", -2, f"BG{index:04d}", 1, chg_type="104")  # 盘损: two boxes missing
    move("3501", 450, f"PD{index:04d}", 24)
    if index == 0:
        # the correction was a miscount: its stock-change data (type 2) of the batch is deleted
        rows.append({**correction, "infno": "3507", "qty": "0", "doc_no": f"SC{index:04d}", "chg_type": None,
                     "data_type": "2", "moved_at": f"{moment + timedelta(hours=1):%Y-%m-%d %H:%M:%S}"})
    return rows


def _settle_and_cancel(conn: Any, rng: random.Random, summary: SampleHis) -> None:
    """Settle every discharged stay (from its clean lines) and withdraw one uploaded line of
    about one stay in four (2302)."""
    stays = conn.execute(
        select(
            inpatient_visits.c.visit_id, inpatient_visits.c.mdtrt_id, inpatient_visits.c.insutype,
            inpatient_visits.c.discharged_at, patients.c.psn_no,
        ).join(patients, patients.c.patient_id == inpatient_visits.c.patient_id).order_by(inpatient_visits.c.visit_id)
    ).all()
    cancels: list[dict[str, Any]] = []
    settled: list[dict[str, Any]] = []
    # Every stay's lines in one ordered read (a query per stay cost more than the stays).
    by_stay = itertools.groupby(
        (dict(r._mapping) for r in conn.execute(select(fee_lines).order_by(fee_lines.c.visit_id,
                                                                          fee_lines.c.line_id))),
        key=lambda line: line["visit_id"])
    next_group = next(by_stay, None)
    for stay in stays:
        lines: list[dict[str, Any]] = []
        while next_group is not None and next_group[0] < stay.visit_id:
            next_group = next(by_stay, None)
        if next_group is not None and next_group[0] == stay.visit_id:
            lines = list(next_group[1])
            next_group = next(by_stay, None)
        clean = [r for r in lines if _is_clean(r)]
        refunded = {r["init_feedetl_sn"] for r in lines if r["init_feedetl_sn"]}
        withdrawable = [r for r in clean if not r["init_feedetl_sn"] and r["feedetl_sn"] not in refunded]
        withdrawn = None
        if withdrawable and rng.random() < 0.25:
            withdrawn = rng.choice(withdrawable)
            cancels.append({
                "infno": "2302", "visit_no": stay.mdtrt_id, "psn_no": stay.psn_no,
                "feedetl_sn": withdrawn["feedetl_sn"], "chrg_bchno": None,
                "cancelled_at": _later(max(r["charged_at"] for r in lines), hours=1),
            })
        if stay.discharged_at is None:
            continue
        total = sum((Decimal(r["amount"]) for r in clean if r is not withdrawn), Decimal(0))
        drugs = sum((Decimal(r["amount"]) for r in clean if r is not withdrawn and r["item_code"].startswith("YP")),
                    Decimal(0))
        fund = (total * Decimal("0.70")).quantize(Decimal("0.01"))
        account = (total * Decimal("0.10")).quantize(Decimal("0.01"))
        seq = summary.settlements + 1
        # The centre's setl_id names the agency that settled: S + its admdvs + a serial.
        other_area = seq % _OTHER_AREA_EVERY == 2
        agency = OTHER_AREA_OPTINS if other_area else stay.mdtrt_id[:6]
        settled_at = datetime.fromisoformat(stay.discharged_at)
        settled.append({
            "setl_id": f"S{agency}{stay.mdtrt_id[6:]}", "seq": seq, "visit_id": stay.visit_id,
            "psn_no": stay.psn_no, "insutype": stay.insutype, "clr_type": "21", "setl_time": stay.discharged_at,
            "medfee_sumamt": total, "fund_pay_sumamt": fund, "acct_pay": account,
            "psn_cash_pay": total - fund - account, "refd_setl_flag": "0",
            "fulamt_ownpay_amt": (total * Decimal("0.03")).quantize(Decimal("0.01")),
            "drug_sumamt": drugs, "drug_selfpay_amt": (drugs * Decimal("0.08")).quantize(Decimal("0.01")),
            "dual_channel_amt": _dual_channel(seq, drugs, fund),
            "setl_optins": OTHER_AREA_OPTINS if other_area else None,
            "msgid": f"{_SETTLING_FIXMEDINS}{settled_at:%Y%m%d%H%M%S}{seq % 10000:04d}",
            "operator_code": _CASHIERS[seq % len(_CASHIERS)][0],
        })
        summary.settlements += 1
        summary.other_area_settlements += other_area
    if settled:
        conn.execute(insert(settlements), settled)
    if cancels:
        conn.execute(insert(fee_cancels), cancels)
    summary.cancels["2302"] = len(cancels)


def _outpatient(
    conn: Any, rng: random.Random, start: datetime, admdvs: str, count: int | None, summary: SampleHis,
    doctor_rows: list[dict[str, str]],
) -> None:
    """Outpatient visits with one to three charge batches each; one batch in five is later
    withdrawn at the counter (2205)."""
    patients_seen = conn.execute(
        select(patients.c.patient_id, patients.c.psn_no, patients.c.certno, patients.c.psn_type)
        .order_by(patients.c.patient_id)
    ).all()
    if not patients_seen:
        return
    count = len(patients_seen) if count is None else count
    drugs = [item for item in _ITEMS if item[4] and item[2] in ("drug", "service")]
    lines: list[dict[str, Any]] = []
    cancels: list[dict[str, Any]] = []
    for visit_no in range(1, count + 1):
        patient = patients_seen[(visit_no - 1) % len(patients_seen)]
        doctor = rng.choice(doctor_rows)
        diag = rng.choice(_DIAGNOSES)
        seen_at = start + timedelta(hours=rng.randrange(0, 24 * 20), minutes=rng.randrange(60))
        otp_no = f"MZ{admdvs}{visit_no:08d}"
        # registered with the patient's identity card (mdtrt_cert_type 02), insured as the person type says
        conn.execute(insert(outpatient_visits), {
            "visit_id": visit_no, "patient_id": patient.patient_id, "otp_no": otp_no, "med_type": "11",
            "insutype": "390" if patient.psn_type == _PSN_TYPE["390"] else "310",
            "begntime": f"{seen_at:%Y-%m-%d %H:%M:%S}", "dept_code": doctor["dept_code"],
            "doctor_code": doctor["doctor_code"], "certno": patient.certno, "diag_code": diag[0], "diag_name": diag[1],
        })
        summary.outpatient_visits += 1
        sn = 0
        for batch in range(1, rng.randrange(2, 4)):
            bchno = f"{otp_no}{batch:02d}"
            summary.outpatient_batches += 1
            # distinct items: one item twice in one batch at one time is a duplicate charge
            for item in rng.sample(drugs, rng.randrange(1, 4)):
                sn += 1
                qty = Decimal(rng.choice([1, 1, 2, 6]))
                lines.append({
                    "visit_id": visit_no, "chrg_bchno": bchno, "feedetl_sn": f"{visit_no:06d}{sn:04d}",
                    "rxno": f"CF{visit_no:06d}{batch:02d}" if item[2] == "drug" else None,
                    "rx_days": "3" if item[2] == "drug" else None,
                    "item_code": item[0], "qty": str(qty), "unit_price": item[3],
                    "amount": str((qty * Decimal(item[3])).quantize(Decimal("0.01"))),
                    "charged_at": f"{seen_at + timedelta(minutes=10 * batch):%Y-%m-%d %H:%M:%S}",
                    "operator_code": _CASHIERS[(visit_no + batch) % len(_CASHIERS)][0],
                })
                summary.outpatient_lines += 1
            if batch > 1 and (rng.random() < 0.2 or not cancels):  # at least one, to show 2205
                cancels.append({
                    "infno": "2205", "visit_no": otp_no, "psn_no": patient.psn_no, "feedetl_sn": None,
                    "chrg_bchno": bchno, "cancelled_at": _later(f"{seen_at:%Y-%m-%d %H:%M:%S}", hours=2),
                })
    conn.execute(insert(outpatient_fees), lines)
    if cancels:
        conn.execute(insert(fee_cancels), cancels)
    summary.cancels["2205"] = len(cancels)


#: 职业 (prfs) of the sample's patients; 与患者关系 (patn_rlts) of their contact person
_OCCUPATIONS = ("13", "17", "24", "27", "54", "80", "90")
_RELATIONS = ("10", "20", "30", "50")
#: operations for the sample's surgical diagnoses: (ICD-9-CM-3 code, name, minutes)
_OPERATIONS = {
    "K35.800": ("47.0100", "腹腔镜下阑尾切除术", 75),
    "S72.000": ("81.5100", "全髋关节置换术", 150),
}
#: the 票据代码 of the sample hospital's medical-fee electronic bills (湖南省 住院收费票据)
_BILL_CODE = "43060122"


def _settlement_lists(conn: Any, rng: random.Random, summary: SampleHis) -> None:
    """What the settlement list takes from the HIS besides the settlement: every stay's 病案首页,
    the operations of stays with a surgical main diagnosis, and the bill of every settlement."""
    stays = conn.execute(
        select(inpatient_visits.c.visit_id, inpatient_visits.c.admitted_at, inpatient_visits.c.doctor_code,
               inpatient_visits.c.dept_code, inpatient_visits.c.main_diag_code, patients.c.patient_name)
        .join(patients, patients.c.patient_id == inpatient_visits.c.patient_id).order_by(inpatient_visits.c.visit_id)
    ).all()
    national_dept = {code: national for code, _name, national in _DEPARTMENTS}
    records, done = [], []
    for stay in stays:
        caty = national_dept.get(stay.dept_code, "A03")
        records.append({
            "visit_id": stay.visit_id, "medcasno": f"BA{stay.visit_id:08d}", "ntly": "CHN",
            "prfs": rng.choice(_OCCUPATIONS), "curr_addr": f"湖南省长沙市示例路{rng.randrange(1, 300)}号",
            "emp_name": rng.choice([None, "示例有限公司"]),
            "coner_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
            "patn_rlts": rng.choice(_RELATIONS), "coner_addr": f"湖南省长沙市示例路{rng.randrange(1, 300)}号",
            "coner_tel": f"139{rng.randrange(10**7, 10**8)}", "adm_way": rng.choice(["1", "2", "2", "2"]),
            "trt_type": "10", "adm_caty": caty, "dscg_caty": caty, "days_rinp_flag_31": "1",
        })
        operation = _OPERATIONS.get(stay.main_diag_code)
        if operation is not None:
            code, name, minutes = operation
            begin = datetime.fromisoformat(stay.admitted_at) + timedelta(hours=20)
            done.append({
                "visit_id": stay.visit_id, "oprn_oprt_type": "1", "oprn_oprt_code": code, "oprn_oprt_name": name,
                "begntime": f"{begin:%Y-%m-%d %H:%M:%S}",
                "endtime": f"{begin + timedelta(minutes=minutes):%Y-%m-%d %H:%M:%S}",
                "oper_dr_code": stay.doctor_code, "anst_way": "1", "anst_dr_code": stay.doctor_code,
                "anst_begntime": f"{begin - timedelta(minutes=20):%Y-%m-%d %H:%M:%S}",
                "anst_endtime": f"{begin + timedelta(minutes=minutes + 10):%Y-%m-%d %H:%M:%S}",
            })
    if records:
        conn.execute(insert(case_records), records)
    if done:
        conn.execute(insert(operations), done)
    bills = [
        {"setl_id": row.setl_id, "bill_code": _BILL_CODE, "bill_no": f"{row.seq:010d}",
         "biz_sn": f"YW{row.setl_time[:10].replace('-', '')}{row.seq:06d}"}
        for row in conn.execute(select(settlements.c.setl_id, settlements.c.seq, settlements.c.setl_time)
                                .order_by(settlements.c.seq))
    ]
    if bills:
        conn.execute(insert(settlement_bills), bills)
    summary.operations = len(done)


def counter_settlements(url: str) -> list[dict[str, Any]]:
    """The sample's settlements as the centre made them at the counter: each the ``setlinfo`` of
    its 2304 answer (setl_id, mdtrt_id, psn_no, insutype, clr_type, setl_time, medfee_sumamt,
    fund_pay_sumamt, acct_pay, psn_cash_pay, fulamt_ownpay_amt) with the settlement request's
    ``msgid``, the clearing agency ``setl_optins`` where the centre returned one and
    ``refd_setl_flag``. The simulated centre runs no settlement: a rehearsal hands it these
    (``CentreLedger.settled_at_counter``), as a hospital's counter would have settled with it."""
    engine = create_engine(url, future=True)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(settlements.c.setl_id, inpatient_visits.c.mdtrt_id, settlements.c.psn_no,
                       settlements.c.insutype, settlements.c.clr_type, settlements.c.setl_time,
                       settlements.c.medfee_sumamt, settlements.c.fund_pay_sumamt, settlements.c.acct_pay,
                       settlements.c.psn_cash_pay, settlements.c.fulamt_ownpay_amt, settlements.c.refd_setl_flag,
                       settlements.c.setl_optins, settlements.c.msgid)
                .join(inpatient_visits, inpatient_visits.c.visit_id == settlements.c.visit_id)
                .order_by(settlements.c.seq)
            ).all()
    finally:
        engine.dispose()
    return [dict(row._mapping) for row in rows]


def _dual_channel(seq: int, drugs: Decimal, fund: Decimal) -> Decimal | None:
    """The 双通道 deduction of the sample's settlements that have one: every fourth stay with
    drugs had a third of them bought at a pharmacy on an external prescription."""
    if seq % _DUAL_CHANNEL_EVERY or drugs <= 0:
        return None
    return min(fund, (drugs / 3).quantize(Decimal("0.01")))


def _operators() -> list[tuple[str, str]]:
    """(operator_code, operator_name): two charge nurses per ward, then the cashiers."""
    nurses = [(f"HS{index:02d}{k}", _NURSES[(2 * index + k) % len(_NURSES)])
              for index in range(len(_DEPARTMENTS)) for k in range(2)]
    return nurses + list(_CASHIERS)


def _nurse(doctor_code: str, seq: int) -> str:
    """The charge nurse of the doctor's ward (YS + the ward's index + k) who entered line ``seq``."""
    return f"HS{doctor_code[2:4]}{seq % 2}"


def _later(moment: str, hours: int) -> str:
    return f"{datetime.fromisoformat(moment) + timedelta(hours=hours):%Y-%m-%d %H:%M:%S}"


def _is_clean(row: dict[str, object]) -> bool:
    item = next(i for i in _ITEMS if i[0] == row["item_code"])
    if not item[4] or row["qty"] == "abc":
        return False
    qty = Decimal(str(row["qty"]))
    return Decimal(str(row["amount"])) == (qty * Decimal(str(row["unit_price"]))).quantize(
        Decimal("0.01")
    )


def sample_mapping_rows() -> list[tuple[str, str, str, str]]:
    """(kind, his_code, national_code, national_name) for the sample HIS, minus the gaps."""
    rows: list[tuple[str, str, str, str]] = []
    for code, name, _cat, _price, national in _ITEMS:
        if national:
            rows.append(("item", code, national, name))
    for code, name, national in _DEPARTMENTS:
        rows.append(("dept", code, national, name))
    for index in range(len(_DEPARTMENTS)):
        for k in range(2):
            rows.append(("doctor", f"YS{index:02d}{k}", f"D431199{index:04d}{k:02d}", ""))
    return rows


def write_mapping_csv(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """Write mapping rows in the import format (header: kind,his_code,national_code,national_name)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "his_code", "national_code", "national_name"])
        writer.writerows(rows)
    return path


#: the 版本号 of the sample catalogues (compared as text, like the centre's)
SAMPLE_CATALOGUE_VERSION = "202611010001"


def sample_catalogues(extra_drugs: int = 200) -> dict[str, list[Any]]:
    """What the simulated centre publishes: the sample HIS's national codes (so mapped items
    are in the catalogue) plus ``extra_drugs`` other drugs."""
    from adapter.rehearsal.sample_catalogues import CatalogRow, drug_codes

    version = SAMPLE_CATALOGUE_VERSION
    drugs = [CatalogRow(national, name, version) for _c, name, cat, _p, national in _ITEMS
             if national and cat == "drug"]
    drugs += [CatalogRow(code, f"示例药品{n}", version) for n, code in enumerate(drug_codes(extra_drugs, 10_000))]
    services = [CatalogRow(national, name, version) for _c, name, cat, _p, national in _ITEMS
                if national and cat in ("service", "bed")]
    diagnoses = [CatalogRow(code, name, version) for code, name in _DIAGNOSES]
    # 1318 caps each mapped item at twice its sample price (nothing is over the cap at first).
    caps = [
        {"hilist_code": national, "hilist_name": name, "updt_time": "2026-11-01 00:00:00",
         "begndate": "2020-01-01", "enddate": "", "vali_flag": "1",
         "hilist_pric_uplmt_amt": str(Decimal(price) * 2), "rid": f"R{index:010d}"}
        for index, (_c, name, _cat, price, national) in enumerate(_ITEMS) if national
    ]
    # 1312 医保目录: one record per code and insurance area (two areas here), keyed by rid.
    insurance_list = [
        {"hilist_code": national, "hilist_name": name, "updt_time": "2026-11-01 00:00:00",
         "begndate": "2020-01-01", "enddate": "", "vali_flag": "1", "insu_admdvs": area,
         "rid": f"ZG{area}{index:010d}"}
        for area in ("430000", "431199")
        for index, (_c, name, _cat, _price, national) in enumerate(_ITEMS) if national
    ]
    return {"1301": drugs, "1305": services, "1307": diagnoses, "1318": caps, "1312": insurance_list}


@dataclass
class PolicyCases:
    """Stays added on purpose for the policy rules: rule id -> lines it must find."""

    expected: dict[str, int] = field(default_factory=dict)
    #: lines a blocking rule must stop
    blocked: int = 0
    #: mappings the cases need besides the sample's (kind, his_code, national_code, national_name)
    mapping_rows: list[tuple[str, str, str, str]] = field(default_factory=list)


#: who charges the planted stays, in turn (ward, doctor, charge nurse): the self-inspection
#: report grouped by doctor, department or operator then has several of each
_CASE_STAFF = (("NK02", "YS010", "HS010"), ("NK01", "YS000", "HS001"), ("WK01", "YS021", "HS020"),
               ("GK01", "YS030", "HS031"))
#: the item of the substitution case: a consumable the HIS maps to a service code (静脉输液)
SUBSTITUTED_ITEM = ("HC0901", "一次性使用导尿包", "consumable", "8.00", "002000000030000")


def add_policy_cases(url: str, admdvs: str = "431199", *, every_rule: bool = False) -> PolicyCases:
    """Append stays that break the rules (after ``generate_sample_his``): a duplicate charge,
    a price above the standard, a traffic-accident stay, 10 days of an antibiotic for
    pneumonia, and a readmission 3 days after discharge with the same main diagnosis; an
    outpatient prescription of six drugs for 10 days and a second visit the same day.
    ``every_rule`` adds a case for each built-in rule those leave out: a day with nothing but
    the bed charged (挂床), a refund of more than was charged, and a consumable mapped to a
    service code (串换, its mapping in ``mapping_rows``)."""
    engine = create_engine(url, future=True)
    cases = PolicyCases()
    with engine.begin() as conn:
        last_visit = conn.execute(select(inpatient_visits.c.visit_id).order_by(inpatient_visits.c.visit_id.desc()))
        next_visit = (last_visit.scalar() or 0) + 1
        last_patient = conn.execute(select(patients.c.patient_id).order_by(patients.c.patient_id.desc()))
        next_patient = (last_patient.scalar() or 0) + 1
        start = datetime(2026, 11, 20, 8, 0, 0)
        staffed = 0

        def certno(number: int) -> str:
            return f"{admdvs}19800101{number % 10000:04d}"

        def stay(patient: int, admitted: datetime, diag: tuple[str, str], lines: list[dict[str, Any]],
                 discharged: datetime | None = None, injury: str | None = None) -> None:
            nonlocal next_visit, staffed
            visit = next_visit
            next_visit += 1
            dept, doctor, nurse = _CASE_STAFF[staffed % len(_CASE_STAFF)]
            staffed += 1
            conn.execute(insert(inpatient_visits), {
                "visit_id": visit, "patient_id": patient, "mdtrt_id": f"{admdvs}9{visit:08d}", "med_type": "21",
                "insutype": "310", "admitted_at": f"{admitted:%Y-%m-%d %H:%M:%S}", "dept_code": dept,
                "doctor_code": doctor, "certno": certno(patient),
                "main_diag_code": diag[0], "main_diag_name": diag[1], "adm_diag_dscr": f"{diag[1]}，收入院治疗",
                "bed_no": f"{dept}-{visit % 40 + 1:02d}", "mdtrtarea_admvs": admdvs,
                "discharged_at": f"{discharged:%Y-%m-%d %H:%M:%S}" if discharged else None,
                "injury_cause": injury,
            })
            # the admitting doctor's diagnosis, which the admission (2401 diseinfo) needs
            conn.execute(insert(diagnoses), {
                "visit_id": visit, "diag_type": "1", "maindiag_flag": "1", "srt_no": 1, "diag_code": diag[0],
                "diag_name": diag[1], "doctor_code": doctor, "diag_time": f"{admitted:%Y-%m-%d %H:%M:%S}"})

            def serial(n: int) -> str:
                # digits only, at most 15 and not 0 (the 2301 feedetl_sn rule); the leading 9
                # keeps these apart from the generated stays' serials
                return f"9{visit:06d}{n:03d}"

            conn.execute(insert(fee_lines), [
                {"visit_id": visit, "feedetl_sn": serial(n), "order_no": None, "dept_code": dept,
                 "doctor_code": doctor, "operator_code": nurse,
                 **{k: v for k, v in line.items() if k != "refunds"},
                 # a refund names the line of this stay it gives back (its place in ``lines``)
                 "init_feedetl_sn": serial(line["refunds"]) if "refunds" in line else None}
                for n, line in enumerate(lines, start=1)
            ])

        def patient() -> int:
            nonlocal next_patient
            number = next_patient
            next_patient += 1
            conn.execute(insert(patients), {"patient_id": number, "patient_name": "测试患者",
                                            "psn_no": f"{admdvs[:2]}9{number:017d}", "insuplc_admdvs": admdvs,
                                            "cert_type": "01", "certno": certno(number), "psn_type": "11"})
            return number

        def charge(item: str, at: datetime, qty: str = "1", price: str | None = None, **extra: Any) -> dict[str, Any]:
            unit = price or next(i[3] for i in (*_ITEMS, SUBSTITUTED_ITEM) if i[0] == item)
            return {"item_code": item, "qty": qty, "unit_price": unit,
                    "amount": str((Decimal(qty) * Decimal(unit)).quantize(Decimal("0.01"))),
                    "charged_at": f"{at:%Y-%m-%d %H:%M:%S}", **extra}

        pneumonia = ("J18.900", "肺炎")
        t = start
        stay(patient(), t, pneumonia, [charge("YP0001", t), charge("YP0001", t)])  # duplicate
        stay(patient(), t, pneumonia, [charge("ZL0004", t, price="25.00")])  # standard price is 20.00
        stay(patient(), t, ("S72.000", "股骨颈骨折"), [charge("ZL0003", t), charge("HC0002", t)], injury="traffic")
        stay(patient(), t, pneumonia, [charge("YP0002", t, rxno="CF9001", rx_days="10", dscg_drug="1")])
        again = patient()
        stay(again, t - timedelta(days=10), pneumonia, [charge("ZL0007", t - timedelta(days=10))],
             discharged=t - timedelta(days=3))
        stay(again, t, pneumonia, [charge("ZL0007", t)])
        # 10 days of discharge medication against a limit of 15 is fine; make it 20
        conn.execute(fee_lines.update().where(fee_lines.c.rx_days == "10").values(rx_days="20"))
        # Outpatient: one prescription of six drugs for 10 days each, for pneumonia (acute).
        visit = (conn.execute(select(outpatient_visits.c.visit_id).order_by(outpatient_visits.c.visit_id.desc()))
                 .scalar() or 0) + 1
        number = patient()
        otp_no = f"MZ{admdvs}9{visit:07d}"
        conn.execute(insert(outpatient_visits), {
            "visit_id": visit, "patient_id": number, "otp_no": otp_no, "med_type": "11", "insutype": "310",
            "begntime": f"{t:%Y-%m-%d %H:%M:%S}", "dept_code": "NK02", "doctor_code": "YS010",
            "certno": certno(number), "diag_code": pneumonia[0], "diag_name": pneumonia[1]})
        conn.execute(insert(outpatient_fees), [
            {"visit_id": visit, "chrg_bchno": f"{otp_no}01", "feedetl_sn": f"{visit:06d}{n:04d}", "rxno": "CF8001",
             "rx_days": "10", "operator_code": _CASHIERS[0][0],
             **{k: v for k, v in charge(item, t).items() if k != "init_feedetl_sn"}}
            for n, item in enumerate(("YP0001", "YP0002", "YP0003", "YP0005", "YP0006", "YP0008"), start=1)
        ])
        # ... and the same patient comes back in the afternoon: a second visit the same day.
        conn.execute(insert(outpatient_visits), {
            "visit_id": visit + 1, "patient_id": number, "otp_no": f"{otp_no}B", "med_type": "11", "insutype": "310",
            "begntime": f"{t + timedelta(hours=6):%Y-%m-%d %H:%M:%S}", "dept_code": "NK02", "doctor_code": "YS010",
            "certno": certno(number), "diag_code": pneumonia[0], "diag_name": pneumonia[1]})
        conn.execute(insert(outpatient_fees), {
            "visit_id": visit + 1, "chrg_bchno": f"{otp_no}B01", "feedetl_sn": f"{visit + 1:06d}0001",
            "operator_code": _CASHIERS[1][0], **charge("ZL0005", t + timedelta(hours=6))})
        if every_rule:
            # 挂床: the second day of this stay charges the bed and nothing else
            stay(patient(), t, pneumonia, [charge("ZL0001", t), charge("ZL0002", t + timedelta(minutes=5)),
                                           charge("ZL0001", t + timedelta(days=1))])
            # a refund of 3 infusions where 2 were charged
            stay(patient(), t, pneumonia, [charge("ZL0003", t, qty="2"),
                                           {**charge("ZL0003", t + timedelta(hours=2), qty="-3"), "refunds": 1}])
            # 串换: a consumable of the HIS mapped to the national code of a service
            code, name, category, price, national = SUBSTITUTED_ITEM
            conn.execute(insert(charge_items), {"item_code": code, "item_name": name, "category": category,
                                                "unit_price": Decimal(price)})
            cases.mapping_rows.append(("item", code, national, "静脉输液"))
            stay(patient(), t, ("K35.800", "急性阑尾炎"), [charge("ZL0007", t), charge(code, t)])
    engine.dispose()
    cases.expected = {"duplicate-charge": 1, "over-standard-price": 1, "excluded-cause": 2,
                      "dispensing-days": 1 + 6, "split-hospitalisation": 1, "drugs-per-prescription": 1,
                      "same-day-outpatient-visits": 1}
    cases.blocked = 4
    if every_rule:
        cases.expected |= {"bed-hanging": 1, "refund-exceeds-original": 1, "item-substitution": 1}
        cases.blocked += 1
    return cases
