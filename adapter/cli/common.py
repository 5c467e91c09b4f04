"""What every command shares: the --config and --json options, error handling, settings."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from adapter.config import DEFAULT_CONFIG_PATH, Settings, load_settings
from adapter.errors import AdapterError
from adapter.logs import configure_logging, error_line
from adapter.state.store import StateStore

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger("adapter.cli")

#: ``status`` and ``run --once`` exit with this when something needs a person now (and other
#: commands when part of what they were asked failed: a recheck, a reconciliation).
EXIT_SOMETHING_FAILED = 3

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=lambda: os.environ.get("ADAPTER_CONFIG", str(DEFAULT_CONFIG_PATH)),
    show_default="config/adapter.toml or $ADAPTER_CONFIG",
    help="The configuration file.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


def handled(func: F) -> F:
    """Turn an AdapterError into one line on stderr and exit code 1 (traceback with -v)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except AdapterError as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                logger.exception("failed")
            click.echo(error_line(exc), err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(config_path: Path) -> Settings:
    """Load the configuration and apply its logging settings: its format and file always,
    its level unless -v asked for debug."""
    settings = load_settings(config_path)
    context = click.get_current_context(silent=True)
    verbose = bool(context and context.find_root().params.get("verbose"))
    configure_logging("DEBUG" if verbose else settings.logging.level, settings.logging.format,
                      settings.logging.file)
    return settings


@contextmanager
def state_store(settings: Settings) -> Iterator[StateStore]:
    """The state database for one command (with its sealing keys), closed afterwards."""
    store = StateStore.configured(settings.state)
    try:
        yield store
    finally:
        store.close()


def parse_day(value: str, option: str | None = None) -> date:
    """A yyyy-MM-dd option value, or a usage error naming the option."""
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (yyyy-MM-dd)", param_hint=option) from None
