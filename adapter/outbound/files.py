"""9101 file upload and 9102 file download (reference §2.3, §3.5).

Upload has two forms in use and the centre accepts one of them per region
(``RegionProfile.file_upload``): ``base64`` puts the zip into ``fsUploadIn.in`` as Base64 text;
``multipart`` sends the message as a ``jsonStr`` part and the zip as a ``file`` part.
Download answers with the zip itself (application/octet-stream) or, on failure, a JSON
envelope; both are handled.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from adapter.errors import BusinessRejection
from adapter.outbound.client import CentreClient
from adapter.plugin.api import RegionProfile

UPLOAD = "9101"
DOWNLOAD = "9102"
#: fixmedins_code for files the centre publishes to everyone (catalogues)
PUBLIC_FILES = "plc"


@dataclass(frozen=True)
class UploadedFile:
    """What 9101 answers: the number to name the file by in later calls (3202, 9102)."""

    file_qury_no: str
    filename: str
    dld_endtime: str


class FileTransfer:
    """Uploads and downloads files through one centre client."""

    def __init__(self, client: CentreClient, region: RegionProfile, fixmedins_code: str) -> None:
        self._client = client
        self._region = region
        self._fixmedins_code = fixmedins_code

    def upload(self, filename: str, content: bytes) -> UploadedFile:
        """Upload a zip; the reply's file_qury_no names it from then on."""
        upload_in: dict[str, Any] = {"filename": filename, "fixmedins_code": self._fixmedins_code}
        if self._region.file_upload == "multipart":
            _, reply = self._client.call(
                UPLOAD, {"fsUploadIn": upload_in}, message_id=None, attachment=(filename, content)
            )
        else:
            upload_in = {"in": base64.b64encode(content).decode("ascii"), **upload_in}
            _, reply = self._client.call(UPLOAD, {"fsUploadIn": upload_in}, message_id=None)
        output: dict[str, Any] = reply.output if isinstance(reply.output, dict) else {}
        inner = output.get("fsUploadOut")
        node: dict[str, Any] = inner if isinstance(inner, dict) else output
        if not node.get("file_qury_no"):
            raise BusinessRejection("9101 answered without file_qury_no")
        return UploadedFile(
            str(node["file_qury_no"]), str(node.get("filename") or filename), str(node.get("dld_endtime") or "")
        )

    def download(self, file_qury_no: str, filename: str, public: bool = False) -> bytes:
        """The file's bytes. ``public`` is for files the centre publishes (catalogues)."""
        code = PUBLIC_FILES if public else self._fixmedins_code
        _, reply = self._client.call(
            DOWNLOAD,
            {"fsDownloadIn": {"file_qury_no": file_qury_no, "filename": filename, "fixmedins_code": code}},
            message_id=None,
        )
        if reply.content is None:
            raise BusinessRejection(
                f"9102 for {filename} ({file_qury_no}) answered JSON without a file: "
                f"{reply.err_msg or 'no err_msg'}"
            )
        return reply.content
