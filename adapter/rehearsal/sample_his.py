"""A sample HIS database: schema and a generator of realistic inpatient data of any size.

The schema is shaped like the fee tables of common HIS products (patients, inpatient visits with
the centre's mdtrt_id, fee lines with the hospital's own item codes, refund lines with a negative
quantity pointing at the original). It is what ``demo`` and the tests extract from.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
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
patients = Table(
    "patients",
    his_metadata,
    Column("patient_id", Integer, primary_key=True),
    Column("patient_name", String(50), nullable=False),
    Column("psn_no", String(30), nullable=False),
    Column("insuplc_admdvs", String(6), nullable=False),
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
#: 进销存: every stock movement of the pharmacy, one row each, typed by its national infno.
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
#: Settlements done at the counter (the centre's setl_id), the source of 4101A and of
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
    Column("setl_optins", String(6)),
    Column("msgid", String(30)),
)
#: the clearing agency of the sample's settlements of another pooling area (长沙市本级), and
#: which settlements those are: the 2nd, 7th, 12th...
OTHER_AREA_OPTINS = "430100"
_OTHER_AREA_EVERY = 5
#: the institution code in the msgid of the sample's settlement requests (as in its 4101A lists)
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
    mapping_rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    @property
    def mappable_valid_lines(self) -> int:
        return self.lines - self.unmapped_lines - self.invalid_lines - self.malformed_lines


def create_schema(url: str) -> None:
    """Create the sample HIS tables (idempotent)."""
    engine = create_engine(url, future=True)
    his_metadata.create_all(engine)
    engine.dispose()


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
) -> SampleHis:
    """Fill a HIS database with visits and fee lines; returns what it made.

    Shares are probabilities per line: lines with an unmapped item code, lines whose amount
    is not quantity x price (a data-entry error the validator must catch), and lines that are
    unreadable (a quantity that is not a number).
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
        conn.execute(
            insert(charge_items),
            [
                {"item_code": c, "item_name": n, "category": cat, "unit_price": Decimal(p)}
                for c, n, cat, p, _ in _ITEMS
            ],
        )
        for visit_no in range(1, visits + 1):
            patient_id = visit_no
            conn.execute(
                insert(patients),
                {
                    "patient_id": patient_id,
                    "patient_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                    "psn_no": f"{admdvs[:2]}{rng.randrange(10**17, 10**18)}",
                    "insuplc_admdvs": admdvs,
                },
            )
            doctor = rng.choice(doctor_rows)
            diag = rng.choice(_DIAGNOSES)
            admitted = start + timedelta(hours=rng.randrange(0, 24 * 20))
            conn.execute(
                insert(inpatient_visits),
                {
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
                },
            )
            conn.execute(
                insert(diagnoses),
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
                            datetime.strptime(original["charged_at"], "%Y-%m-%d %H:%M:%S")
                            + timedelta(hours=2)
                        ).strftime("%Y-%m-%d %H:%M:%S"),
                    }
                )
                summary.lines += 1
                summary.refund_lines += 1
            conn.execute(insert(fee_lines), rows)
            if rng.random() < discharged_share:
                discharged_seq += 1
                last = max(datetime.strptime(r["charged_at"], "%Y-%m-%d %H:%M:%S") for r in rows)
                conn.execute(
                    inpatient_visits.update()
                    .where(inpatient_visits.c.visit_id == visit_no)
                    .values(
                        discharged_at=(last + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S"),
                        discharge_seq=discharged_seq,
                        dscg_way="1",
                    )
                )
                summary.discharges += 1
        summary.stock_moves = _stock_moves(conn, rng, start, stock_items)
        summary.visits = visits
        # Drawn from their own generator so the inpatient data above stays as it always was.
        _settle_and_cancel(conn, random.Random(seed + 1), summary)
        _outpatient(conn, random.Random(seed + 2), start, admdvs, outpatient_visits, summary, doctor_rows)
    engine.dispose()
    summary.mapping_rows = sample_mapping_rows()
    return summary


def _stock_moves(conn: Any, rng: random.Random, start: datetime, items: int) -> dict[str, int]:
    """A month of pharmacy movements for the first ``items`` mapped drugs: purchase, sales, a
    sale return, a purchase return, a stock correction and the month-end stocktake."""
    drugs = [item for item in _ITEMS if item[2] == "drug" and item[4]][:items]
    rows: list[dict[str, Any]] = []
    for index, (code, _name, _cat, price, _nat) in enumerate(drugs):
        rows.extend(_drug_moves(rng, start, index, code, price))
    conn.execute(insert(stock_moves), rows)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["infno"]] = counts.get(row["infno"], 0) + 1
    return counts


