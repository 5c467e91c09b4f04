"""The built-in policy rules (reference/seed-rules.md). Each is a plain function of a stay and
its parameters; defaults are the national/first-source values, regions change them as data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from adapter.plugin.policy import Hit, Param, PolicyRule, Stay
from adapter.plugin.rules import Severity
from adapter.records import MappedFeeLine

_CENT = Decimal("0.01")


def _charges(stay: Stay) -> list[MappedFeeLine]:
    """Lines that charge (not refunds), oldest first."""
    return sorted((m for m in stay.lines if not m.line.is_refund), key=lambda m: m.line.fee_ocur_time)


def _refunded(stay: Stay) -> dict[str, Decimal]:
    """feedetl_sn of an original -> quantity refunded so far."""
    done: dict[str, Decimal] = defaultdict(Decimal)
    for m in stay.lines:
        if m.line.is_refund and m.line.init_feedetl_sn:
            done[m.line.init_feedetl_sn] += -m.line.cnt
    return done


def duplicate_charge(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    window = timedelta(minutes=params["window_minutes"])
    refunded = _refunded(stay)
    last_seen: dict[str, MappedFeeLine] = {}
    for m in _charges(stay):
        line = m.line
        if line.his_item_category in params["exempt_categories"] or refunded.get(line.feedetl_sn, 0) >= line.cnt:
            continue
        before = last_seen.get(line.his_item_code)
        if before is not None and line.fee_ocur_time - before.line.fee_ocur_time <= window:
            yield Hit(m, f"{line.his_item_code} {line.his_item_name} charged again at "
                         f"{line.fee_ocur_time:%Y-%m-%d %H:%M} "
                         f"(line {before.line.feedetl_sn} at {before.line.fee_ocur_time:%H:%M}); remove the "
                         "duplicate or refund it", line.det_item_fee_sumamt,
                      {"first": before.line.feedetl_sn, "window_minutes": params["window_minutes"]})
        last_seen[line.his_item_code] = m


def over_standard_price(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    tolerance = Decimal(str(params["tolerance_percent"])) / 100
    for m in _charges(stay):
        line = m.line
        limits = []
        if line.his_std_price is not None:
            limits.append((line.his_std_price, "its standard price"))
        if m.price_cap is not None:
            limits.append((m.price_cap, f"the {m.price_cap_source} limit of {m.med_list_codg}"))
        if not limits:
            continue
        limit, what = min(limits, key=lambda item: item[0])
        if line.pric <= limit * (1 + tolerance):
            continue
        excess = ((line.pric - limit) * line.cnt).quantize(_CENT)
        yield Hit(m, f"{line.his_item_code} charged at {line.pric}, above {what} {limit}; charge at most {limit}",
                  excess, {"price": str(line.pric), "limit": str(limit), "limit_from": what})


def refund_exceeds_original(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    originals = {m.line.feedetl_sn: m for m in stay.lines if not m.line.is_refund}
    refunded: dict[str, Decimal] = defaultdict(Decimal)
    for m in sorted((m for m in stay.lines if m.line.is_refund), key=lambda m: m.line.fee_ocur_time):
        line = m.line
        original = originals.get(line.init_feedetl_sn)
        if original is None and line.init_feedetl_sn in stay.known_sns:
            continue  # the original is parked here: the refund waits for it (see the pipeline)
        if original is None:
            yield Hit(m, f"refund {line.feedetl_sn} names line {line.init_feedetl_sn or '(none)'}, which this stay "
                         "does not have; link it to the charge it refunds", -line.det_item_fee_sumamt, {})
            continue
        refunded[line.init_feedetl_sn] += -line.cnt
        excess = refunded[line.init_feedetl_sn] - original.line.cnt
        if excess > 0:
            yield Hit(m, f"refunds of line {line.init_feedetl_sn} add up to {refunded[line.init_feedetl_sn]}, "
                         f"more than the {original.line.cnt} charged", (excess * line.pric).quantize(_CENT),
                      {"charged": str(original.line.cnt), "refunded": str(refunded[line.init_feedetl_sn])})


def _in_ranges(code: str, ranges: tuple[str, ...]) -> bool:
    category = code[:3].upper()
    for item in ranges:
        low, _, high = item.partition("-")
        if low.upper() <= category <= (high or low).upper():
            return True
    return False


def dispensing_days(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    for m in _charges(stay):
        line = m.line
        if line.prd_days is None or line.his_item_category not in ("", "drug"):
            continue
        diagnosis = line.main_diag_code
        if line.dscg_tkdrug_flag == "1":
            kind, limit = "discharge medication", params["discharge_days"]
        elif line.er_flag == "1":
            kind, limit = "emergency prescription", params["emergency_days"]
        elif diagnosis and _in_ranges(diagnosis, params["specified_icd"]):
            kind, limit = f"specified disease {diagnosis}", params["specified_days"]
        elif diagnosis and _in_ranges(diagnosis, params["chronic_icd"]):
            kind, limit = f"chronic disease {diagnosis}", params["chronic_days"]
        elif not params["acute_icd"] or (diagnosis and _in_ranges(diagnosis, params["acute_icd"])):
            kind, limit = "acute illness" + (f" {diagnosis}" if diagnosis else ""), params["acute_days"]
        else:
            kind, limit = f"general illness {diagnosis}", params["general_days"]
        if line.prd_days > limit:
            share = (line.prd_days - limit) / line.prd_days
            yield Hit(m, f"{line.his_item_code} {line.his_item_name} dispensed for {line.prd_days} days; at most "
                         f"{limit} for {kind}", (line.det_item_fee_sumamt * share).quantize(_CENT),
                      {"days": str(line.prd_days), "limit": limit, "class": kind})


def drugs_per_prescription(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    by_rx: dict[str, list[MappedFeeLine]] = defaultdict(list)
    for m in _charges(stay):
        if m.line.rxno and m.line.his_item_category in ("", "drug"):
            by_rx[m.line.rxno].append(m)
    for rxno, lines in by_rx.items():
        seen: list[str] = []
        for m in lines:
            if m.line.his_item_code in seen:
                continue
            seen.append(m.line.his_item_code)
            if len(seen) > params["max_drugs"]:
                yield Hit(m, f"prescription {rxno} has {len({x.line.his_item_code for x in lines})} drugs, at most "
                             f"{params['max_drugs']} allowed; split it or cut it down", m.line.det_item_fee_sumamt,
                          {"rxno": rxno})


def split_hospitalisation(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    charges = _charges(stay)
    admitted = min((m.line.adm_time for m in stay.lines if m.line.adm_time), default=None)
    diagnosis = next((m.line.main_diag_code for m in stay.lines if m.line.main_diag_code), "")
    if admitted is None or not diagnosis or not charges:
        return
    width = 3 if params["same_category"] else len(diagnosis)
    for earlier in stay.earlier:
        if earlier.outpatient or earlier.dscg_time is None or earlier.main_diag_code[:width] != diagnosis[:width]:
            continue
        gap = admitted - earlier.dscg_time
        if timedelta(0) <= gap <= timedelta(days=params["days"]):
            total = sum((m.line.det_item_fee_sumamt for m in stay.lines), Decimal(0))
            yield Hit(charges[0], f"readmitted {gap.days} day(s) after discharge from stay {earlier.mdtrt_id} with the "
                                  f"same main diagnosis {diagnosis}; within {params['days']} days this counts as one "
                                  "stay (split hospitalisation)", total,
                      {"earlier_stay": earlier.mdtrt_id, "gap_days": gap.days})
            return


def same_day_outpatient_visits(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    charges = _charges(stay)
    if not charges or not charges[0].line.med_type.startswith("1"):
        return
    day = charges[0].line.fee_ocur_time.date()
    others = sorted(e.mdtrt_id for e in stay.earlier
                    if e.outpatient and e.adm_time is not None and e.adm_time.date() == day)
    if len(others) + 1 > params["visits_per_day"]:
        yield Hit(charges[0], f"the patient has {len(others) + 1} outpatient visits on {day} ({', '.join(others)} and "
                              f"this one); the card used several times a day counts as one visit",
                  sum((m.line.det_item_fee_sumamt for m in charges), Decimal(0)), {"same_day": others})


def bed_hanging(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    beds = set(params["bed_categories"])
    by_day: dict[Any, list[MappedFeeLine]] = defaultdict(list)
    for m in _charges(stay):
        by_day[m.line.fee_ocur_time.date()].append(m)
    idle = [day for day, lines in sorted(by_day.items())
            if lines and all(m.line.his_item_category in beds for m in lines)]
    if len(idle) < params["min_days"]:
        return
    for day in idle:
        lines = by_day[day]
        yield Hit(lines[0], f"{day}: only bed charges, no treatment ({len(idle)} such day(s) in this stay); "
                            "check the patient was in hospital (挂床)",
                  sum((m.line.det_item_fee_sumamt for m in lines), Decimal(0)),
                  {"day": str(day), "idle_days": len(idle)})


def excluded_cause(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    causes = {c.lower() for c in params["causes"]}
    for m in _charges(stay):
        cause = m.line.injury_cause
        if cause and cause.lower() in causes:
            yield Hit(m, f"the stay is recorded as {cause}: its costs must not be charged to the fund; settle as "
                         "self-pay or with the liable party", m.line.det_item_fee_sumamt, {"cause": cause})


#: national code shapes per HIS category (reference §4): drugs X/Z/T/J, consumables C, services digits
_SHAPES = {"drug": ("X", "Z", "T", "J"), "consumable": ("C",)}


def item_substitution(stay: Stay, params: Mapping[str, Any]) -> Iterator[Hit]:
    for m in _charges(stay):
        category, code = m.line.his_item_category, m.med_list_codg
        if not category or not code:
            continue
        if category in _SHAPES:
            fits = code.startswith(_SHAPES[category])
        elif category in params["service_categories"]:
            fits = code[:1].isdigit()
        else:
            continue
        if not fits:
            yield Hit(m, f"{m.line.his_item_code} is a {category} in the HIS but is mapped to {code}, which is not a "
                         f"{category} code; fix the mapping (substituted item?)", m.line.det_item_fee_sumamt,
                      {"category": category, "national_code": code})


SPECIFIED_ICD = ("B15-B19", "A15-A19", "F20-F39", "C00-C97", "E10-E14", "I20-I25")
CHRONIC_ICD = ("I10-I15", "J44-J45", "N18-N18", "M15-M19", "K70-K77")
_ART38 = "002 第二条 (医疗保障基金使用监督管理条例 art. 38)"

BUILTIN_POLICY_RULES = (
    PolicyRule("duplicate-charge", "the same item charged twice for the same stay at the same time",
               _ART38 + " 重复收费", Severity.BLOCK,
               (Param("window_minutes", 0, "charges of one item this close together are duplicates"),
                Param("exempt_categories", (), "HIS item categories that may repeat")), (),
               duplicate_charge),
    PolicyRule("over-standard-price",
               "unit price above the HIS standard price, the 1318 cap or a regional price limit",
               _ART38 + " 超标准收费", Severity.BLOCK,
               (Param("tolerance_percent", 0, "allowed excess over the limit, %"),), (), over_standard_price),
    PolicyRule("refund-exceeds-original", "a refund without its original, or refunding more than was charged",
               "reference §5 (refund lines)", Severity.BLOCK, (), (), refund_exceeds_original),
    PolicyRule("dispensing-days", "days of supply over the limit for the disease class",
               "000 §2-二.3, §4-8(4), §5-四, §10-六", Severity.WARN,
               (Param("acute_days", 7, "acute illness"), Param("chronic_days", 15, "chronic disease"),
                Param("specified_days", 30, "specified diseases"), Param("discharge_days", 15, "discharge medication"),
                Param("emergency_days", 3, "emergency prescriptions"),
                Param("specified_icd", SPECIFIED_ICD, "ICD-10 ranges of the specified diseases (hepatitis, "
                                                      "tuberculosis, psychiatric, cancer, diabetes, coronary heart "
                                                      "disease)"),
                Param("chronic_icd", CHRONIC_ICD, "ICD-10 ranges counted as chronic"),
                Param("acute_icd", (), "ICD-10 ranges counted as acute; empty: every other illness is acute"),
                Param("general_days", 7, "illnesses neither acute (acute_icd set) nor chronic nor specified")),
               ("prd_days",), dispensing_days),
    PolicyRule("drugs-per-prescription", "more drugs on one prescription than allowed", "000 §5-四", Severity.WARN,
               (Param("max_drugs", 5, "drugs per prescription"),), ("rxno",), drugs_per_prescription),
    PolicyRule("split-hospitalisation", "readmission for the same main diagnosis soon after discharge",
               "000 §2-三.3; " + _ART38 + " 分解住院", Severity.WARN,
               (Param("days", 10, "days after discharge"),
                Param("same_category", True, "compare the 3-character ICD-10 category, not the full code")),
               ("adm_time", "main_diag_code"), split_hospitalisation),
    PolicyRule("same-day-outpatient-visits", "several outpatient visits of one patient on one day",
               "000 §2-三.3 (same card, same day = one visit)", Severity.WARN,
               (Param("visits_per_day", 1, "outpatient visits a patient may have per day"),), (),
               same_day_outpatient_visits),
    PolicyRule("bed-hanging", "days with only bed charges and no treatment", _ART38 + " 挂床住院", Severity.WARN,
               (Param("bed_categories", ("bed",), "HIS item categories that are bed fees"),
                Param("min_days", 1, "report from this many such days")), ("his_item_category",), bed_hanging),
    PolicyRule("excluded-cause", "injuries the fund does not pay for (traffic, work injury, fights, self-harm)",
               "000 §2-一.6, §10-三", Severity.BLOCK,
               (Param("causes", ("traffic", "work_injury", "fight", "self_harm", "交通事故", "工伤", "斗殴", "自残"),
                      "injury causes excluded from the fund"),), ("injury_cause",), excluded_cause),
    PolicyRule("item-substitution", "the national code's category does not match the HIS item's category",
               _ART38 + " 串换项目", Severity.WARN,
               (Param("service_categories", ("service", "bed"), "HIS categories mapped to service codes"),),
               ("his_item_category",), item_substitution),
)
