"""National code formats (国家医保信息业务编码标准), reference §4.

No source documents check digits for these codes, so only length, prefix and character class
are checked. Formats marked [S] in the reference are deliberately lenient.
"""

from __future__ import annotations

import re
from enum import StrEnum


class CodeKind(StrEnum):
    WESTERN_DRUG = "western_drug"
    PATENT_MEDICINE = "patent_medicine"
    TCM_PIECES = "tcm_pieces"
    INSTITUTION_PREPARATION = "institution_preparation"
    CONSUMABLE = "consumable"
    SERVICE_ITEM = "service_item"


#: X + ATC level-5 class (A01AB) + generic name (letter + 3 digits) + dosage form
#: (letter + 3 digits) + spec/pack (4 digits) + manufacturer (5 digits) = 23 characters.
WESTERN_DRUG = re.compile(r"^X[A-Z]\d{2}[A-Z]{2}[A-Z]\d{3}[A-Z]\d{3}\d{4}\d{5}$")
#: [S] reported as 20 characters; accepted as Z + 10..49 letters/digits.
PATENT_MEDICINE = re.compile(r"^Z[A-Z0-9]{10,49}$")
#: [S] T + standard + efficacy class + name; treated as opaque up to 50 characters.
TCM_PIECES = re.compile(r"^T[A-Z0-9]{5,49}$")
#: [S] institution preparations reportedly start with J.
INSTITUTION_PREPARATION = re.compile(r"^J[A-Z0-9]{5,49}$")
#: C + 6-digit class + 3-digit generic name + 5-digit feature + 5-digit manufacturer (20),
#: or the 27-character form with a 7-character product suffix (1306A).
CONSUMABLE = re.compile(r"^C\d{19}([A-Z0-9]{7})?$")
#: 15-digit national service code, optionally "-" + a regional price-item code.
SERVICE_ITEM = re.compile(r"^\d{15}(-[0-9A-Za-z.]{1,34})?$")

#: 医保医师: D + 6-digit admin division + 6-digit serial.
DOCTOR = re.compile(r"^D\d{12}$")
#: Pooling area, GB/T 2260 based.
ADMDVS = re.compile(r"^\d{6}$")

_MED_LIST = (
    (CodeKind.WESTERN_DRUG, WESTERN_DRUG),
    (CodeKind.PATENT_MEDICINE, PATENT_MEDICINE),
    (CodeKind.TCM_PIECES, TCM_PIECES),
    (CodeKind.INSTITUTION_PREPARATION, INSTITUTION_PREPARATION),
    (CodeKind.CONSUMABLE, CONSUMABLE),
    (CodeKind.SERVICE_ITEM, SERVICE_ITEM),
)


def classify_med_list_codg(code: str) -> CodeKind | None:
    """Which national catalogue a med_list_codg belongs to, or None if it fits none."""
    for kind, pattern in _MED_LIST:
        if pattern.match(code):
            return kind
    return None


def describe_med_list_problem(code: str) -> str:
    """A sentence a person can act on for a med_list_codg that fits no format."""
    hint = {
        "X": "a western drug code is 23 characters: X + ATC class + name + form + spec + maker",
        "C": "a consumable code is C + 19 digits (20), or 27 characters with the product suffix",
        "Z": "a patent-medicine code is Z followed by letters and digits",
    }.get(code[:1], "expected a drug (X/Z/T/J), consumable (C) or 15-digit service-item code")
    return f"national code {code!r} has the wrong format ({len(code)} characters): {hint}"
