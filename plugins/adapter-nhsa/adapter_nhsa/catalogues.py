"""The national catalogues, built from the published edition's layouts (catalogue_layouts.json,
written by scripts/gen_catalogue_layouts.py): every 13xx file download (its TAB columns, from
the ``filename`` field's "第N列：…" note) and every paged 13xx query (its output fields).

Column numbers are not written here: each key column is named by its label in the edition
(医疗目录编码, 版本号, 有效标志, 开始日期, 结束日期, ...) and found in the layout, so a new
edition that moves a column moves the spec, and one that renames a key column fails at import.

Code patterns check length, prefix and character class only: no check-digit algorithm is
published (reference §4).

Roles. A kind is ``codes`` only when fee lines carry its codes or its codes are national
code lists with a format of their own (1301 drugs, 1305 services, 1306/1306A consumables;
1307 ICD-10 and 1308 ICD-9-CM-3, as before), *and* that format is known: ``kind_of`` picks the
catalogue a line's code belongs to by pattern, so a ``codes`` kind with a pattern that takes
any code would claim every line's code and block the lines of kinds never downloaded.
Everything else is ``reference`` (kept, compared with ``catalog diff``, checks nothing):
1302/1303/1320/1321 (their codes are on fee lines, but the edition publishes no format for
them: a region that knows it can ``replace()`` the spec with ``role="codes"`` and a pattern),
the disease and treatment lists 1309-1311, 1313 (tumour morphology), 1314/1315 (TCM diseases
and syndromes, whose codes no fee line carries), and the in-vitro diagnostic reagent data
1322-1327. 1318 is ``price_caps``.

Keys. A file kind is kept by its code column when a row is one code. Where a row pairs a code
with an insurance area (医保区划/统筹区编号) or with an operation (1310, 1311), one code may
have several rows, and a duplicate code refuses the whole download; those kinds are kept by
their record id (唯一记录号), as the paged reference lists are by ``rid``, and their code
column must not be empty.

Checked columns. Only the columns the adapter reads are checked (code, name, version,
validity, 开始日期/结束日期, restricted use; 1301 also its two pack counts, as before): a
malformed 批准日期 in a column nothing uses would otherwise refuse a whole download.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapter.plugin.api import CatalogRole, CatalogSpec

LAYOUTS: dict[str, Any] = json.loads(Path(__file__).with_name("catalogue_layouts.json").read_text(encoding="utf-8"))
#: the edition the layouts come from (RegionProfile.interface_edition names the same one)
EDITION: str = LAYOUTS["about"]["edition"]

#: a code with no published format: letters and digits (with . - / _ +), at least one digit,
#: at most 64 characters; a name, a date-less flag or an empty shift of columns fails it
GENERIC_CODE = r"(?=[^0-9]*[0-9])[0-9A-Za-z][0-9A-Za-z.\-/_+]{0,63}"
#: 医保医用耗材代码: "C" then the classification digits; 20 characters (医保通用名 level) or 27
CONSUMABLE_CODE = r"C[0-9A-Z]{19}([0-9A-Z]{7})?"


@dataclass(frozen=True)
class _FileKeys:
    """Which labelled columns of a file download matter."""

    name: str
    #: the code column's label (the kind's codes; for ``by_record`` kinds required, not the key)
    code: str = "医疗目录编码"
    role: CatalogRole = "reference"
    pattern: str = GENERIC_CODE
    #: kept by 唯一记录号 (one code may have several rows)
    by_record: bool = False
    numbers: tuple[str, ...] = ()
    short_name: str | None = None


_FILE_KEYS: dict[str, _FileKeys] = {
    "1301": _FileKeys("药品通用名", role="codes",
                      pattern=r"X[A-Z][0-9]{2}[A-Z0-9]{2}[A-Z0-9][A-Z0-9]{3}[A-Z][0-9]{3}[0-9]{9}|Z[A-Z0-9]{19,22}",
                      numbers=("包装数量", "最小包装数量")),
    "1302": _FileKeys("单味药名称"),
    "1303": _FileKeys("药品商品名"),
    "1305": _FileKeys("医疗服务项目名称", role="codes", pattern=r"[0-9]{15}(-[0-9A-Za-z.]{1,30})?"),
    "1306": _FileKeys("耗材名称", role="codes", pattern=CONSUMABLE_CODE),
    "1306A": _FileKeys("耗材名称", role="codes", pattern=r"C[0-9A-Z]{26}"),
    "1307": _FileKeys("诊断名称", code="诊断代码", role="codes", pattern=r"[A-Z][0-9]{2}(\.[0-9x]{1,3}(x[0-9]{3})?)?"),
    "1308": _FileKeys("手术操作名称", code="手术操作代码", role="codes",
                      pattern=r"[0-9]{2}(\.[0-9x]{1,4}(x[0-9]{3})?)?"),
    "1309": _FileKeys("门慢门特病种名称", code="门慢门特病种目录代码", by_record=True),
    "1310": _FileKeys("按病种结算病种名称", code="按病种结算病种目录代码", by_record=True),
    "1311": _FileKeys("日间手术病种名称", code="日间手术病种目录代码", by_record=True),
    "1313": _FileKeys("形态学分类", code="形态学分类代码"),
    "1314": _FileKeys("疾病分类名称", code="疾病分类代码"),
    "1315": _FileKeys("证候分类名称", code="证候分类代码"),
    "1320": _FileKeys("中药配方颗粒名称", code="中药配方颗粒代码", by_record=True),
    "1321": _FileKeys("医疗服务项目名称", by_record=True),
    "1322": _FileKeys("单件产品名称", code="试剂产品ID", by_record=True),
    "1323": _FileKeys("医保试剂分类码", code="试剂关联ID", by_record=True),
    "1324": _FileKeys("试剂检测指标名称", code="试剂检测指标码", by_record=True),
    "1325": _FileKeys("试剂检测指标名称", code="试剂编码ID", by_record=True),
    "1326": _FileKeys("注册备案产品名称", code="注册备案号", by_record=True),
    "1327": _FileKeys("试剂分类一级名称", code="试剂分类代码", by_record=True),
}

_RECORD_ID = ("唯一记录号", "数据唯一记录号")
_RESTRICTED = ("限制使用范围", "医保限用范围")


@dataclass(frozen=True)
class _PagedKeys:
    """Which output fields of a paged query matter. ``updt_time`` is the version (the next
    query's lower bound; the query's input, as the edition's 输入 tables have it for every paged
    kind, is ``updt_time`` 日期型 with ``page_num`` and ``page_size``: adapter.catalog.sync
    sends the version's day), vali_flag/begndate/enddate the validity."""

    #: no query of the edition outputs a name for 1316/1318/1319: the national code stands in
    name: str
    required: tuple[str, ...]
    code: str = "rid"
    role: CatalogRole = "reference"
    pattern: str = r"[A-Za-z0-9]{1,40}"
    price: str | None = None


_PAGED_KEYS: dict[str, _PagedKeys] = {
    "1304": _PagedKeys("drug_genname", ("med_list_codg",)),
    "1312": _PagedKeys("hilist_name", ("hilist_code",)),
    "1316": _PagedKeys("med_list_codg", ("hilist_code",)),
    "1317": _PagedKeys("medins_list_name", ("med_list_codg",)),
    # Kept by code: a code's cap is what lines are checked against.
    "1318": _PagedKeys("hilist_code", ("hilist_pric_uplmt_amt", "rid"), code="hilist_code", role="price_caps",
                       pattern=r"[A-Z0-9][A-Za-z0-9.\-]{4,49}", price="hilist_pric_uplmt_amt"),
    "1319": _PagedKeys("hilist_code", ("hilist_code",)),
}


def _short_name(layout: dict[str, Any]) -> str:
    """西药中成药目录下载 -> 西药中成药, 医保目录信息查询 -> 医保目录; a variant by its listed name
    (1306A: 27位医用耗材)."""
    name = str(layout.get("listed_as") if layout.get("variant_of") else layout["name"])
    for suffix in ("信息查询", "目录下载", "下载", "查询"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def _file_spec(kind: str, layout: dict[str, Any], keys: _FileKeys) -> CatalogSpec:
    numbers = {str(label): int(number) for number, label in layout["columns"]}

    def column(*labels: str) -> int:
        for label in labels:
            if label in numbers:
                return numbers[label]
        raise KeyError(f"catalogue {kind} of edition {EDITION} has no column {' or '.join(labels)}")

    def optional(*labels: str) -> int | None:
        return next((numbers[label] for label in labels if label in numbers), None)

    code = column(keys.code)
    return CatalogSpec(
        kind=kind, name=keys.short_name or _short_name(layout), columns=len(numbers),
        code_column=column(*_RECORD_ID) if keys.by_record else code,
        name_column=column(keys.name), version_column=column("版本号"),
        code_pattern=GENERIC_CODE if keys.by_record else keys.pattern,
        valid_column=column("有效标志"), begin_column=optional("开始日期"), end_column=optional("结束日期"),
        restricted_column=optional(*_RESTRICTED), required=(code,) if keys.by_record else (),
        number_columns=tuple(column(label) for label in keys.numbers), role=keys.role,
    )


def _paged_spec(kind: str, layout: dict[str, Any], keys: _PagedKeys) -> CatalogSpec:
    fields = tuple(str(code) for code, _label in layout["fields"])

    def column(name: str) -> int:
        if name not in fields:
            raise KeyError(f"query {kind} of edition {EDITION} outputs no field {name}")
        return fields.index(name) + 1

    return CatalogSpec(
        kind=kind, name=_short_name(layout), columns=len(fields), code_column=column(keys.code),
        name_column=column(keys.name), version_column=column("updt_time"), code_pattern=keys.pattern,
        valid_column=column("vali_flag"), begin_column=column("begndate"), end_column=column("enddate"),
        required=tuple(column(name) for name in keys.required), date_columns=(column("updt_time"),),
        number_columns=(column(keys.price),) if keys.price else (),
        price_column=column(keys.price) if keys.price else None, paged_fields=fields, role=keys.role,
    )


def _build() -> dict[str, CatalogSpec]:
    specs: dict[str, CatalogSpec] = {}
    for kind, layout in LAYOUTS["kinds"].items():
        if "columns" in layout:
            specs[kind] = _file_spec(kind, layout, _FILE_KEYS[kind])
        else:
            specs[kind] = _paged_spec(kind, layout, _PAGED_KEYS[kind])
    return specs


#: every 13xx download of the edition, by infno
CATALOGUES: dict[str, CatalogSpec] = _build()

WESTERN_AND_PATENT_DRUGS = CATALOGUES["1301"]
SERVICE_ITEMS = CATALOGUES["1305"]
CONSUMABLES = CATALOGUES["1306"]
DIAGNOSES = CATALOGUES["1307"]
OPERATIONS = CATALOGUES["1308"]
#: 1318 医保目录限价, a paged query; ``updt_time`` is its version (the next query's lower bound)
PRICE_CAPS = CATALOGUES["1318"]
INSURANCE_LIST = CATALOGUES["1312"]
LIST_MATCHING = CATALOGUES["1316"]
INSTITUTION_MATCHING = CATALOGUES["1317"]
SELF_PAY_SHARES = CATALOGUES["1319"]
