"""Canonical record types that flow between the stages.

A stage takes plain records in and hands plain records on. HIS rows become :class:`FeeLine`
(hospital codes), mapping turns them into :class:`MappedFeeLine` (national codes) and the
region dialect turns those into the centre's field names.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from adapter import moments

_DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f")


class MappingKind(StrEnum):
    """What a mapping row translates."""

    #: hospital charge item -> national med_list_codg (drug, consumable, service)
    ITEM = "item"
    #: hospital department -> the department code registered with the centre
    DEPT = "dept"
    #: hospital doctor -> national 医保医师 code
    DOCTOR = "doctor"


@dataclass(frozen=True, slots=True)
class Settlement:
    setl_id: str
    mdtrt_id: str
    psn_no: str
    insutype: str
    clr_type: str
    setl_time: str
    medfee_sumamt: Decimal
    fund_pay_sumamt: Decimal
    acct_pay: Decimal
    psn_cash_pay: Decimal
    #: 0 = a settlement, 1 = a refund/cancellation of one
    refd_setl_flag: str = "0"


class MalformedRow(ValueError):
    """A HIS row cannot be read as a record; the message says which field and why."""


@dataclass(frozen=True)
class FeeLine:
    """One inpatient fee-detail line as the HIS knows it (hospital codes)."""

    source_key: str
    mdtrt_id: str
    psn_no: str
    feedetl_sn: str
    fee_ocur_time: datetime
    his_item_code: str
    his_item_name: str
    cnt: Decimal
    pric: Decimal
    det_item_fee_sumamt: Decimal
    his_dept_code: str
    his_dept_name: str
    his_doctor_code: str
    his_doctor_name: str
    med_type: str = "21"
    init_feedetl_sn: str = ""
    drord_no: str = ""
    insuplc_admdvs: str = ""
    # What the policy rules look at, where the HIS query provides it (all optional):
    #: the HIS's own item category (drug, service, consumable, bed...) and standard price
    his_item_category: str = ""
    his_std_price: Decimal | None = None
    #: prescription number and days of supply (drug lines)
    rxno: str = ""
    prd_days: Decimal | None = None
    #: 出院带药 discharge medication (1), emergency (1)
    dscg_tkdrug_flag: str = ""
    er_flag: str = ""
    #: the stay: main diagnosis (ICD-10), injury cause if any, admission and discharge
    main_diag_code: str = ""
    injury_cause: str = ""
    adm_time: datetime | None = None
    dscg_time: datetime | None = None

    @property
    def is_refund(self) -> bool:
        return self.cnt < 0

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-safe form for the state store (amounts as strings, exact)."""
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, Decimal):
                data[key] = str(value)
            elif isinstance(value, datetime):
                data[key] = value.strftime("%Y-%m-%d %H:%M:%S")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FeeLine:
        return fee_line_from_row(data, source_key=data["source_key"])


@dataclass(frozen=True)
class MappedFeeLine:
    """A fee line with its national codes (目录对照 applied)."""

    line: FeeLine
    med_list_codg: str
    bilg_dept_codg: str
    bilg_dr_codg: str
    hilist_name: str = ""
    #: the lowest price cap a catalogue or regional price list sets for the national code
    price_cap: Decimal | None = None
    price_cap_source: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line.to_json(),
            "med_list_codg": self.med_list_codg,
            "bilg_dept_codg": self.bilg_dept_codg,
            "bilg_dr_codg": self.bilg_dr_codg,
            "hilist_name": self.hilist_name,
            "price_cap": None if self.price_cap is None else str(self.price_cap),
            "price_cap_source": self.price_cap_source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MappedFeeLine:
        return cls(
            line=FeeLine.from_json(data["line"]),
            med_list_codg=data["med_list_codg"],
            bilg_dept_codg=data["bilg_dept_codg"],
            bilg_dr_codg=data["bilg_dr_codg"],
            hilist_name=data.get("hilist_name", ""),
            price_cap=None if data.get("price_cap") is None else Decimal(data["price_cap"]),
            price_cap_source=data.get("price_cap_source", ""),
        )


#: every field of a FeeLine, in order (read once, not per line)
_FIELDS = tuple(FeeLine.__dataclass_fields__)

_REQUIRED_TEXT = (
    "mdtrt_id",
    "psn_no",
    "feedetl_sn",
    "his_item_code",
    "his_dept_code",
    "his_doctor_code",
)


def fee_line_from_row(row: dict[str, Any], source_key: str) -> FeeLine:
    """Build a :class:`FeeLine` from a HIS row; :class:`MalformedRow` names the bad field."""
    # inline rather than _text per field: this runs for every line in extract and in check
    values: dict[str, Any] = {key: "" if (value := row.get(key)) is None else str(value).strip() for key in _FIELDS}
    missing = [key for key in _REQUIRED_TEXT if not values[key]]
    if missing:
        raise MalformedRow(f"HIS row has no value for {', '.join(missing)}")
    # The typed fields over their texts, in field order (so the first bad one is the one named).
    values["source_key"] = source_key
    values["fee_ocur_time"] = _datetime(row.get("fee_ocur_time"), "fee_ocur_time")
    values["cnt"] = _decimal(row.get("cnt"), "cnt")
    values["pric"] = _decimal(row.get("pric"), "pric")
    values["det_item_fee_sumamt"] = _decimal(row.get("det_item_fee_sumamt"), "det_item_fee_sumamt")
    values["med_type"] = values["med_type"] or "21"
    values["his_std_price"] = _optional(row.get("his_std_price"), "his_std_price", _decimal)
    values["prd_days"] = _optional(row.get("prd_days"), "prd_days", _decimal)
    values["adm_time"] = _optional(row.get("adm_time"), "adm_time", _datetime)
    values["dscg_time"] = _optional(row.get("dscg_time"), "dscg_time", _datetime)
    return _fee_line(values)


def _fee_line(values: dict[str, Any]) -> FeeLine:
    """A FeeLine of every one of its fields' values. Not through the frozen dataclass's
    ``__init__``, which sets its 29 fields with one ``object.__setattr__`` call each and cost
    more than reading the line; the instance is the same, as FeeLine has no ``__post_init__``
    (tests/test_records.py compares both ways)."""
    line: FeeLine = object.__new__(FeeLine)
    line.__dict__.update(values)
    return line


def _optional(value: Any, field: str, parse: Any) -> Any:
    """An optional column: empty is None, anything else must parse."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse(value, field)


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _decimal(value: Any, field: str) -> Decimal:
    if type(value) is Decimal and value.is_finite():
        return value  # what Decimal(str(value)) would give: a Decimal's text reads back exactly
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MalformedRow(f"HIS row has no value for {field}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MalformedRow(f"{field} {value!r} is not a number") from exc
    if not number.is_finite():
        raise MalformedRow(f"{field} {value!r} is not a finite number")
    return number


def _datetime(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        return value.replace(microsecond=0, tzinfo=None)
    text = _text(value)
    if not text:
        raise MalformedRow(f"HIS row has no value for {field}")
    moment = _moment(text)
    if moment is None:
        raise MalformedRow(f"{field} {text!r} is not a date-time (expected yyyy-MM-dd HH:mm:ss)")
    return moment


@functools.lru_cache(maxsize=4096)
def _moment(text: str) -> datetime | None:
    """The date-time a text holds, in the first form that reads it; None: none does. Cached (a
    datetime is immutable): a stay's admission and discharge come with each of its lines."""
    for fmt in _DATETIME_FORMATS:
        try:
            return moments.parse(text, fmt).replace(microsecond=0)
        except ValueError:
            continue
    return None
