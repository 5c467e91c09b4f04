"""What a cycle did: counts every stage adds to, summed over cycles by the daemon."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CycleReport:
    """What one cycle did, over the records of every transaction (a 2301 fee line is one
    record); also what ``run --once`` and ``demo`` print."""

    extracted: int = 0
    duplicates_skipped: int = 0
    malformed: int = 0
    unmapped: int = 0
    invalid: int = 0
    ready: int = 0
    messages_built: int = 0
    messages_acked: int = 0
    lines_acked: int = 0
    transient_failures: int = 0
    messages_rejected: int = 0
    lines_rejected: int = 0
    #: sends whose reply was lost, and inquiries that settled such a message
    outcomes_unknown: int = 0
    outcomes_resolved: int = 0
    #: findings of warn severity (the line was sent; e.g. a restricted-use item)
    warnings: int = 0
    #: cancels (2302, 2205) closed here because what they cancel never reached the centre
    records_withdrawn: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def parked(self) -> int:
        return self.malformed + self.unmapped + self.invalid + self.lines_rejected

    @property
    def clean(self) -> bool:
        return not (self.parked or self.transient_failures or self.errors)

    def add(self, other: CycleReport) -> None:
        for name in self.__dataclass_fields__:
            value = getattr(other, name)
            if isinstance(value, list):
                getattr(self, name).extend(value)
            else:
                setattr(self, name, getattr(self, name) + value)
