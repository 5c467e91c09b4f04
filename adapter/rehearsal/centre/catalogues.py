"""The simulated centre's catalogue downloads (reference §3.4): ``data.ver`` in, a file of the
rows newer than it published for 9102 out (file_qury_no, filename, data_cnt).

``FaultPlan.catalogue_fault`` makes it serve a broken or hostile file instead, so every
refusal of the adapter's validation can be shown end to end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from adapter.plugin.catalogues import CatalogSpec
from adapter.rehearsal.centre import files
from adapter.rehearsal.centre.checks import Refusal, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.rehearsal.sample_catalogues import CatalogRow, row_fields
from adapter.zipped_text import zip_members

#: what catalogue_fault may ask for
CATALOGUE_FAULTS = (
    "not_zip", "truncated", "two_members", "zip_slip", "bomb", "gbk", "mixed_encoding",
    "few_columns", "bad_code", "bad_date", "empty_required", "duplicate", "regression",
    "count_mismatch", "mass_retire", "bom_crlf", "not_txt",
)


def serve(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan,
          specs: Mapping[str, CatalogSpec]) -> Any:
    infno = str(document["infno"])
    spec = specs.get(infno)
    if spec is None:
        raise Refusal(f"目录[{infno}]不提供下载")
    if spec.paged:
        return _serve_page(infno, document, ledger, faults)
    data = node(document, "data")
    require(data, ("ver",), "目录下载")
    ver = str(data["ver"])
    with ledger.lock:
        rows = [row for row in ledger.catalogues.get(infno, []) if row.version > ver]
    fault = faults.catalogue_fault
    filename = f"{infno}_{ledger.next_serial():08d}.txt.zip"
    content, declared = _build(spec, rows, fault, filename)
    number = files.store(ledger, filename, content, prefix="fsi/plc/")
    return {
        "file_qury_no": number,
        "filename": filename,
        "dld_end_time": (date.today() + timedelta(days=1)).isoformat(),
        "data_cnt": declared,
    }


def _build(spec: CatalogSpec, rows: list[CatalogRow], fault: str, filename: str) -> tuple[bytes, int]:
    member = filename.removesuffix(".zip")
    declared = len(rows)
    if fault == "duplicate" and rows:
        rows = [*rows, rows[0]]
        declared = len(rows)
    elif fault == "regression" and rows:
        rows = [replace(rows[0], version="0"), *rows[1:]]
    elif fault == "mass_retire":
        rows = [replace(row, valid="0") for row in rows]
    elif fault == "bad_code" and rows:
        rows = [replace(rows[0], code="NOT-A-CODE"), *rows[1:]]
    elif fault == "bad_date" and rows:
        rows = [replace(rows[0], begin="2021/13/45"), *rows[1:]]
    elif fault == "empty_required" and rows:
        rows = [replace(rows[0], name=""), *rows[1:]]
    elif fault == "count_mismatch":
        declared += 5
    lines = ["\t".join(row_fields(spec, row)) for row in rows]
    if fault == "few_columns" and lines:
        lines[-1] = "\t".join(lines[-1].split("\t")[: spec.columns - 3])
    text = "".join(line + "\n" for line in lines)
    if fault == "not_zip":
        return text.encode("utf-8"), declared
    if fault == "bom_crlf":  # tolerated: a BOM and Windows line ends
        return zip_members({member: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode("utf-8")}), declared
    if fault == "not_txt":
        return zip_members({member.removesuffix(".txt") + ".xlsx": text.encode("utf-8")}), declared
    if fault == "gbk":
        return zip_members({member: text.encode("gb18030")}), declared
    if fault == "mixed_encoding":
        return zip_members({member: text.encode("utf-8") + "错误编码的行\n".encode("gbk")}), declared
    if fault == "two_members":
        return zip_members({member: text.encode("utf-8"), "readme.txt": b"x"}), declared
    if fault == "zip_slip":
        return zip_members({"../../etc/" + member: text.encode("utf-8")}), declared
    if fault == "bomb":
        return zip_members({member: b"0" * (50 * 1024 * 1024)}), declared
    content = zip_members({member: text.encode("utf-8")})
    if fault == "truncated":
        return content[: len(content) * 2 // 3], declared
    return content, declared


def _serve_page(infno: str, document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan) -> Any:
    """A paged query (1312, 1316-1319): items updated after ``updt_time``, one page of them."""
    data = node(document, "data")
    require(data, ("updt_time", "page_num", "page_size"), "目录查询")
    try:
        page_num, page_size = int(data["page_num"]), int(data["page_size"])
    except (TypeError, ValueError):
        raise Refusal("page_num 和 page_size 必须为数字") from None
    if not (1 <= page_num <= 9999 and 1 <= page_size <= 1000):
        raise Refusal("page_num 应在1-9999之间, page_size 应在1-1000之间")
    since = str(data["updt_time"])
    with ledger.lock:
        items = sorted((dict(i) for i in ledger.catalogues.get(infno, []) if str(i["updt_time"]) > since),
                       key=lambda i: (str(i["updt_time"]), str(i["hilist_code"])))
    count = len(items)
    if faults.catalogue_fault == "bad_code" and items:
        items[0]["hilist_code"] = "?"
    pages = max(1, -(-count // page_size))
    chunk = items[(page_num - 1) * page_size: page_num * page_size]
    declared = count + 5 if faults.catalogue_fault == "count_mismatch" else count
    return {
        "firstPage": page_num == 1, "lastPage": page_num >= pages, "pageNum": page_num, "pageSize": page_size,
        "size": len(chunk), "startRow": (page_num - 1) * page_size + 1, "pages": pages,
        "recordCounts": declared, "data": chunk,
    }
