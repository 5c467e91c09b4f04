"""The hunan region: only what differs from the national interface."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from adapter_nhsa.dialect import NhsaDialect
from adapter_nhsa.hooks import NHSA

from adapter.plugin.api import RegionProfile, hookimpl


class HunanDialect(NhsaDialect):
    """Hunan: hosp_appr_flag 0 = 走住院自付比例, 1 = 走门诊自付比例, 2 = 全自费 (reference §3.6).

    Inpatient lines therefore carry 0. Hunan follows its edition (V1.1.27) exactly: an
    inpatient fee line's 医疗类别 is 2101 普通住院 (6.28 med_type), where the national baseline
    writes 21, so the region declares no edition difference.
    """

    hosp_appr_flag = "0"
    #: 6.28 医疗类别 of this edition: 2101 普通住院 (the national baseline's 21 is not a value here)
    inpatient_med_type = "2101"

    def record_defaults(self, infno: str) -> dict[str, str]:
        defaults = super().record_defaults(infno)
        if infno == "2301":
            defaults["med_type"] = self.inpatient_med_type
        return defaults


HUNAN = dataclasses.replace(
    NHSA,
    name="hunan",
    description="Hunan: CSB gateway (_api_*, HMAC-SHA1, ms timestamp), single endpoint",
    dialect=HunanDialect(),
    gateway="csb",
    url_style="single",
    # Hunan V1.1.27 §4.1, header field infver: "例如：“1.0.0”，版本号由医保下发通知" (when the
    # centre's notice names another version, [centre] infver overrides this).
    infver="1.0.0",
    recer_sys_code="99",
    gateway_options={"api_version": "1.0.0"},
    file_upload="multipart",
    # Hunan V1.1.27 §4.4: "类型为数值的参数，如果为空，必须传“0”，其他为空串（“”）".
    empty_number="zero",
    rule_set={
        # 000 §10-六 (township outpatient care): acute 3 days, chronic 7 days.
        "dispensing-days": {"acute_days": 3, "chronic_days": 7, "specified_days": 15,
                            "source": "000 §10-六 (township outpatient)"},
    },
    areas=("430000", "431199", "430100"),
    # The edition exactly: none of the national baseline's differences. Where the edition
    # contradicts itself, hunan takes the readings the national profile lists
    # (edition_readings, READINGS_V1_1_27: clr_type is 6.23, opter_type 1/2/3, infno up to 6). A HIS that writes the
    # baseline's 21 普通住院 is read as this edition's 2101 (6.28 医疗类别).
    edition_differences=(),
    code_readings={"med_type": {"21": "2101"}, "feedetail.med_type": {"21": "2101"}},
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(HUNAN)