def _drug_moves(rng: random.Random, start: datetime, index: int, code: str, price: str) -> list[dict[str, Any]]:
    """One drug's movements of the month, in order, each some hours after the one before."""
    rows: list[dict[str, Any]] = []
    batch = f"PC{start:%Y%m}{index:03d}"
    moment = start

    def move(infno: str, qty: int, doc: str, hours: int) -> None:
        nonlocal moment
        moment += timedelta(hours=hours)
        rows.append({
            "infno": infno, "item_code": code, "batch_no": batch, "qty": str(qty), "price": price,
            "moved_at": moment.strftime("%Y-%m-%d %H:%M:%S"), "doc_no": doc,
            "operator": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
        })

    move("3503", 500, f"CG{index:04d}", 1)
    for sale in range(rng.randrange(2, 5)):
        move("3505", rng.randrange(1, 10), f"XS{index:04d}{sale:02d}", 5)
    move("3506", 1, f"XT{index:04d}", 3)
    move("3504", 20, f"CT{index:04d}", 2)
    move("3502", -2, f"BG{index:04d}", 1)
    move("3501", 450, f"PD{index:04d}", 24)
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
    for stay in stays:
        lines = [dict(r._mapping) for r in conn.execute(
            select(fee_lines).where(fee_lines.c.visit_id == stay.visit_id).order_by(fee_lines.c.line_id)
        )]
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
        settled_at = datetime.strptime(stay.discharged_at, "%Y-%m-%d %H:%M:%S")
        conn.execute(insert(settlements), {
            "setl_id": f"S{agency}{stay.mdtrt_id[6:]}", "seq": seq, "visit_id": stay.visit_id,
            "psn_no": stay.psn_no, "insutype": stay.insutype, "clr_type": "21", "setl_time": stay.discharged_at,
            "medfee_sumamt": total, "fund_pay_sumamt": fund, "acct_pay": account,
            "psn_cash_pay": total - fund - account, "refd_setl_flag": "0",
            "fulamt_ownpay_amt": (total * Decimal("0.03")).quantize(Decimal("0.01")),
            "drug_sumamt": drugs, "drug_selfpay_amt": (drugs * Decimal("0.08")).quantize(Decimal("0.01")),
            "setl_optins": OTHER_AREA_OPTINS if other_area else None,
            "msgid": f"{_SETTLING_FIXMEDINS}{settled_at:%Y%m%d%H%M%S}{seq % 10000:04d}",
        })
        summary.settlements += 1
        summary.other_area_settlements += other_area
    if cancels:
        conn.execute(insert(fee_cancels), cancels)
    summary.cancels["2302"] = len(cancels)


