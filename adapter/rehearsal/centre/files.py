"""The simulated centre's file service: 9101 upload (Base64, byte-array or multipart forms)
and 9102 download (the zip as application/octet-stream, or a JSON refusal)."""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from adapter.rehearsal.centre.checks import Refusal, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger

UPLOAD = "9101"
DOWNLOAD = "9102"
_MAX_UPLOAD = 64 * 1024 * 1024


@dataclass(frozen=True)
class FileReply:
    """A download answered with the file itself instead of a JSON envelope."""

    filename: str
    content: bytes


def store(ledger: CentreLedger, filename: str, content: bytes, prefix: str = "") -> str:
    """Keep a file for 9102; returns its file_qury_no (``prefix`` + a serial; the platform's
    own catalogue files are named like fsi/plc/...)."""
    with ledger.lock:
        number = f"{prefix}F{ledger.next_serial():012d}"
        ledger.files[number] = (filename, content)
    return number


def split_multipart(headers: Mapping[str, str], body: bytes) -> tuple[bytes, bytes | None]:
    """(the JSON message, the attached file) of a multipart/form-data request; a plain JSON
    request is returned as it is with no file."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if not content_type.lower().startswith("multipart/form-data"):
        return body, None
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError("no parts")
    parts = {part.get_param("name", header="content-disposition"): part for part in message.iter_parts()}
    if "jsonStr" not in parts or "file" not in parts:
        raise ValueError(f"expected parts jsonStr and file, got {', '.join(map(str, parts))}")
    return _decoded(parts["jsonStr"]), _decoded(parts["file"])


def _decoded(part: email.message.Message) -> bytes:
    # A leaf part decodes to bytes; a nested multipart part has no payload of its own (None).
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _content(value: Any) -> bytes:
    # The forms in use (reference §2.3): raw bytes from a multipart part, Base64 text, or a
    # JSON array of byte values (Java's Arrays.toString(byte[]), signed).
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        try:
            return bytes(int(v) & 0xFF for v in value)
        except (TypeError, ValueError):
            raise Refusal("文件内容[in]字节数组格式错误") from None
    if isinstance(value, str) and value:
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise Refusal("文件内容[in]不是合法的Base64") from None
    raise Refusal("文件内容[in]不能为空")


def upload(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    data = node(document, "fsUploadIn")
    require(data, ("filename", "fixmedins_code"), "文件上传")
    filename = str(data["filename"])
    if len(filename) > 200 or not re.fullmatch(r"[^/\\]+\.zip", filename):
        raise Refusal(f"文件名[{filename}]格式错误, 应为不含路径的zip文件名")
    content = _content(data.get("in"))
    if len(content) > _MAX_UPLOAD:
        raise Refusal("上传文件超过大小限制")
    if not content.startswith(b"PK"):
        raise Refusal(f"文件[{filename}]不是zip压缩文件")
    number = store(ledger, filename, content)
    expires = datetime.now() + timedelta(days=1)
    return {"file_qury_no": number, "filename": filename, "dld_endtime": f"{expires:%Y-%m-%d %H:%M:%S}"}


def download(document: Mapping[str, Any], ledger: CentreLedger, _faults: FaultPlan) -> Any:
    data = node(document, "fsDownloadIn")
    require(data, ("file_qury_no", "filename", "fixmedins_code"), "文件下载")
    with ledger.lock:
        held = ledger.files.get(str(data["file_qury_no"]))
    if held is None:
        raise Refusal(f"文件查询号[{data['file_qury_no']}]不存在或已过期")
    return FileReply(held[0], held[1])


HANDLERS = {UPLOAD: upload, DOWNLOAD: download}
