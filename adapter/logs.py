"""Logging setup (only the CLI calls it) and a JSON formatter carrying the ``action`` key."""

from __future__ import annotations

import json
import logging
import os
import sys

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the record's extras (action, message_id, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(
            {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        )
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text", file: str | None = None) -> None:
    """Send every log record at ``level`` and above to ``file`` (stderr without one) in
    ``fmt``; a new log file is created for the adapter's user alone, as the centre's answers
    it quotes may name patients."""
    if file:
        _create_private(file)
    handler: logging.Handler = logging.FileHandler(file, encoding="utf-8") if file else (
        logging.StreamHandler(sys.stderr)
    )
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()  # a log file left open by an earlier call (the CLI configures twice)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO; that is noise at a 20-minute cadence.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _create_private(file: str) -> None:
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600))
    except FileExistsError:
        pass  # its mode is the operator's choice
    except OSError:
        pass  # FileHandler reports what is wrong with the path
