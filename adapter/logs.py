"""Logging setup (only the CLI and the daemon's reload call it): lines a service manager and a
log shipper can read.

- One line per event: a message spanning lines is joined with `` | ``, and the statement and
  parameters SQLAlchemy appends to its errors are cut (the error's first line stays); an
  exception adds its class and first line, the traceback only with ``tracebacks`` (``-v``).
- Under systemd (``$JOURNAL_STREAM`` or ``$INVOCATION_ID`` set) every line written to stderr
  starts with its syslog priority, ``<3>`` for an error… (sd-daemon(3)), so the journal files
  it at that priority and ``journalctl -p err`` finds the errors.
- Times are local, ISO 8601 with the zone offset (``2026-12-01T18:05:00.123+08:00``), in text
  and in JSON.
- Nothing secret or personal: every handler is an :class:`adapter.redact.RedactingHandler`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import datetime
from typing import Any

from adapter.redact import RedactingHandler, redact, redact_value

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

#: sd-daemon(3) priorities: SD_CRIT, SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

#: what SQLAlchemy appends to the first line of its errors: the statement, its parameters and a
#: link (in that order, each on its own line; the statement may span many)
_SQL_DUMP = re.compile(r"\n\[SQL: .*?(?:\n\(Background on this error at: [^)\n]*\)|\Z)", re.S)
_BACKGROUND = re.compile(r"\n\(Background on this error at: [^)\n]*\)")


def under_systemd() -> bool:
    """Started by systemd as a service (its stderr most likely the journal)."""
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def journal_priority(levelno: int) -> int:
    """The syslog priority of a logging level (DEBUG and below: 7)."""
    return next((priority for level, priority in _PRIORITIES if levelno >= level), 7)


def one_line(text: str) -> str:
    """``text`` on one line: SQLAlchemy's statement and parameters cut, lines joined with
    `` | ``, blank ones dropped."""
    text = _BACKGROUND.sub("", _SQL_DUMP.sub("", text))
    return " | ".join(part.strip() for part in text.splitlines() if part.strip())


def exception_line(exc: BaseException) -> str:
    """An exception as its class and the first line of its message (``OperationalError:
    (sqlite3.OperationalError) no such table: x``)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


def iso_time(created: float) -> str:
    """A record's time, local, ISO 8601 with milliseconds and the zone offset."""
    return datetime.fromtimestamp(created).astimezone().isoformat(timespec="milliseconds")


class _LineFormatter(logging.Formatter):
    """What the text and JSON formats share: the message on one line and the exception as a
    line of its own kind, or, with ``tracebacks``, the message whole and the traceback."""

    def __init__(self, tracebacks: bool = False, priorities: bool = False) -> None:
        super().__init__()
        self.tracebacks = tracebacks
        self.priorities = priorities

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # the stdlib name
        return iso_time(record.created)

    def message(self, record: logging.LogRecord) -> str:
        text = redact(record.getMessage())
        return text if self.tracebacks else one_line(text)

    def exception(self, record: logging.LogRecord) -> str | None:
        """The exception of the record (the traceback, or with no tracebacks its one line), or
        the stack with ``stack_info`` (tracebacks only)."""
        parts = []
        if record.exc_info and record.exc_info[1] is not None:
            if self.tracebacks:
                parts.append(record.exc_text or self.formatException(record.exc_info))
            else:
                parts.append(one_line(exception_line(record.exc_info[1])))
        if record.stack_info and self.tracebacks:
            parts.append(self.formatStack(record.stack_info))
        return redact("\n".join(parts)) if parts else None

    def framed(self, record: logging.LogRecord, text: str) -> str:
        """Every physical line prefixed with the record's journal priority, when asked for."""
        if not self.priorities:
            return text
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class TextFormatter(_LineFormatter):
    """``2026-12-01T18:05:00.123+08:00 WARNING adapter.flow.send: message (Error: first line)``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {self.message(record)}"
        exception = self.exception(record)
        if exception:
            line += f"\n{exception}" if self.tracebacks else f" ({exception})"
        return self.framed(record, line)


class JsonFormatter(_LineFormatter):
    """One JSON object per line with the record's extras (action, message_id, ...)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": self.message(record),
        }
        document.update(
            {k: redact_value(v) for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        )
        exception = self.exception(record)
        if exception:
            document["exc"] = exception
        return self.framed(record, json.dumps(document, ensure_ascii=False, default=str))


def configure_logging(
    level: str = "INFO", fmt: str = "text", file: str | None = None, *, tracebacks: bool | None = None,
    priorities: bool | None = None,
) -> None:
    """Send every log record at ``level`` and above to ``file`` (stderr without one) in
    ``fmt``; a new log file is created for the adapter's user alone, as the centre's answers
    it quotes may name patients (they are redacted, but the file is still the adapter's).
    ``tracebacks`` (default: at DEBUG, which ``-v`` asks for) writes whole tracebacks;
    ``priorities`` (default: on stderr under systemd) starts every line with its journal
    priority."""
    if file:
        _create_private(file)
    handler: logging.Handler = _FileHandler(file, encoding="utf-8") if file else _StreamHandler(sys.stderr)
    tracebacks = (level == "DEBUG") if tracebacks is None else tracebacks
    priorities = (not file and under_systemd()) if priorities is None else priorities
    formatter = JsonFormatter if fmt == "json" else TextFormatter
    handler.setFormatter(formatter(tracebacks=tracebacks, priorities=priorities))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()  # a log file left open by an earlier call (the CLI configures twice)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request at INFO; that is noise at a 20-minute cadence.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class _StreamHandler(RedactingHandler, logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, redacted."""


class _FileHandler(RedactingHandler, logging.FileHandler):
    """The ``[logging] file``, redacted."""


def _create_private(file: str) -> None:
    try:
        os.close(os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600))
    except FileExistsError:
        pass  # its mode is the operator's choice
    except OSError:
        pass  # FileHandler reports what is wrong with the path


def error_line(exc: BaseException) -> str:
    """The line a command prints for an error it stops on (``error: …``): redacted, without
    SQLAlchemy's statement dump, and under systemd with the error priority, as the journal
    files it like a log line."""
    text = "error: " + redact(_BACKGROUND.sub("", _SQL_DUMP.sub("", str(exc))))
    if not under_systemd():
        return text
    return "\n".join(f"<{journal_priority(logging.ERROR)}>{line}" for line in text.split("\n"))
