"""The validation rules the core ships (field presence, lengths, formats, amounts)."""

from __future__ import annotations

from collections.abc import Callable

from adapter.plugin import hookimpl
from adapter.validate.engine import Rule
from adapter.validate.rules import BUILTIN_RULES


@hookimpl
def adapter_register_rules(register: Callable[[Rule], None]) -> None:
    for rule in BUILTIN_RULES:
        register(rule)
