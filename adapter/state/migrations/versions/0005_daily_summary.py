"""The daily health summary: the daemon writes one a day (uploads per transaction, failures,
oldest unsent, sign-in, catalogue ages; ``adapter.monitor.daily``), a row of ``daily_summary``
keyed by the local day it was written for, so the status page shows the newest after a restart
and several daemons on one spool write it once.

A new table; nothing is rewritten.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daily_summary",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("written_at", sa.DateTime, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("daily_summary")
