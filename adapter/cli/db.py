"""``db``: the state database's schema version, and upgrading it in place."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import create_engine

from adapter.cli.common import _settings, config_option, handled
from adapter.state.upgrade import current_revision, head_revision, upgrade


@click.group()
def db() -> None:
    """The state database: schema version and upgrades."""


@db.command("status")
@config_option
@handled
def db_status(config_path: Path) -> None:
    """Print the state database's schema revision and the newest this version knows."""
    settings = _settings(config_path)
    engine = create_engine(settings.state.url)
    try:
        revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    state = "empty" if revision is None else ("up to date" if revision == head else "needs `db upgrade`")
    click.echo(f"state database {settings.state.url}: revision {revision or '-'}, newest {head} ({state})")


@db.command("upgrade")
@config_option
@handled
def db_upgrade(config_path: Path) -> None:
    """Upgrade the state database in place, every row kept (the daemon also does this at start).
    Take a backup first; a database written by a newer version is refused."""
    settings = _settings(config_path)
    engine = create_engine(settings.state.url)
    try:
        done = upgrade(engine)
    finally:
        engine.dispose()
    if done.changed:
        click.echo(f"state database upgraded from revision {done.before or '(new)'} to {done.after}")
    else:
        click.echo(f"state database already at revision {done.after}")
