"""Plugin machinery: the marker every plugin uses, and the entry-point group it is found by.

A regional plugin is an installable package with::

    [project.entry-points.yibao_adapter]
    <region> = "adapter_<region>.hooks"

and implements hooks from :mod:`adapter.plugin.spec` decorated with :data:`hookimpl`.
"""

from __future__ import annotations

import pluggy

#: The pluggy project name, the entry-point group, and the prefix of nothing else.
NAME = "yibao_adapter"

hookimpl = pluggy.HookimplMarker(NAME)

__all__ = ["NAME", "hookimpl"]
