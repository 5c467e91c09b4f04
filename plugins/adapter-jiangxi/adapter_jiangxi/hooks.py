"""The jiangxi region: the national interface; what differs is the penalty discretion table the
self-inspection report estimates exposure with (reference/seed-rules.md, document 002)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from adapter_nhsa.hooks import NHSA

from adapter.plugin.api import PenaltyBand, RegionProfile, hookimpl

#: Art. 38 losses (not fraud), first offence, by share of last year's fund payments.
ART38_BANDS = (
    PenaltyBand(0.002, 0.0, 1.0, "below 0.2%: up to 1×"),
    PenaltyBand(0.005, 1.0, 1.5, "0.2–0.5%"),
    PenaltyBand(0.015, 1.5, 1.5, "0.5–1.5%"),
    PenaltyBand(None, 1.5, 2.0, "1.5% and above"),
)

JIANGXI = dataclasses.replace(
    NHSA,
    name="jiangxi",
    description="Jiangxi: national interface (TIF, single endpoint) with the provincial penalty discretion table",
    areas=("360000", "360100", "360199"),
    penalty_table=ART38_BANDS,
    penalty_source="江西省医疗保障行政处罚裁量基准 (002): art. 38 losses; self-found and returned below "
                   "100,000 yuan → talk only",
)


@hookimpl
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    register(JIANGXI)
