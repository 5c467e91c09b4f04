"""The common request envelope (reference §1.2) and reading the response (§1.3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from adapter import jsonio
from adapter.plugin.api import RegionProfile

INF_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Institution:
    """Header values that come from configuration."""

    fixmedins_code: str
    fixmedins_name: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str
    recer_sys_code: str
    infver: str
    opter_type: str
    opter: str
    opter_name: str


def build_envelope(
    *,
    infno: str,
    msgid: str,
    institution: Institution,
    region: RegionProfile,
    input_payload: Mapping[str, Any],
    sign_no: str = "",
    insuplc_admdvs: str | None = None,
    inf_time: datetime | None = None,
) -> dict[str, Any]:
    """All header fields in the spec's order, then ``input``."""
    envelope: dict[str, Any] = {
        "infno": infno,
        "msgid": msgid,
        "mdtrtarea_admvs": institution.mdtrtarea_admvs,
        "insuplc_admdvs": insuplc_admdvs if insuplc_admdvs is not None else institution.insuplc_admdvs,
        "recer_sys_code": institution.recer_sys_code,
        "dev_no": "",
        "dev_safe_info": "",
        "cainfo": "",
        "signtype": "",
        "infver": institution.infver,
        "opter_type": institution.opter_type,
        "opter": institution.opter,
        "opter_name": institution.opter_name,
        "inf_time": (inf_time or datetime.now()).strftime(INF_TIME_FORMAT),
        "fixmedins_code": institution.fixmedins_code,
        "fixmedins_name": institution.fixmedins_name,
        "sign_no": sign_no,
    }
    envelope.update(region.extra_envelope)
    envelope["input"] = dict(input_payload)
    return envelope


def encode(document: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with Chinese kept as is and Decimal amounts written as exact numbers."""
    return jsonio.dumps(document).encode("utf-8")


def decode(body: bytes) -> Any:
    """Parse a JSON body; numbers with decimals become Decimal so amounts stay exact."""
    return jsonio.loads(_text(body))


def _text(body: bytes) -> str:
    # The centre answers UTF-8; a few front-end processors answer GB18030. Accept both.
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("gb18030")


@dataclass(frozen=True)
class CentreReply:
    """A parsed response envelope."""

    infcode: int
    err_msg: str
    inf_refmsgid: str
    output: Any
    #: when the centre received the request (refmsg_time, yyyyMMddHHmmssSSS on the centre's
    #: clock); None when the answer gives none that can be read
    received_at: datetime | None = None
    #: a file the centre answered with instead of JSON (9102: application/octet-stream)
    content: bytes | None = None

    @property
    def ok(self) -> bool:
        return self.infcode == 0


def parse_reply(document: Any) -> CentreReply:
    """Read the response envelope; infcode may be a number or a string ("0", "-1")."""
    if not isinstance(document, Mapping) or "infcode" not in document:
        raise ValueError("the reply is not a centre envelope (no infcode)")
    raw = document["infcode"]
    try:
        infcode = int(Decimal(str(raw).strip()))
    except (ArithmeticError, ValueError) as exc:
        raise ValueError(f"infcode {raw!r} is not a number") from exc
    return CentreReply(
        infcode=infcode,
        err_msg=str(document.get("err_msg") or ""),
        inf_refmsgid=str(document.get("inf_refmsgid") or ""),
        output=document.get("output"),
        received_at=answer_time(document.get("refmsg_time")),
    )


def answer_time(value: Any) -> datetime | None:
    """An envelope time (refmsg_time, respond_time: yyyyMMddHHmmssSSS, or without the
    milliseconds) as a datetime; None when absent or unreadable: such an answer is not judged
    by its time."""
    text = str(value or "").strip()
    if not text.isdigit() or len(text) not in (14, 17):
        return None
    text = text.ljust(17, "0")
    # By position: strptime would take "13" for a month of "1" and a day of "3".
    try:
        return datetime(int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
                        int(text[12:14]), int(text[14:17]) * 1000)
    except ValueError:
        return None
