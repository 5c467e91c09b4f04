"""Built-in validation rules for fee-detail lines (2301/2204 field table, reference §3.6-3.7)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from adapter.records import MappedFeeLine
from adapter.validate import formats
from adapter.validate.engine import Rule

#: Field lengths of the fee-detail upload (2301), in characters.
FIELD_LENGTHS = {
    "feedetl_sn": 30,
    "init_feedetl_sn": 30,
    "mdtrt_id": 30,
    "drord_no": 30,
    "psn_no": 30,
    "med_type": 6,
    "med_list_codg": 50,
    "medins_list_codg": 150,
    "bilg_dept_codg": 30,
    "bilg_dept_name": 100,
    "bilg_dr_codg": 30,
    "bilg_dr_name": 50,
}
#: (total digits, decimal places) of the numeric fields.
NUMBER_SHAPES = {"det_item_fee_sumamt": (16, 2), "cnt": (16, 4), "pric": (16, 6)}
AMOUNT_TOLERANCE = Decimal("0.01")


def _fields(mapped: MappedFeeLine) -> dict[str, str]:
    line = mapped.line
    return {
        "feedetl_sn": line.feedetl_sn,
        "init_feedetl_sn": line.init_feedetl_sn,
        "mdtrt_id": line.mdtrt_id,
        "drord_no": line.drord_no,
        "psn_no": line.psn_no,
        "med_type": line.med_type,
        "med_list_codg": mapped.med_list_codg,
        "medins_list_codg": line.his_item_code,
        "bilg_dept_codg": mapped.bilg_dept_codg,
        "bilg_dept_name": line.his_dept_name,
        "bilg_dr_codg": mapped.bilg_dr_codg,
        "bilg_dr_name": line.his_doctor_name,
    }


def check_required(mapped: MappedFeeLine) -> Iterator[str]:
    fields = _fields(mapped)
    for name in (
        "feedetl_sn", "mdtrt_id", "psn_no", "med_type", "med_list_codg", "medins_list_codg",
        "bilg_dept_codg", "bilg_dept_name", "bilg_dr_codg", "bilg_dr_name",
    ):
        if not fields[name]:
            yield f"required field {name} is empty"


def check_lengths(mapped: MappedFeeLine) -> Iterator[str]:
    for name, value in _fields(mapped).items():
        limit = FIELD_LENGTHS[name]
        if len(value) > limit:
            yield f"{name} is {len(value)} characters, the centre allows {limit}: {value[:40]!r}"


def check_number_shapes(mapped: MappedFeeLine) -> Iterator[str]:
    line = mapped.line
    for name, (digits, places) in NUMBER_SHAPES.items():
        value: Decimal = getattr(line, name)
        exponent = value.as_tuple().exponent
        decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if decimals > places and value != value.quantize(Decimal(1).scaleb(-places)):
            yield f"{name} {value} has more than {places} decimal places"
        if abs(value) >= Decimal(10) ** (digits - places):
            yield f"{name} {value} is too large for the centre ({digits},{places})"


def check_codes(mapped: MappedFeeLine) -> Iterator[str]:
    code = mapped.med_list_codg
    if code and formats.classify_med_list_codg(code) is None:
        yield formats.describe_med_list_problem(code)
    doctor = mapped.bilg_dr_codg
    if doctor and not formats.DOCTOR.match(doctor):
        yield (
            f"doctor code {doctor!r} is not a national 医保医师 code "
            "(D + 6-digit area + 6-digit serial); fix the doctor mapping"
        )
    area = mapped.line.insuplc_admdvs
    if area and not formats.ADMDVS.match(area):
        yield f"insuplc_admdvs {area!r} is not a 6-digit area code"


def check_amount(mapped: MappedFeeLine) -> Iterator[str]:
    line = mapped.line
    expected = line.cnt * line.pric
    if abs(line.det_item_fee_sumamt - expected) > AMOUNT_TOLERANCE:
        yield (
            f"amount {line.det_item_fee_sumamt} is not quantity {line.cnt} x price {line.pric} "
            f"= {expected.quantize(Decimal('0.01'))}; correct the fee line in the HIS"
        )
    if line.pric < 0:
        yield f"price {line.pric} is negative; a refund has a negative quantity, not price"


def check_refund_reference(mapped: MappedFeeLine) -> Iterator[str]:
    line = mapped.line
    if line.is_refund and not line.init_feedetl_sn:
        yield "refund line (negative quantity) does not name the original line (init_feedetl_sn)"
    if line.init_feedetl_sn and line.init_feedetl_sn == line.feedetl_sn:
        yield "refund line names itself as its original (init_feedetl_sn = feedetl_sn)"


BUILTIN_RULES = (
    Rule("required-fields", "Every required fee-detail field has a value", check_required),
    Rule("field-lengths", "Text fields fit the centre's lengths", check_lengths),
    Rule("number-shapes", "Amounts fit the centre's digits and decimal places", check_number_shapes),
    Rule("code-formats", "National item, doctor and area codes have the national format", check_codes),
    Rule("amount-matches", "Amount = quantity x price within 0.01", check_amount),
    Rule("refund-reference", "Refund lines point at their original line", check_refund_reference),
)
