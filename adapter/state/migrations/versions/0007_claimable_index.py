"""The messages a claim may take, in id order: a partial index on ``message (id)`` of the rows
pending or waiting to retry. PostgreSQL otherwise took them from ``message_pkey`` in id order
and read past every acked message for each claim, so sending slowed as the ledger aged.

An index added; nothing is rewritten.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CLAIMABLE = "status IN ('pending', 'retry_wait')"


def upgrade() -> None:
    op.create_index("ix_message_claimable", "message", ["id"], postgresql_where=sa.text(CLAIMABLE),
                    sqlite_where=sa.text(CLAIMABLE))


def downgrade() -> None:
    op.drop_index("ix_message_claimable", table_name="message")
