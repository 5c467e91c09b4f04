"""Alembic environment: migrations run on the connection :mod:`adapter.state.upgrade` hands in
(never from an alembic.ini URL), in batch mode so SQLite can alter tables."""

from __future__ import annotations

from alembic import context

from adapter.state.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
