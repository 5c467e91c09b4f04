"""The zhejiang region: only what differs from the national interface."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from adapter_nhsa.dialect import NhsaDialect
from adapter_nhsa.hooks import NHSA

from adapter import jsonio
from adapter.plugin.api import MappedFeeLine, PolicySpec, RegionProfile, hookimpl


class ZhejiangDialect(NhsaDialect):
    """Zhejiang sends the medical-insurance item name and the emergency flag in exp_content."""

    hosp_appr_flag = "1"

    def exp_content(self, line: MappedFeeLine) -> str:
        return jsonio.dumps({"er_flag": "0", "hilist_name": line.hilist_name})


ZHEJIANG = dataclasses.replace(
    NHSA,
    name="zhejiang",
    description="Zhejiang: x-ca-key + HMAC-SM3 x-ca-signature, one path per transaction, infver 1.0",
    dialect=ZhejiangDialect(),
    gateway="zhejiang",
    url_style="per_path",
    # The Zhejiang samples send 1.0 (reference/nhsa-interface.md §1.2, the ZJ 1101 test message).
    infver="1.0",
    recer_sys_code="FSI_LOCAL",
    extra_envelope={"dev_no": "1"},
    areas=("330000", "330100", "330183"),
    rule_set={
        # 000 §5-四 (Ningbo/Cixi hospital rules): acute 3 / general 7 / chronic half a month, at
        # most 5 drugs per prescription.
        "dispensing-days": {"acute_days": 3, "general_days": 7, "chronic_days": 15, "specified_days": 15,
                            "acute_icd": ("J00-J06", "J20-J22", "A09-A09", "K52-K52"),
                            "source": "000 §5-四 (Ningbo/Cixi)"},
        "drugs-per-prescription": {"max_drugs": 5, "source": "000 §5-四 (Ningbo/Cixi)"},
    },
    policies={
        "policy:price-limits": PolicySpec(
            kind="policy:price-limits",
            name="浙江医疗服务项目限价 local price limits",
            xsd=Path(__file__).parent / "policy" / "price_limits.xsd",
            price_attribute="maxPrice",
        ),
    },
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(ZHEJIANG)
