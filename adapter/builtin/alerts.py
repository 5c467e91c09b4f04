"""The core's own alert: an ERROR log line with ``action = alert`` (what a log watcher or the
journal forwards). Plugins add other channels through the same hook."""

from __future__ import annotations

import logging
from typing import Any

from adapter.plugin import hookimpl

logger = logging.getLogger("adapter.alert")


@hookimpl
def adapter_alert(kind: str, message: str, details: dict[str, Any]) -> None:
    logger.error("ALERT %s: %s", kind, message, extra={"action": "alert", "alert_kind": kind})
