"""The simulated centre's catalogue downloads (reference §3.4): ``data.ver`` in, a file of the
rows newer than it published for 9102 out (file_qury_no, filename, data_cnt).

``FaultPlan.catalogue_fault`` makes it serve a broken or hostile file instead, so every
refusal of the adapter's validation can be shown end to end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from adapter.plugin.catalogues import CatalogSpec
from adapter.rehearsal.centre import files
from adapter.rehearsal.centre.checks import Refusal, charge_type, list_type, node, require
from adapter.rehearsal.centre.faults import FaultPlan
from adapter.rehearsal.centre.ledger import CentreLedger
from adapter.rehearsal.sample_catalogues import CatalogRow, row_fields
from adapter.spec.tables import Edition, FieldTable, load_edition
from adapter.zipped_text import zip_members

#: what catalogue_fault may ask for
CATALOGUE_FAULTS = (
    "not_zip", "truncated", "two_members", "zip_slip", "bomb", "gbk", "mixed_encoding",
    "few_columns", "bad_code", "bad_date", "empty_required", "duplicate", "regression",
    "count_mismatch", "mass_retire", "bom_crlf", "not_txt",
)


def serve(document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan,
          specs: Mapping[str, CatalogSpec], edition: Edition | None = None) -> Any:
    """Answer a catalogue download (``data.ver`` in) or paged query (see :func:`_serve_page`) of
    the region's catalogues, ``specs``; ``edition``: the region's tables (the default edition
    without one)."""
    infno = str(document["infno"])
    spec = specs.get(infno)
    if spec is None:
        raise Refusal(f"目录[{infno}]不提供下载")
    if spec.paged:
        return _serve_page(infno, document, ledger, faults, edition or load_edition())
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


def _serve_page(infno: str, document: Mapping[str, Any], ledger: CentreLedger, faults: FaultPlan,
                edition: Edition) -> Any:
    """A paged query (1304, 1312, 1316-1319): as the edition's input says, ``updt_time`` (日期型,
    "根据本地更新时间获取大于本地更新时间的…信息"), ``page_num`` and ``page_size``; one page of
    the items updated after that day began, each with the fields of the edition's output table.

    The page is wrapped as the platform pages every query (firstPage, lastPage, pageNum,
    pageSize, size, startRow, pages, recordCounts, data): the edition lists only an item's
    fields. An item's updt_time is the time the centre updated it (yyyy-MM-dd HH:mm:ss), finer
    than the 日期型 the edition writes, so that the next query's lower bound orders updates of
    one day (see adapter.rehearsal.centre.tables.DEVIATIONS)."""
    data = node(document, "data")
    require(data, ("updt_time", "page_num", "page_size"), "目录查询")
    try:
        page_num, page_size = int(data["page_num"]), int(data["page_size"])
    except (TypeError, ValueError):
        raise Refusal("page_num 和 page_size 必须为数字") from None
    if not (1 <= page_num <= 9999 and 1 <= page_size <= 1000):
        raise Refusal("page_num 应在1-9999之间, page_size 应在1-1000之间")
    since = _since(data["updt_time"])
    with ledger.lock:
        items = sorted((dict(i) for i in ledger.catalogues.get(infno, []) if str(i["updt_time"]) > since),
                       key=lambda i: (str(i["updt_time"]), str(i.get("rid") or ""), str(i.get("hilist_code") or "")))
    count = len(items)
    if faults.catalogue_fault == "bad_code" and items:
        items[0]["hilist_code"] = "?"
    pages = max(1, -(-count // page_size))
    chunk = items[(page_num - 1) * page_size: page_num * page_size]
    declared = count + 5 if faults.catalogue_fault == "count_mismatch" else count
    fields = _item_fields(edition, infno)
    area = str(document.get("mdtrtarea_admvs") or "")
    return {
        "firstPage": page_num == 1, "lastPage": page_num >= pages, "pageNum": page_num, "pageSize": page_size,
        "size": len(chunk), "startRow": (page_num - 1) * page_size + 1, "pages": pages,
        "recordCounts": declared, "data": [_item(fields, item, area) for item in chunk],
    }


def _since(value: Any) -> str:
    """The lower bound of a paged query as the centre compares it with its items' updt_time:
    the start of the day sent (a time, where one was sent anyway, as it is)."""
    text = str(value)
    try:
        return datetime.strptime(text, "%Y-%m-%d").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        pass
    try:
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise Refusal(f"目录查询[updt_time]({text})应为日期yyyy-MM-dd") from None


def _item_fields(edition: Edition, infno: str) -> tuple[FieldTable, ...]:
    """The fields of one item of a paged query's answer, as the edition's output table lists them."""
    return tuple(f for node_table in edition.transaction(infno).output for f in node_table.fields)


#: what the simulated centre answers in a required output field its catalogue rows lack (a
#: plausible value of the field's dictionary; 目录类别 and 医疗收费项目类别 from the code's kind)
_ITEM_DEFAULTS = {
    "chrgitm_lv": "01", "lmt_used_flag": "0", "med_use_flag": "1", "matn_used_flag": "0", "hilist_use_type": "1",
    "lmt_cpnd_type": "1", "hilist_lmtpric_type": "3", "overlmt_dspo_way": "1", "selfpay_prop_psn_type": "310",
    "selfpay_prop_type": "10", "selfpay_prop": "0", "vali_flag": "1",
}


def _item(fields: tuple[FieldTable, ...], held: Mapping[str, Any], area: str) -> dict[str, Any]:
    """One catalogue row in the edition's output fields: what the centre holds of it, and in a
    required field it holds nothing for, a value of this simulation's choice (参保机构医保区划
    and 统筹区 the centre's area, 创建时间 the day of its update, the others
    :data:`_ITEM_DEFAULTS`, 创建人/经办人 the centre itself)."""
    code = str(held.get("hilist_code") or held.get("med_list_codg") or "")
    chosen = {**_ITEM_DEFAULTS, "insu_admdvs": area, "poolarea_no": area, "list_type": list_type(code),
              "med_chrgitm_type": charge_type(code), "crte_time": str(held.get("updt_time") or "")[:10],
              "opt_time": str(held.get("updt_time") or "")[:10], "med_list_codg": code, "hilist_code": code}
    item: dict[str, Any] = {}
    for field in fields:
        value = held.get(field.code)
        if value in (None, "") and field.required:
            value = chosen.get(field.code, "模拟中心" if field.type in ("字符型", "") else None)
        if value not in (None, ""):
            item[field.code] = value
    return item
