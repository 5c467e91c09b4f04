"""All hook specifications. Hooks are called with keyword arguments only.

Contribution hooks hand the plugin a ``register`` callable; a plugin calls it once per thing
it contributes. Hooks only ever gain arguments (impls may accept fewer), so plugins written
against an older core keep working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from adapter.plugin import NAME

if TYPE_CHECKING:
    from adapter.plugin.api import RegionProfile, SignerSpec
    from adapter.plugin.policy import PolicyRule
    from adapter.plugin.rules import Rule

_spec = pluggy.HookspecMarker(NAME)


@_spec
def adapter_register_regions(register: Callable[[RegionProfile], None]) -> None:
    """Contribute region profiles: endpoints, URL style, gateway scheme, dialect.

    :param register: call with each :class:`~adapter.plugin.api.RegionProfile`.

    .. versionadded:: 0.1
    """


@_spec
def adapter_register_signers(register: Callable[[SignerSpec], None]) -> None:
    """Contribute gateway signing schemes (TIF, CSB, ...), selected by name in a region.

    :param register: call with each :class:`~adapter.plugin.api.SignerSpec`.

    .. versionadded:: 0.1
    """


@_spec
def adapter_register_rules(register: Callable[[Rule], None]) -> None:
    """Contribute validation rules that every outgoing fee line is checked against.

    :param register: call with each :class:`~adapter.validate.engine.Rule`.

    .. versionadded:: 0.1
    """


@_spec
def adapter_register_policy_rules(register: Callable[[PolicyRule], None]) -> None:
    """Contribute policy rules run over each stay before upload (duplicate charges, dispensing
    days...). Their parameters are set per region (``RegionProfile.rule_set``) and in
    ``[rules."<id>"]``.

    :param register: call with each :class:`~adapter.policy.engine.PolicyRule`.

    .. versionadded:: 0.2
    """


@_spec
def adapter_alert(kind: str, message: str, details: dict) -> None:  # type: ignore[type-arg]
    """Something a person must look at started, or stopped (a queue stuck, the centre
    unreachable, a reconciliation that does not balance...). Called on every plugin that
    implements it, once when the condition starts and once when it clears, never once per
    cycle; send it on (SMS gateway, mail, ticket).

    :param kind: a short tag, e.g. ``reconcile_mismatch`` (the kinds: adapter.monitor.alerts).
    :param message: one sentence for a person (Chinese, then English).
    :param details: JSON-safe facts (period, pairs, differences), and from the daemon's alerts
        ``state`` (``start`` or ``clear``), ``alert`` (the condition's key, e.g.
        ``oldest_unsent:2301``: a start and its clear carry the same) and ``since``.

    .. versionadded:: 0.2
    .. versionchanged:: 0.3 one call when a condition starts and one when it clears
       (``details["state"]``)
    """
