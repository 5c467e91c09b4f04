"""``db``: the state database's schema version, upgrading it in place, and its sealing keys."""

from __future__ import annotations

from pathlib import Path

import click

from adapter.cli.common import _settings, config_option, handled, state_store
from adapter.state.rekey import rekey
from adapter.state.sealing import write_key_file
from adapter.state.store import state_engine
from adapter.state.upgrade import current_revision, head_revision, upgrade


@click.group()
def db() -> None:
    """The state database: schema version, upgrades and sealing keys."""


@db.command("status")
@config_option
@handled
def db_status(config_path: Path) -> None:
    """Print the state database's schema revision and the newest this version knows."""
    settings = _settings(config_path)
    engine = state_engine(settings.state.url)
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
    engine = state_engine(settings.state.url)
    try:
        done = upgrade(engine)
    finally:
        engine.dispose()
    if done.changed:
        click.echo(f"state database upgraded from revision {done.before or '(new)'} to {done.after}")
    else:
        click.echo(f"state database already at revision {done.after}")


@db.command("keygen")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@handled
def db_keygen(file: Path) -> None:
    """Write a new sealing key to FILE (created 0600; an existing file is never overwritten).
    Name it in [state] key_file; see `db rekey` for rotating keys."""
    click.echo(f"wrote sealing key {write_key_file(file)} to {file}")


@db.command("rekey")
@config_option
@handled
def db_rekey(config_path: Path) -> None:
    """Re-seal every payload and HIS row with [state] key_file (or store them plain when only
    old_key_files are given). Safe to stop and run again, and while the daemon runs; once it
    reports nothing left under an old key, that key can leave old_key_files."""
    settings = _settings(config_path)
    with state_store(settings) as store:
        done = rekey(store, store.keyring)
        how = f"sealed with key {store.keyring.current_id}" if store.keyring.seals else "stored plain"
    for column in done:
        click.echo(f"{column.column}: {column.rewritten} value(s) {how} again, {column.unchanged} already were")
    if any(column.rewritten for column in done):
        click.echo("run `db rekey` again to confirm: once it rewrites nothing, no value needs an old key and "
                   "old_key_files can be emptied")
    else:
        click.echo("no value needs an old key: old_key_files can be emptied")
