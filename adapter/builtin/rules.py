"""The validation rules the core ships (field presence, lengths, formats, amounts)."""

from __future__ import annotations

from collections.abc import Callable

from adapter.plugin import hookimpl
from adapter.plugin.policy import PolicyRule
from adapter.plugin.rules import Rule
from adapter.policy.builtin import BUILTIN_POLICY_RULES
from adapter.validate.rules import BUILTIN_RULES


@hookimpl
def adapter_register_rules(register: Callable[[Rule], None]) -> None:
    for rule in BUILTIN_RULES:
        register(rule)


@hookimpl
def adapter_register_policy_rules(register: Callable[[PolicyRule], None]) -> None:
    for rule in BUILTIN_POLICY_RULES:
        register(rule)
