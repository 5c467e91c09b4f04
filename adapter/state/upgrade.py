"""Schema versions of the state database (Alembic): a new database is created at the newest
revision; one written by an earlier version is upgraded in place, every row kept; one written
by a newer version of yibao-adapter is refused, since this code would misread it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, inspect

from adapter.errors import StateStoreError
from adapter.state.schema import metadata

logger = logging.getLogger(__name__)
# Alembic logs its context and every step at INFO, in every command that opens the state
# database; the adapter logs an upgrade itself (state_upgrade), once.
logging.getLogger("alembic").setLevel(logging.WARNING)

_MIGRATIONS = Path(__file__).parent / "migrations"
#: the revision of a database written by 0.1.0, which carried no schema version
LEGACY_REVISION = "0001"


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` found and did."""

    before: str | None
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(_MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision; LEGACY_REVISION for a 0.1.0 database, None for an empty one."""
    with engine.connect() as conn:
        revision = MigrationContext.configure(conn).get_current_revision()
        if revision is None and "message" in inspect(conn).get_table_names():
            return LEGACY_REVISION
        return revision


def upgrade(engine: Engine) -> Upgrade:
    """Bring the state database to the newest revision (see the module docstring)."""
    head = head_revision()
    scripts = ScriptDirectory(str(_MIGRATIONS))
    with engine.begin() as conn:
        context = MigrationContext.configure(conn)
        before = context.get_current_revision()
        tables = set(inspect(conn).get_table_names())
        config = _config(conn)
        if before is None and not tables - {"alembic_version"}:
            metadata.create_all(conn)
            command.stamp(config, head)
            return Upgrade(None, head)
        if before is None:
            before = LEGACY_REVISION  # written by 0.1.0, which carried no schema version
            command.stamp(config, before)
        try:
            scripts.get_revision(before)
        except Exception as exc:  # alembic raises several kinds for an unknown revision
            raise StateStoreError(
                f"the state database is at schema revision {before}, which this version of yibao-adapter "
                f"does not know (it knows up to {head}): it was written by a newer version; run that "
                "version, or restore the backup taken before the upgrade"
            ) from exc
        if before != head:
            logger.warning("upgrading the state database from schema revision %s to %s", before, head,
                           extra={"action": "state_upgrade"})
            command.upgrade(config, "head")
            metadata.create_all(conn)  # tables added since, that no migration needed to fill
    return Upgrade(before, head)
