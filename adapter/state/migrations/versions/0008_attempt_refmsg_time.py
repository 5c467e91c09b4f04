"""The centre's receipt time of each answered attempt (``attempt.refmsg_time``): an answer older
than one already accepted is a replayed answer of an earlier request, never a later one's.

A nullable column and its index (the newest answer time is read at each start) added; nothing
is rewritten (earlier attempts have none).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("refmsg_time", sa.DateTime(), nullable=True))
    op.create_index("ix_attempt_refmsg_time", "attempt", ["refmsg_time"])


def downgrade() -> None:
    op.drop_index("ix_attempt_refmsg_time", table_name="attempt")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("refmsg_time")
