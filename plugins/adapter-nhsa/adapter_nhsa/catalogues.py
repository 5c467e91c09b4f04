"""The national file catalogues (reference §3.4 column lists, §4 code formats).

Positions follow the reference; 1301 is the 97-column layout. Code patterns check length,
prefix and character class only: no check-digit algorithm is published (§4)."""

from __future__ import annotations

from adapter.plugin.api import CatalogSpec

WESTERN_AND_PATENT_DRUGS = CatalogSpec(
    kind="1301", name="西药中成药", columns=97, code_column=1, name_column=4, version_column=83,
    code_pattern=r"X[A-Z][0-9]{2}[A-Z0-9]{2}[A-Z0-9][A-Z0-9]{3}[A-Z][0-9]{3}[0-9]{9}|Z[A-Z0-9]{19,22}",
    valid_column=79, begin_column=37, end_column=38, restricted_column=57,
    number_columns=(33, 42),
)
SERVICE_ITEMS = CatalogSpec(
    kind="1305", name="医疗服务项目", columns=16, code_column=1, name_column=10, version_column=15,
    code_pattern=r"[0-9]{15}(-[0-9A-Za-z.]{1,30})?", valid_column=7, begin_column=12, end_column=13,
)
DIAGNOSES = CatalogSpec(
    kind="1307", name="疾病与诊断", columns=24, code_column=11, name_column=12, version_column=23,
    code_pattern=r"[A-Z][0-9]{2}(\.[0-9x]{1,3}(x[0-9]{3})?)?", valid_column=19,
)
OPERATIONS = CatalogSpec(
    kind="1308", name="手术操作", columns=24, code_column=11, name_column=12, version_column=23,
    code_pattern=r"[0-9]{2}(\.[0-9x]{1,4}(x[0-9]{3})?)?", valid_column=19,
)

#: 1318 医保目录限价, a paged query; ``updt_time`` is its version (the next query's lower bound)
PRICE_CAPS = CatalogSpec(
    kind="1318", name="医保目录限价", columns=8, code_column=1, name_column=2, version_column=3,
    code_pattern=r"[A-Z0-9][A-Za-z0-9.\-]{4,49}", valid_column=6, begin_column=4, end_column=5,
    price_column=7, required=(7, 8), date_columns=(3,), number_columns=(7,),
    paged_fields=("hilist_code", "hilist_name", "updt_time", "begndate", "enddate", "vali_flag",
                  "hilist_pric_uplmt_amt", "rid"),
    role="price_caps",
)


def _paged_reference(kind: str, name: str) -> CatalogSpec:
    """1312 and 1316/1317/1319: kept by their record id (``rid``): one code may have several
    records (per area, per matched HIS item). The fields all of them share (reference §3.4)."""
    return CatalogSpec(
        kind=kind, name=name, columns=7, code_column=7, name_column=2, version_column=3,
        code_pattern=r"[A-Za-z0-9]{1,40}", valid_column=6, begin_column=4, end_column=5,
        required=(1,), date_columns=(3,),
        paged_fields=("hilist_code", "hilist_name", "updt_time", "begndate", "enddate", "vali_flag", "rid"),
        role="reference",
    )


INSURANCE_LIST = _paged_reference("1312", "医保目录")
LIST_MATCHING = _paged_reference("1316", "医疗目录与医保目录匹配")
INSTITUTION_MATCHING = _paged_reference("1317", "医药机构目录匹配")
SELF_PAY_SHARES = _paged_reference("1319", "医保目录先自付比例")

CATALOGUES = {
    spec.kind: spec
    for spec in (WESTERN_AND_PATENT_DRUGS, SERVICE_ITEMS, DIAGNOSES, OPERATIONS, PRICE_CAPS, INSURANCE_LIST,
                 LIST_MATCHING, INSTITUTION_MATCHING, SELF_PAY_SHARES)
}
