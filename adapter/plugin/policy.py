"""Policy rules plugins register (``adapter_register_policy_rules``): a rule sees a whole stay
(its lines so far and the patient's earlier stays), because most art. 38 behaviours are
patterns across lines, not faults of one line. Its parameters have defaults that a region's
rule set and the configuration change."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from adapter.plugin.rules import Severity
from adapter.records import MappedFeeLine


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    description: str


@dataclass(frozen=True)
class Hit:
    """What a rule found: the line it is about, in plain words, and the money at stake."""

    line: MappedFeeLine
    message: str
    amount: Decimal
    evidence: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class EarlierStay:
    mdtrt_id: str
    adm_time: datetime | None
    dscg_time: datetime | None
    main_diag_code: str
    #: an outpatient visit (med_type 1x) rather than an inpatient stay
    outpatient: bool = False


@dataclass(frozen=True)
class Stay:
    """One stay (HIS visit number) as far as the adapter has seen it."""

    key: str
    lines: Sequence[MappedFeeLine]
    #: the same patient's other stays, from the lines the adapter saw before
    earlier: Sequence[EarlierStay] = ()
    #: every feedetl_sn the adapter holds for this stay, parked ones too (``lines`` has only
    #: what is charged: ready, queued or sent)
    known_sns: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PolicyRule:
    id: str
    description: str
    #: the policy document it comes from (see reference/seed-rules.md)
    source: str
    severity: Severity
    params: tuple[Param, ...]
    #: FeeLine fields the rule needs; where the HIS query gives none of them it cannot fire
    needs: tuple[str, ...]
    check: Callable[[Stay, Mapping[str, Any]], Iterable[Hit]]
