"""The simulated centre's person registry: what the real centre knows of an insured person
(its 1101 人员信息获取) and answers in 5201, 5303 and 4103.

The simulated centre serves no 1101. It learns a person from the messages that carry them —
2201 (psn_name, psn_cert_type, certno, psn_type, insutype), 2401 (cert_type, certno,
insutype), 4101 (ntly, prfs, the contact person) — and answers what no message told it as this
simulation's choice, so that every field the output tables mark non-empty is filled:

* 性别 and 出生日期 from an 18-digit 居民身份证 number (digits 7-14 the birth date, the 17th odd
  for 男 1, even for 女 2); without one 9 未说明性别 and 1980-01-01;
* 人员姓名 参保人 and the last four digits of psn_no; 证件类型 01 居民身份证 and, without a
  number, psn_no as the number; 民族 1 汉族; 人员类别 11 在职; 险种 310 职工基本医疗保险;
  公务员标志 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from adapter.rehearsal.centre.ledger import CentreLedger

#: what the centre keeps of a person, and what it answers when no message told it
DEFAULTS = {"psn_cert_type": "01", "naty": "1", "psn_type": "11", "insutype": "310", "cvlserv_flag": "0"}
_RESIDENT_ID = re.compile(r"\d{6}(?P<birth>\d{8})\d{2}(?P<sex>\d)[\dXx]")


def learn(ledger: CentreLedger, psn_no: str, facts: Mapping[str, Any]) -> None:
    """Keep what a message says of a person (empty values say nothing)."""
    given = {name: str(value) for name, value in facts.items() if value not in (None, "")}
    with ledger.lock:
        ledger.persons.setdefault(psn_no, {}).update(given)


def person(ledger: CentreLedger, psn_no: str) -> dict[str, Any]:
    """A person as the centre answers them: psn_no, psn_name, psn_cert_type, certno, gend,
    brdy, age, naty, psn_type, insutype, cvlserv_flag, and what else a message told it."""
    with ledger.lock:
        known = dict(ledger.persons.get(psn_no, {}))
    answer: dict[str, Any] = {**DEFAULTS, "psn_name": f"参保人{psn_no[-4:]}", "certno": psn_no, **known,
                              "psn_no": psn_no}
    born, sex = _from_certno(str(answer["certno"]))
    answer.setdefault("brdy", born.isoformat())
    answer.setdefault("gend", sex)
    answer["age"] = age(answer["brdy"])
    return answer


def _from_certno(certno: str) -> tuple[date, str]:
    match = _RESIDENT_ID.fullmatch(certno)
    if match is not None:
        try:
            born = datetime.strptime(match["birth"], "%Y%m%d").date()
        except ValueError:
            pass
        else:
            return born, "1" if int(match["sex"]) % 2 else "2"
    return date(1980, 1, 1), "9"


def age(brdy: str, today: date | None = None) -> Decimal:
    """年龄 in whole years (数值型 4,1) on ``today``."""
    born = datetime.strptime(brdy[:10], "%Y-%m-%d").date()
    today = today or date.today()
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return Decimal(max(years, 0)).quantize(Decimal("0.1"))


def patient_cert_type(psn_cert_type: str) -> str:
    """患者证件类别 (dictionary patn_cert_type, 4103) of a 人员证件类型 (psn_cert_type): the two
    dictionaries share 01 居民身份证; any other certificate is 99 其他身份证件 here."""
    return "01" if psn_cert_type == "01" else "99"
