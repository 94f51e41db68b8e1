"""callbacks: the job's callback, what each recipient last noted, the outbox of events

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("smsq_job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("callback_open", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index("ix_smsq_job_callback_open", ["callback_open"], unique=False)
    with op.batch_alter_table("smsq_recipient", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("notified_outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True)
        )
        batch_op.add_column(
            sa.Column("notified_final", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "smsq_callback",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("job_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("recipient_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("connection", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("receiver", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("give_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("smsq_callback", schema=None) as batch_op:
        batch_op.create_index("ix_smsq_callback_due", ["state", "next_attempt_at"], unique=False)
        batch_op.create_index("ix_smsq_callback_job", ["job_id", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("smsq_callback", schema=None) as batch_op:
        batch_op.drop_index("ix_smsq_callback_job")
        batch_op.drop_index("ix_smsq_callback_due")
    op.drop_table("smsq_callback")
    with op.batch_alter_table("smsq_recipient", schema=None) as batch_op:
        batch_op.drop_column("notified_final")
        batch_op.drop_column("notified_outcome")
    with op.batch_alter_table("smsq_job", schema=None) as batch_op:
        batch_op.drop_index("ix_smsq_job_callback_open")
        batch_op.drop_column("callback_open")
        batch_op.drop_column("callback")
