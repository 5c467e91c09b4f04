"""The core's own alert: an ERROR log line with ``action = alert`` (what a log watcher or the
journal forwards), and a WARNING one with ``action = alert_cleared`` when the condition clears
(``details["state"] == "clear"``). Plugins add other channels through the same hook; the
daemon adds the webhook and mail of ``[alerts]``."""

from __future__ import annotations

import logging
from typing import Any

from adapter.plugin import hookimpl

logger = logging.getLogger("adapter.alert")


@hookimpl
def adapter_alert(kind: str, message: str, details: dict[str, Any]) -> None:
    if details.get("state") == "clear":
        logger.warning("ALERT CLEARED %s: %s", kind, message,
                       extra={"action": "alert_cleared", "alert_kind": kind, "alert": details.get("alert", kind)})
        return
    logger.error("ALERT %s: %s", kind, message,
                 extra={"action": "alert", "alert_kind": kind, "alert": details.get("alert", kind)})
