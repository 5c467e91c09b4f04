"""The file format of 9101/9102 (reference §3.5): a zip holding one UTF-8, TAB-separated text.

Files that come back from some centres are GB18030/GBK instead of UTF-8, sometimes with a BOM
or CRLF line ends; :func:`text_from_zip` reads all of those and says which encoding it found.
An archive that could not be read safely is refused with a :class:`FileFormatError`.
"""

from __future__ import annotations

import io
import time
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

from adapter.errors import FileFormatError

#: refuse archives that unpack to more than this (a zip bomb costs memory, not just disk)
MAX_TEXT_BYTES = 512 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ZippedText:
    member: str
    text: str
    #: "utf-8", "utf-8-sig" or "gb18030"
    encoding: str


def zip_text(member: str, text: str) -> bytes:
    """``text`` as UTF-8 in a zip with one member (deflated)."""
    return zip_members({member: text.encode("utf-8")})


def zip_members(members: Mapping[str, bytes]) -> bytes:
    """A deflated zip of the given members, in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def zip_chunks(member: str, chunks: Iterable[str], level: int | None = None) -> bytes:
    """The text ``chunks`` make, as UTF-8 in a zip with one member (deflated), compressed as the
    chunks come: only the compressed bytes are held, never the whole text. With the default
    ``level`` the archive is the one :func:`zip_text` makes of the joined text; another deflate
    level (1 fastest .. 9 smallest) gives the same text in fewer or more bytes."""
    # What ZipFile.writestr sets for a member named by a string (ZipFile.open names it 1980).
    info = zipfile.ZipInfo(member, date_time=time.localtime(time.time())[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o600 << 16
    # ZipFile.open takes the level from the member's info, not the archive's (the attribute is
    # named so up to 3.12, and kept under that name by 3.13, which adds compress_level).
    setattr(info, "_compresslevel", level)  # noqa: B010 (a name typeshed does not declare)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive, archive.open(info, "w") as out:
        for chunk in chunks:
            out.write(chunk.encode("utf-8"))
    return buffer.getvalue()


def text_from_zip(data: bytes, max_bytes: int = MAX_TEXT_BYTES) -> ZippedText:
    """The one text member of a zip, decoded (UTF-8, UTF-8 with BOM, or GB18030)."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise FileFormatError(f"not a zip archive ({exc})") from exc
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) != 1:
            names = ", ".join(info.filename for info in members) or "none"
            raise FileFormatError(f"expected one file in the archive, found {len(members)} ({names})")
        info = members[0]
        path = PurePosixPath(info.filename.replace("\\", "/"))
        if path.is_absolute() or ".." in path.parts:
            raise FileFormatError(f"archive member {info.filename!r} has a path outside the archive")
        if info.file_size > max_bytes:
            raise FileFormatError(f"{info.filename} unpacks to {info.file_size} bytes, more than {max_bytes}")
        try:
            with archive.open(info) as member:
                raw = member.read(max_bytes + 1)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            raise FileFormatError(f"{info.filename}: the archive is damaged or truncated ({exc})") from exc
        if len(raw) > max_bytes:
            raise FileFormatError(f"{info.filename} unpacks to more than {max_bytes} bytes")
    text, encoding = decode_text(raw, info.filename)
    return ZippedText(info.filename, text.replace("\r\n", "\n"), encoding)


def decode_text(raw: bytes, name: str = "file") -> tuple[str, str]:
    """UTF-8 (a BOM is dropped), else GB18030 (a superset of GBK); neither is refused."""
    if raw.startswith(_BOM):
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        return raw.decode(encoding), encoding
    except UnicodeDecodeError as utf8_error:
        try:
            return raw.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise FileFormatError(
                f"{name} is neither UTF-8 nor GB18030 (first bad byte at offset {utf8_error.start})"
            ) from None
