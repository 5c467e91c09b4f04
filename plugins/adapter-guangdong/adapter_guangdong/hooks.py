"""The guangdong region: only what differs from the national interface."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from adapter_nhsa.dialect import NhsaDialect
from adapter_nhsa.hooks import NHSA

from adapter import jsonio
from adapter.plugin.api import MappedFeeLine, RegionProfile, hookimpl


class GuangdongDialect(NhsaDialect):
    """Guangzhou reads hosp_appr_flag 1 as "approved, fund pays"; the national default."""

    hosp_appr_flag = "1"

    def exp_content(self, line: MappedFeeLine) -> str:
        # Guangdong asks for the emergency flag on every line (0 = not an emergency).
        return jsonio.dumps({"er_flag": "0"})


GUANGDONG = dataclasses.replace(
    NHSA,
    name="guangdong",
    description="Guangdong/Shenzhen: TIF gateway, URL = base + infno, enc_type in the envelope",
    dialect=GuangdongDialect(),
    gateway="tif",
    url_style="base_infno",
    # The national form most implementations send (reference/nhsa-interface.md §1.2); nothing
    # from Guangdong says otherwise, and the Hunan edition's 1.0.0 is that province's example.
    infver="V1.0",
    recer_sys_code="YBXT",
    extra_envelope={"enc_type": ""},
    areas=("440300", "440100", "440000"),
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(GUANGDONG)
