"""Streaming the rows of a catalogue zip: safety checks on the archive, the encoding found,
one row (TAB-separated fields) at a time so memory does not grow with the file."""

from __future__ import annotations

import codecs
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from adapter.errors import FileFormatError


class RowSource(Protocol):
    """Where catalogue rows come from: a file (CatalogFile) or a paged query (PagedRows)."""

    @property
    def text_name(self) -> str: ...

    @property
    def encoding(self) -> str: ...

    def rows(self) -> Iterator[tuple[int, list[str]]]: ...


@dataclass(frozen=True)
class ZipLimits:
    """Caps that keep a hostile archive from exhausting memory or disk."""

    max_unpacked_bytes: int = 4 * 1024**3
    #: unpacked / packed; real TAB catalogues compress about 5-15x
    max_ratio: float = 200.0
    #: GB18030/GBK text is converted (and the conversion reported) instead of refused
    accept_gb18030: bool = True


class CatalogFile:
    """One catalogue archive on disk. ``rows()`` may be iterated more than once."""

    def __init__(self, path: Path, limits: ZipLimits | None = None) -> None:
        self.path = path
        self.limits = limits or ZipLimits()
        self.encoding = "utf-8"
        self._member: zipfile.ZipInfo | None = None
        #: lines and unpacked bytes read before the chunk being read (for :meth:`estimated_rows`)
        self._lines_seen = self._bytes_seen = 0

    @property
    def text_name(self) -> str:
        """The text file's name as reports use it (the zip name minus .zip, as the spec says)."""
        return self._member.filename if self._member is not None else self.path.name.removesuffix(".zip")

    @property
    def member(self) -> zipfile.ZipInfo:
        """The one text member, after the archive's safety checks (FileFormatError if not)."""
        if self._member is None:
            self._member = self._check_archive()
        return self._member

    def _check_archive(self) -> zipfile.ZipInfo:
        try:
            with zipfile.ZipFile(self.path) as archive:
                members = [info for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError) as exc:
            raise FileFormatError(f"{self.path.name}: not a readable zip archive ({exc})") from exc
        if len(members) != 1:
            names = ", ".join(info.filename for info in members[:5]) or "none"
            raise FileFormatError(f"{self.path.name}: expected one text file in the archive, found "
                                  f"{len(members)} ({names})")
        info = members[0]
        member_path = PurePosixPath(info.filename.replace("\\", "/"))
        if member_path.is_absolute() or ".." in member_path.parts or len(member_path.parts) > 1:
            raise FileFormatError(f"{self.path.name}: member {info.filename!r} has a path; refused (zip slip)")
        if not info.filename.lower().endswith(".txt"):
            raise FileFormatError(f"{self.path.name}: member {info.filename!r} is not a .txt file")
        if info.file_size > self.limits.max_unpacked_bytes:
            raise FileFormatError(f"{self.path.name}: {info.filename} unpacks to {info.file_size} bytes, "
                                  f"more than the cap of {self.limits.max_unpacked_bytes}")
        ratio = info.file_size / max(info.compress_size, 1)
        if ratio > self.limits.max_ratio and info.file_size > 1024 * 1024:
            raise FileFormatError(f"{self.path.name}: compression ratio {ratio:.0f}:1 is above "
                                  f"{self.limits.max_ratio:.0f}:1 (a zip bomb?); refused")
        return info

    def estimated_rows(self) -> int | None:
        """The file's lines, guessed from its unpacked size and the lines per byte read so far (a
        progress total when the centre declared none); None until the first chunk is through."""
        if not self._bytes_seen or self._member is None:
            return None
        return round(self._lines_seen * self._member.file_size / self._bytes_seen)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) for every non-empty line. Decoded as UTF-8 (a BOM dropped);
        on the first undecodable byte the file is read again as GB18030, if allowed."""
        try:
            yield from self._rows("utf-8-sig")
            self.encoding = "utf-8"
        except _NotUtf8 as exc:
            if exc.saw_non_ascii:
                raise FileFormatError(f"{self.member.filename} line {exc.line}: not UTF-8, though earlier "
                                      "lines were UTF-8 Chinese text (mixed encodings); refused") from None
            if not self.limits.accept_gb18030:
                raise FileFormatError(f"{self.member.filename} line {exc.line}: not UTF-8 (GB18030/GBK "
                                      "files are refused by configuration)") from None
            self.encoding = "gb18030"
            yield from self._rows("gb18030", skip=exc.yielded)

    def _rows(self, encoding: str, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
        decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        line_no = 0
        unpacked = 0
        non_ascii = False
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.member) as raw:
                pending = ""
                for chunk in _chunks(raw):
                    self._lines_seen, self._bytes_seen = line_no, unpacked
                    unpacked += len(chunk)
                    if unpacked > self.limits.max_unpacked_bytes:
                        raise FileFormatError(f"{self.member.filename}: unpacks to more than "
                                              f"{self.limits.max_unpacked_bytes} bytes")
                    try:
                        text = pending + decoder.decode(chunk)
                        non_ascii = non_ascii or not chunk.isascii()
                    except UnicodeDecodeError as exc:
                        before = chunk[: max(exc.start, 0)]
                        bad_line = line_no + 1 + before.count(b"\n")
                        if encoding != "utf-8-sig":
                            raise FileFormatError(f"{self.member.filename} line {bad_line}: neither UTF-8 "
                                                  f"nor {encoding.upper()}; refused") from None
                        raise _NotUtf8(bad_line, line_no, non_ascii or not before.isascii()) from None
                    lines = text.split("\n")
                    pending = lines.pop()
                    for line in lines:
                        line_no += 1
                        if line_no > skip and line.strip("\r"):
                            yield line_no, line.rstrip("\r").split("\t")
                try:
                    pending += decoder.decode(b"", final=True)
                except UnicodeDecodeError:
                    if encoding != "utf-8-sig":
                        raise FileFormatError(f"{self.member.filename} line {line_no + 1}: the text ends "
                                              f"inside a character ({encoding.upper()}); refused") from None
                    raise _NotUtf8(line_no + 1, line_no, non_ascii) from None
                if pending.strip("\r"):
                    line_no += 1
                    if line_no > skip:
                        yield line_no, pending.rstrip("\r").split("\t")
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
            raise FileFormatError(f"{self.member.filename}: damaged or truncated archive after line "
                                  f"{line_no} ({exc})") from exc


class _NotUtf8(Exception):
    def __init__(self, line: int, yielded: int, saw_non_ascii: bool) -> None:
        self.line = line
        self.saw_non_ascii = saw_non_ascii
        #: lines already handed out (identical in GB18030: they were plain ASCII so far)
        self.yielded = yielded


def _chunks(raw: IO[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := raw.read(size):
        yield chunk
