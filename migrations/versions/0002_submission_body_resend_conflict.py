"""submission: the exact call body for a resend, the submission it resends, a recorded conflict; claim indexes

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
    # The drain's claim: the head (express first, oldest), its compatible batch, and its own rows.
    # Partial indexes, so a job leaving `queued` (or its claim) costs them no new entry on PostgreSQL.
    queued, claimed = sa.text("state = 'queued'"), sa.text("claim_token IS NOT NULL")
    op.create_index(
        "ix_smsq_job_claim_token", "smsq_job", ["claim_token"],
        postgresql_where=claimed, sqlite_where=claimed,
    )  # fmt: skip
    op.create_index(
        "ix_smsq_job_head", "smsq_job", ["connection", "qos_rank", "created_at"],
        postgresql_where=queued, sqlite_where=queued,
    )  # fmt: skip
    op.create_index(
        "ix_smsq_job_batch", "smsq_job", ["connection", "options_key", "created_at"],
        postgresql_where=queued, sqlite_where=queued,
    )  # fmt: skip
    with op.batch_alter_table("smsq_submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("resend_of", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True)
        )
        batch_op.add_column(sa.Column("conflict", sa.Text(), nullable=True))
        batch_op.create_index("ix_smsq_submission_state_started", ["state", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("smsq_submission", schema=None) as batch_op:
        batch_op.drop_index("ix_smsq_submission_state_started")
        batch_op.drop_column("conflict")
        batch_op.drop_column("resend_of")
        batch_op.drop_column("body")
    op.drop_index("ix_smsq_job_batch", table_name="smsq_job")
    op.drop_index("ix_smsq_job_head", table_name="smsq_job")
    op.drop_index("ix_smsq_job_claim_token", table_name="smsq_job")
