"""Progress of long work: a running backfill (extract, check, build, send), a catalogue import or
a reconciliation writes a row of ``progress`` every few seconds (done, total, start, last
update), which ``status`` and the status page read from other processes.

A new table; nothing is rewritten.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "progress",
        sa.Column("stage", sa.String(16), primary_key=True),
        sa.Column("infno", sa.String(16), primary_key=True),
        sa.Column("unit", sa.String(16), nullable=False),
        sa.Column("done", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer),
        sa.Column("estimated", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime),
        sa.Column("owner", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("progress")
