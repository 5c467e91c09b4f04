"""Validation rules plugins register (``adapter_register_rules``): a check over one mapped fee
line, returning problems as plain sentences; a blocking problem parks the record."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from adapter.records import MappedFeeLine


class Severity(StrEnum):
    #: park the line; it is not sent
    BLOCK = "block"
    #: send the line and report the finding
    WARN = "warn"


@dataclass(frozen=True)
class Rule:
    """One check over a mapped fee line."""

    id: str
    description: str
    check: Callable[[MappedFeeLine], Iterable[str]]
    severity: Severity = Severity.BLOCK


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    message: str


class RuleSet:
    """The rules in force; ``register`` is what the hook hands to plugins."""

    def __init__(self) -> None:
        self._rules: dict[str, Rule] = {}

    def register(self, rule: Rule) -> None:
        if rule.id in self._rules:
            raise ValueError(f"rule {rule.id} is registered twice")
        self._rules[rule.id] = rule

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    def check(self, line: MappedFeeLine) -> list[Finding]:
        return [
            Finding(rule.id, rule.severity, message)
            for rule in self._rules.values()
            for message in rule.check(line)
        ]


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity is Severity.BLOCK]
