"""yibao-adapter: middleware between a hospital information system and the insurance centre."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from adapter.errors import AdapterError
from adapter.plugin import hookimpl

try:
    __version__ = version("yibao-adapter")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["AdapterError", "__version__", "hookimpl"]
