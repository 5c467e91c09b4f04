"""How a region settles a hospital's global budget (总额预算), as data: the share of each month's
fund payments the centre advances (the rest withheld for the year-end assessment), and how a
year's overspend is shared between the fund and the hospital. ``report budget`` reads both
from the region (``RegionProfile.budget_advance_share``, ``RegionProfile.budget_sharing``).

The numbers are the regional agreement's (医保总额预算管理协议), which differ from place to
place; :data:`DEFAULT_SHARING` is a common form of them, named as such in every report that
uses it, for a region that has declared none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

_CENT = Decimal("0.01")


@dataclass(frozen=True)
class OverspendBand:
    """One band of the overspend: the part of it up to ``up_to`` of the annual budget (None: no
    upper bound), of which the fund bears ``fund_share`` and the hospital the rest."""

    up_to: Decimal | None
    fund_share: Decimal

    def __post_init__(self) -> None:
        if not Decimal(0) <= self.fund_share <= Decimal(1):
            raise ValueError(f"fund_share {self.fund_share} is not a share between 0 and 1")
        if self.up_to is not None and self.up_to <= 0:
            raise ValueError(f"up_to {self.up_to} must be above 0 (a share of the annual budget)")


@dataclass(frozen=True)
class Shares:
    """An overspend split: what the fund bears (pays on top of the budget) and what the hospital does."""

    fund: Decimal
    hospital: Decimal


@dataclass(frozen=True)
class OverspendSharing:
    """The bands in order of their ``up_to``, the last open-ended, and the document they come
    from (or the words saying they are the default)."""

    bands: tuple[OverspendBand, ...]
    source: str

    def __post_init__(self) -> None:
        bounds = [band.up_to for band in self.bands]
        if not bounds or bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("the bands must end with one open-ended band (up_to=None), and only it")
        closed = [b for b in bounds if b is not None]
        if closed != sorted(set(closed)):
            raise ValueError("the bands' up_to must rise")

    def split(self, overspend: Decimal, annual_budget: Decimal) -> Shares:
        """The overspend (spending above the annual budget; none when not above it) shared band
        by band; each part rounded to the cent, the hospital's being the rest."""
        if overspend <= 0:
            return Shares(Decimal("0.00"), Decimal("0.00"))
        fund, floor = Decimal(0), Decimal(0)
        for band in self.bands:
            ceiling = overspend if band.up_to is None else min(overspend, band.up_to * max(annual_budget, Decimal(0)))
            if ceiling > floor:
                fund += (ceiling - floor) * band.fund_share
                floor = ceiling
        fund = fund.quantize(_CENT, rounding=ROUND_HALF_UP)
        return Shares(fund, overspend - fund)

    def describe(self) -> str:
        """"超支10%以内基金50%、医院50%；10%以上医院100%" and the English beside it."""
        zh: list[str] = []
        en: list[str] = []
        lower = Decimal(0)
        for band in self.bands:
            fund, hospital = _percent(band.fund_share), _percent(1 - band.fund_share)
            if band.up_to is None:
                zh.append(f"{_percent(lower)}以上基金{fund}、医院{hospital}" if lower
                          else f"基金{fund}、医院{hospital}")
                en.append(f"beyond {_percent(lower)}: fund {fund}, hospital {hospital}" if lower
                          else f"fund {fund}, hospital {hospital}")
            else:
                zh.append(f"{_percent(band.up_to)}以内基金{fund}、医院{hospital}")
                en.append(f"up to {_percent(band.up_to)}: fund {fund}, hospital {hospital}")
                lower = band.up_to
        return f"超支{'；'.join(zh)} (overspend {'; '.join(en)})"


def _percent(share: Decimal | int) -> str:
    return f"{Decimal(share) * 100:.2f}".rstrip("0").rstrip(".") + "%"


def sharing(bands: Sequence[tuple[str | None, str]], source: str) -> OverspendSharing:
    """A sharing rule from (up_to, fund_share) pairs written as text, e.g.
    ``sharing([("0.10", "0.5"), (None, "0")], source="某市医保局 2024 年总额预算方案 §5")``."""
    return OverspendSharing(tuple(OverspendBand(None if up_to is None else Decimal(up_to), Decimal(share))
                                  for up_to, share in bands), source)


#: overspend within 10% of the annual budget shared 50/50 by fund and hospital, beyond it borne
#: by the hospital alone; a common form of the regional agreements, used where a region declares
#: none (and said so in the report)
DEFAULT_SHARING = sharing([("0.10", "0.5"), (None, "0")],
                          source="默认 default: 未取自本地区协议 not taken from this region's agreement")
#: the share of a month's fund payments (up to its budget) the centre advances; the rest (6%) is
#: withheld for the year-end assessment
DEFAULT_ADVANCE_SHARE = Decimal("0.94")
