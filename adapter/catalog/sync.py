"""Keeping catalogues current: ask the centre for what is newer than the active version's
``ver``, download the file with 9102 (fixmedins_code "plc"), validate and switch it in."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.catalog.reader import CatalogFile, ZipLimits
from adapter.catalog.store import CatalogStore, VersionInfo
from adapter.config import CatalogConfig
from adapter.errors import BusinessRejection, ConfigError, FileFormatError
from adapter.outbound.client import CentreClient
from adapter.outbound.files import FileTransfer
from adapter.plugin.api import RegionProfile
from adapter.plugin.catalogues import CatalogSpec
from adapter.progress import SILENT, Reporter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    kind: str
    #: "switched", "up to date"
    outcome: str
    version: VersionInfo | None
    rows_in_file: int


def limits_from(config: CatalogConfig) -> ZipLimits:
    return ZipLimits(
        max_unpacked_bytes=config.max_unpacked_mb * 1024 * 1024,
        max_ratio=config.max_compression_ratio,
        accept_gb18030=not config.refuse_gb18030,
    )


def spec_for(region: RegionProfile, kind: str) -> CatalogSpec:
    try:
        return region.catalogues[kind]
    except KeyError:
        known = ", ".join(sorted([*region.catalogues, *region.policies])) or "none"
        raise ConfigError(f"region {region.name} describes no catalogue {kind} (it has {known})") from None


class CatalogSync:
    def __init__(self, client: CentreClient, files: FileTransfer, region: RegionProfile,
                 catalogs: CatalogStore, config: CatalogConfig, progress: Reporter = SILENT) -> None:
        self.client = client
        self.progress = progress
        self.files = files
        self.region = region
        self.catalogs = catalogs
        self.config = config

    def sync(self, kind: str, accept_mass_change: bool = False) -> SyncResult:
        """One incremental download of ``kind``. Raises CatalogRefused when the file is bad
        (its version is kept as refused, with the report) or a DeliveryError."""
        spec = spec_for(self.region, kind)
        active = self.catalogs.active(kind)
        if spec.paged:
            return self._sync_paged(spec, active, accept_mass_change)
        ver = active.ver if active is not None else self.region.catalogue_initial_ver
        _, reply = self.client.call(kind, {"data": {"ver": ver}}, message_id=None)
        output: dict[str, Any] = reply.output if isinstance(reply.output, dict) else {}
        if not output.get("file_qury_no") or not output.get("filename"):
            raise BusinessRejection(f"{kind} answered without file_qury_no/filename")
        declared = int(output.get("data_cnt") or output.get("data_cn") or 0)  # some regions misspell it
        if declared == 0:
            logger.info("catalogue %s is up to date at %s", kind, ver, extra={"action": "catalog_up_to_date"})
            return SyncResult(kind, "up to date", active, 0)
        content = self.files.download(str(output["file_qury_no"]), str(output["filename"]), public=True)
        with tempfile.TemporaryDirectory(prefix="yibao-catalog-") as scratch:
            path = Path(scratch) / Path(str(output["filename"])).name
            path.write_bytes(content)
            del content
            with self.progress.start("catalog", kind, total=declared) as progress:
                version = self.catalogs.ingest(
                    spec, CatalogFile(path, limits_from(self.config)),
                    source=f"{kind} ver>{ver} {output['filename']} ({output['file_qury_no']})",
                    declared_rows=declared, accept_mass_change=accept_mass_change,
                    max_retire_share=self.config.max_retire_share, progress=progress.advance,
                )
        logger.info("catalogue %s switched to %s (%d rows in the file, %d in all)", kind, version.ver,
                    version.rows_in_file, version.rows_total, extra={"action": "catalog_switched"})
        return SyncResult(kind, "switched", version, version.rows_in_file)

    def _sync_paged(self, spec: CatalogSpec, active: VersionInfo | None, accept_mass_change: bool) -> SyncResult:
        since = active.ver if active is not None else PAGED_INITIAL_UPDT_TIME
        pages = PagedRows(self.client, spec, since, self.config.page_size)
        if pages.record_counts == 0:
            return SyncResult(spec.kind, "up to date", active, 0)
        with self.progress.start("catalog", spec.kind, total=pages.record_counts) as progress:
            version = self.catalogs.ingest(
                spec, pages, source=f"{spec.kind} updt_time>{since} ({pages.record_counts} records)",
                accept_mass_change=accept_mass_change, max_retire_share=self.config.max_retire_share,
                progress=progress.advance,
            )
        return SyncResult(spec.kind, "switched", version, version.rows_in_file)


#: the lower bound of a first paged download
PAGED_INITIAL_UPDT_TIME = "1970-01-01 00:00:00"


def query_day(since: str) -> str:
    """The ``updt_time`` a paged query sends for the lower bound ``since`` (the active version:
    the latest updt_time of its items). The edition's tables (1304, 1312, 1316-1319 输入) type
    it 日期型, yyyy-MM-dd: the day of ``since``. The edition does not say how the centre
    compares that day with its items' update times; the simulated centre answers what was
    updated after the day began, so items of that day later than midnight come again and are
    merged, and none is missed."""
    return since[:10]


class PagedRows:
    """The items of a paged query (the edition's 输入: updt_time 日期型, page_num, page_size;
    the platform's page: firstPage, lastPage, pages, recordCounts, data[] of the items the
    edition's 输出 lists) as catalogue rows, page by page."""

    encoding = "utf-8"

    def __init__(self, client: CentreClient, spec: CatalogSpec, since: str, page_size: int) -> None:
        self.client = client
        self.spec = spec
        self.since = since
        self.page_size = page_size
        self._first = self._page(1)
        self.record_counts = int(self._first.get("recordCounts") or 0)

    @property
    def text_name(self) -> str:
        return f"{self.spec.kind} query (updt_time>{self.since})"

    def _page(self, number: int) -> dict[str, Any]:
        _, reply = self.client.call(self.spec.kind, {"data": {
            "updt_time": query_day(self.since), "page_num": number, "page_size": self.page_size}}, message_id=None)
        output = reply.output if isinstance(reply.output, dict) else {}
        if not isinstance(output.get("data"), list):
            raise BusinessRejection(f"{self.spec.kind} page {number} answered without data[]")
        return output

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        page, number, line = self._first, 1, 0
        while True:
            for item in page["data"]:
                line += 1
                yield line, [str(item.get(name) if item.get(name) is not None else "")
                             for name in self.spec.paged_fields]
            last = page.get("lastPage") in (True, "true", 1, "1") or number >= int(page.get("pages") or 0)
            if last or not page["data"]:
                break
            number += 1
            page = self._page(number)
        if line != self.record_counts:
            raise FileFormatError(f"the query declared recordCounts={self.record_counts} but "
                                  f"{line} records came in {number} page(s)")
