"""The state database as yibao-adapter 0.1.0 wrote it (before it carried a schema version).

A database without an ``alembic_version`` table but with the 0.1.0 tables is stamped with this
revision and upgraded from here; nothing is created by it.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
