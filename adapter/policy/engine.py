"""Policy rules: what a rule is, how the region and the configuration set it, and running
the rules in force over one stay.

A rule sees a whole stay (:class:`Stay`: its lines so far and the patient's earlier stays),
because most art. 38 behaviours are patterns across lines, not faults of one line. Its
parameters have defaults; a region's rule set (data in the region plugin) and then
``[rules."<id>"]`` in the configuration change them, switch the rule off or change its
severity. Every number is regional: none is a constant here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapter.errors import ConfigError
from adapter.plugin.policy import PolicyRule, Stay
from adapter.plugin.rules import Severity
from adapter.records import MappedFeeLine


@dataclass(frozen=True)
class ActiveRule:
    """A rule as it is in force here: enabled or not, its severity and parameters, and where
    those came from."""

    rule: PolicyRule
    enabled: bool
    severity: Severity
    params: Mapping[str, Any]
    origin: str


@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: Severity
    line: MappedFeeLine
    message: str
    amount: Decimal
    evidence: Mapping[str, Any]


_SETTING_KEYS = ("enabled", "severity", "source")


def resolve(
    rules: Iterable[PolicyRule],
    region_name: str,
    region_settings: Mapping[str, Mapping[str, Any]],
    config_settings: Mapping[str, Mapping[str, Any]],
) -> list[ActiveRule]:
    """The rules in force: defaults, then the region's rule set, then the configuration."""
    known = {rule.id: rule for rule in rules}
    for where, settings in (("region " + region_name, region_settings), ("[rules]", config_settings)):
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise ConfigError(f"{where}: unknown rule(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    active = []
    for rule in known.values():
        params = {p.name: p.default for p in rule.params}
        enabled, severity, origin = True, rule.severity, "built-in defaults"
        for where, overrides in (("region " + region_name, region_settings.get(rule.id)),
                                 ("configuration", config_settings.get(rule.id))):
            if not overrides:
                continue
            for name, value in overrides.items():
                if name in _SETTING_KEYS:
                    continue
                if name not in params:
                    raise ConfigError(f"{where}: rule {rule.id} has no parameter {name!r} "
                                      f"(it has {', '.join(params) or 'none'})")
                params[name] = _coerce(rule.id, name, value, params[name])
            enabled = bool(overrides.get("enabled", enabled))
            if "severity" in overrides:
                try:
                    severity = Severity(overrides["severity"])
                except ValueError:
                    raise ConfigError(f"{where}: rule {rule.id} severity must be block or warn") from None
            origin = f"{where}" + (f": {overrides['source']}" if overrides.get("source") else "")
        active.append(ActiveRule(rule, enabled, severity, params, origin))
    return active


def _coerce(rule_id: str, name: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, Decimal):
            return Decimal(str(value))
        if isinstance(default, tuple):
            return tuple(str(v) for v in value)
    except (TypeError, ValueError, ArithmeticError):
        raise ConfigError(f"rule {rule_id}: parameter {name} = {value!r} is not like its default {default!r}") from None
    return value


def evaluate(active: Iterable[ActiveRule], stay: Stay) -> list[Finding]:
    """Run the enabled rules whose data the stay has over it."""
    findings = []
    for item in active:
        if not item.enabled or not _has_data(item.rule, stay):
            continue
        for hit in item.rule.check(stay, item.params):
            findings.append(Finding(item.rule.id, item.severity, hit.line, hit.message, hit.amount, hit.evidence))
    return findings


def _has_data(rule: PolicyRule, stay: Stay) -> bool:
    return all(any(getattr(m.line, name) not in (None, "") for m in stay.lines) for name in rule.needs)
