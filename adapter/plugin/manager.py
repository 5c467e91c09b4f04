"""PluginHost: loads plugins from the entry-point group, isolates failures, answers queries.

Bundled regions (``plugins/adapter-nhsa``) are found through the same entry-point group a
third-party region uses; the core registers only its built-ins (signers, rules) directly.
A plugin that fails to import, to register, or inside a registration hook is reported and
disabled; the daemon goes on with the others.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from adapter.errors import PluginError, UnknownRegionError
from adapter.plugin import NAME, spec
from adapter.plugin.api import RegionProfile, SignerSpec
from adapter.plugin.policy import PolicyRule
from adapter.plugin.rules import RuleSet

logger = logging.getLogger(__name__)

BUILTIN_MODULES = ("adapter.builtin.signers", "adapter.builtin.rules", "adapter.builtin.alerts")


@dataclass
class PluginInfo:
    """One line of ``plugins list``."""

    name: str
    version: str
    origin: str
    hooks: list[str] = field(default_factory=list)
    status: str = "loaded"
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "origin": self.origin,
            "hooks": self.hooks,
            "status": self.status,
            "error": self.error,
        }


class PluginHost:
    """A fresh pluggy manager with every plugin loaded; no import-time side effects."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(NAME)
        self.pm.add_hookspecs(spec)
        self._info: dict[str, PluginInfo] = {}
        self._regions: dict[str, RegionProfile] | None = None
        self._signers: dict[str, SignerSpec] | None = None

    @classmethod
    def load(cls, load_entrypoints: bool = True, extra: list[ModuleType] | None = None) -> PluginHost:
        """Entry-point plugins first (honouring the ADAPTER_* switches), then built-ins."""
        host = cls()
        if os.environ.get("ADAPTER_TRACE_PLUGINS"):
            host.pm.trace.root.setwriter(lambda text: logger.debug("%s", text.rstrip()))
            host.pm.enable_tracing()
        if load_entrypoints:
            host._load_entrypoints()
        for module in extra or []:
            host.register(module, name=module.__name__, version="-", origin=module.__name__)
        for module_name in BUILTIN_MODULES:
            host.register(
                importlib.import_module(module_name),
                name=module_name.rsplit(".", 1)[-1],
                version="builtin",
                origin=module_name,
            )
        return host

    def _load_entrypoints(self) -> None:
        allow = os.environ.get("ADAPTER_LOAD_PLUGINS")
        allowed = None if allow is None else {n.strip() for n in allow.split(",") if n.strip()}
        blocked = {
            n.strip() for n in os.environ.get("ADAPTER_DISABLED_PLUGINS", "").split(",") if n.strip()
        }
        for ep in metadata.entry_points(group=NAME):
            if allowed is not None and ep.name not in allowed:
                continue
            dist = ep.dist
            version = dist.version if dist is not None else "?"
            origin = f"{dist.metadata['Name']} ({ep.value})" if dist is not None else ep.value
            if ep.name in blocked:
                self._info[ep.name] = PluginInfo(ep.name, version, origin, status="disabled")
                continue
            if ep.name in self._info:
                self._fail(ep.name, version, origin, "a plugin of the same name is already loaded")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure disables only that plugin
                self._fail(ep.name, version, origin, f"import failed: {type(exc).__name__}: {exc}")
                continue
            self.register(plugin, name=ep.name, version=version, origin=origin)

    def register(self, plugin: object, name: str, version: str, origin: str) -> bool:
        """Register one plugin object; a validation failure disables it and is reported."""
        try:
            self.pm.register(plugin, name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._fail(name, version, origin, f"rejected: {exc}")
            return False
        hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        self._info[name] = PluginInfo(name, version, origin, hooks)
        self._regions = self._signers = None
        return True

    def _fail(self, name: str, version: str, origin: str, error: str) -> None:
        logger.error(
            "plugin %s disabled: %s", name, error, extra={"action": "plugin_failed", "plugin": name}
        )
        self._info[name] = PluginInfo(name, version, origin, status="failed", error=error)

    def _collect(self, hook_name: str, accept: Callable[[Any], None]) -> None:
        # Each implementation is called on its own, not through pluggy's combined call, so
        # one plugin raising inside a registration hook disables that plugin only.
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():
            try:
                impl.function(register=accept)
            except Exception as exc:  # plugin boundary, see above
                info = self._info.get(impl.plugin_name)
                self._fail(
                    impl.plugin_name,
                    info.version if info else "?",
                    info.origin if info else "?",
                    f"{hook_name} raised {type(exc).__name__}: {exc}",
                )
                self.pm.unregister(name=impl.plugin_name)

    def alert(self, kind: str, message: str, details: dict[str, Any]) -> None:
        """Hand an alert to every plugin that takes alerts; a failing one is logged, not fatal
        (an alert must never stop the daemon)."""
        for impl in self.pm.hook.adapter_alert.get_hookimpls():
            try:
                impl.function(kind=kind, message=message, details=details)
            except Exception as exc:  # plugin boundary
                logger.error("alert plugin %s failed: %s", impl.plugin_name, exc, extra={"action": "alert_failed"})

    def regions(self) -> dict[str, RegionProfile]:
        if self._regions is None:
            found: dict[str, RegionProfile] = {}
            self._collect("adapter_register_regions", lambda p: found.__setitem__(p.name, p))
            self._regions = found
        return self._regions

    def region(self, name: str) -> RegionProfile:
        regions = self.regions()
        try:
            return regions[name]
        except KeyError:
            known = ", ".join(sorted(regions)) or "none"
            raise UnknownRegionError(
                f"no loaded plugin provides region {name!r} (loaded regions: {known}); "
                "install the region's package or check `yibao-adapter plugins list`"
            ) from None

    def signers(self) -> dict[str, SignerSpec]:
        if self._signers is None:
            found: dict[str, SignerSpec] = {}
            self._collect("adapter_register_signers", lambda s: found.__setitem__(s.name, s))
            self._signers = found
        return self._signers

    def rules(self) -> RuleSet:
        rules = RuleSet()
        self._collect("adapter_register_rules", rules.register)
        return rules

    def policy_rules(self) -> list[PolicyRule]:
        found: dict[str, PolicyRule] = {}

        def register(rule: PolicyRule) -> None:
            if rule.id in found:
                raise PluginError(f"policy rule {rule.id} is registered twice")
            found[rule.id] = rule

        self._collect("adapter_register_policy_rules", register)
        return list(found.values())

    def plugins(self) -> list[PluginInfo]:
        return sorted(self._info.values(), key=lambda info: (info.version == "builtin", info.name))

