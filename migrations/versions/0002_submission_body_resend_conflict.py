"""submission: the exact call body for a resend, the submission it resends, a recorded conflict

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("smsq_submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("resend_of", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        batch_op.add_column(sa.Column("conflict", sa.Text(), nullable=True))
        batch_op.create_index("ix_smsq_submission_state_started", ["state", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("smsq_submission", schema=None) as batch_op:
        batch_op.drop_index("ix_smsq_submission_state_started")
        batch_op.drop_column("conflict")
        batch_op.drop_column("resend_of")
        batch_op.drop_column("body")
