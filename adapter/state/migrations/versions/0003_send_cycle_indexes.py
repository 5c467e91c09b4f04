"""Indexes for every lookup of the send cycle:

- ``ix_attempt_message``: a message's attempts (whether an earlier one may have reached the
  centre unanswered) by ``attempt.message_id``;
- ``ix_record_group`` becomes (group_key, infno, status): the records of some transactions of
  a visit, in some states (the stay's fee lines the policy rules see, what a withdrawal would
  take along). On group_key alone SQLite, which keeps no statistics, took ix_record_status
  instead and read every fee line of the ledger (or every one sent);
- ``attempt.inf_refmsgid`` and ``ix_attempt_refmsgid``: an answer's 接收方报文ID is looked up
  among the attempts already answered: one already seen answered another request;
- ``ix_visit_mdtrt``: a registration answer's mdtrt_id among the visits already registered
  (the centre issues each once).

Nothing is rewritten; on a large ledger building the indexes takes a moment.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("attempt") as batch:
        batch.add_column(sa.Column("inf_refmsgid", sa.String(30)))
    op.create_index("ix_attempt_refmsgid", "attempt", ["inf_refmsgid"])
    op.create_index("ix_attempt_message", "attempt", ["message_id"])
    op.create_index("ix_visit_mdtrt", "visit", ["mdtrt_id"])
    op.drop_index("ix_record_group", table_name="record")
    op.create_index("ix_record_group", "record", ["group_key", "infno", "status"])


def downgrade() -> None:
    op.drop_index("ix_visit_mdtrt", table_name="visit")
    op.drop_index("ix_record_group", table_name="record")
    op.create_index("ix_record_group", "record", ["group_key"])
    op.drop_index("ix_attempt_message", table_name="attempt")
    op.drop_index("ix_attempt_refmsgid", table_name="attempt")
    with op.batch_alter_table("attempt") as batch:
        batch.drop_column("inf_refmsgid")