def _outpatient(
    conn: Any, rng: random.Random, start: datetime, admdvs: str, count: int | None, summary: SampleHis,
    doctor_rows: list[dict[str, str]],
) -> None:
    """Outpatient visits with one to three charge batches each; one batch in five is later
    withdrawn at the counter (2205)."""
    patients_seen = conn.execute(select(patients.c.patient_id, patients.c.psn_no).order_by(patients.c.patient_id)).all()
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
        conn.execute(insert(outpatient_visits), {
            "visit_id": visit_no, "patient_id": patient.patient_id, "otp_no": otp_no, "med_type": "11",
            "insutype": "310", "begntime": f"{seen_at:%Y-%m-%d %H:%M:%S}", "dept_code": doctor["dept_code"],
            "doctor_code": doctor["doctor_code"], "certno": f"{admdvs}1970010{visit_no % 10}{1000 + visit_no}",
            "diag_code": diag[0], "diag_name": diag[1],
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


def _later(moment: str, hours: int) -> str:
    return f"{datetime.strptime(moment, '%Y-%m-%d %H:%M:%S') + timedelta(hours=hours):%Y-%m-%d %H:%M:%S}"


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


def add_policy_cases(url: str, admdvs: str = "431199") -> PolicyCases:
    """Append stays that break the rules (after ``generate_sample_his``): a duplicate charge,
    a price above the standard, a traffic-accident stay, 10 days of an antibiotic for
    pneumonia, and a readmission 3 days after discharge with the same main diagnosis."""
    engine = create_engine(url, future=True)
    cases = PolicyCases()
    with engine.begin() as conn:
        last_visit = conn.execute(select(inpatient_visits.c.visit_id).order_by(inpatient_visits.c.visit_id.desc()))
        next_visit = (last_visit.scalar() or 0) + 1
        last_patient = conn.execute(select(patients.c.patient_id).order_by(patients.c.patient_id.desc()))
        next_patient = (last_patient.scalar() or 0) + 1
        start = datetime(2026, 11, 20, 8, 0, 0)

        def stay(patient: int, admitted: datetime, diag: tuple[str, str], lines: list[dict[str, Any]],
                 discharged: datetime | None = None, injury: str | None = None) -> None:
            nonlocal next_visit
            visit = next_visit
            next_visit += 1
            conn.execute(insert(inpatient_visits), {
                "visit_id": visit, "patient_id": patient, "mdtrt_id": f"{admdvs}9{visit:08d}", "med_type": "21",
                "insutype": "310", "admitted_at": f"{admitted:%Y-%m-%d %H:%M:%S}", "dept_code": "NK02",
                "doctor_code": "YS010", "certno": f"{admdvs}1980010{visit % 10}{1000 + visit}",
                "main_diag_code": diag[0], "main_diag_name": diag[1],
                "discharged_at": f"{discharged:%Y-%m-%d %H:%M:%S}" if discharged else None,
                "injury_cause": injury,
            })
            conn.execute(insert(fee_lines), [
                # digits only, at most 15 and not 0 (the 2301 feedetl_sn rule); the leading 9
                # keeps these apart from the generated stays' serials
                {"visit_id": visit, "feedetl_sn": f"9{visit:06d}{n:03d}", "init_feedetl_sn": None,
                 "order_no": None, "dept_code": "NK02", "doctor_code": "YS010", **line}
                for n, line in enumerate(lines, start=1)
            ])

        def patient() -> int:
            nonlocal next_patient
            number = next_patient
            next_patient += 1
            conn.execute(insert(patients), {"patient_id": number, "patient_name": "测试患者",
                                            "psn_no": f"{admdvs[:2]}9{number:017d}", "insuplc_admdvs": admdvs})
            return number

        def charge(item: str, at: datetime, qty: str = "1", price: str | None = None, **extra: Any) -> dict[str, Any]:
            unit = price or next(i[3] for i in _ITEMS if i[0] == item)
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
            "certno": f"{admdvs}19800101{visit:04d}", "diag_code": pneumonia[0], "diag_name": pneumonia[1]})
        conn.execute(insert(outpatient_fees), [
            {"visit_id": visit, "chrg_bchno": f"{otp_no}01", "feedetl_sn": f"{visit:06d}{n:04d}", "rxno": "CF8001",
             "rx_days": "10", **{k: v for k, v in charge(item, t).items() if k != "init_feedetl_sn"}}
            for n, item in enumerate(("YP0001", "YP0002", "YP0003", "YP0005", "YP0006", "YP0008"), start=1)
        ])
        # ... and the same patient comes back in the afternoon: a second visit the same day.
        conn.execute(insert(outpatient_visits), {
            "visit_id": visit + 1, "patient_id": number, "otp_no": f"{otp_no}B", "med_type": "11", "insutype": "310",
            "begntime": f"{t + timedelta(hours=6):%Y-%m-%d %H:%M:%S}", "dept_code": "NK02", "doctor_code": "YS010",
            "certno": f"{admdvs}19800101{visit:04d}", "diag_code": pneumonia[0], "diag_name": pneumonia[1]})
        conn.execute(insert(outpatient_fees), {
            "visit_id": visit + 1, "chrg_bchno": f"{otp_no}B01", "feedetl_sn": f"{visit + 1:06d}0001",
            **charge("ZL0005", t + timedelta(hours=6))})
    engine.dispose()
    cases.expected = {"duplicate-charge": 1, "over-standard-price": 1, "excluded-cause": 2,
                      "dispensing-days": 1 + 6, "split-hospitalisation": 1, "drugs-per-prescription": 1,
                      "same-day-outpatient-visits": 1}
    cases.blocked = 4
    return cases
