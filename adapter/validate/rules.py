"""Built-in validation rules over fee lines (2301 lines, the entries of 2204 batches): what a
field table cannot say. Presence, lengths and decimals are the transaction's field table
(:mod:`adapter.validate.fields`)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from adapter.plugin.rules import Rule
from adapter.records import MappedFeeLine
from adapter.validate import formats

AMOUNT_TOLERANCE = Decimal("0.01")


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
    Rule("code-formats", "National item, doctor and area codes have the national format", check_codes),
    Rule("amount-matches", "Amount = quantity x price within 0.01", check_amount),
    Rule("refund-reference", "Refund lines point at their original line", check_refund_reference),
)
