"""indexes shaped like the sweeps, the gauges and the listings: partial on open states, added online

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-16 10:00:00

Each sweep asks for "rows in state X whose time T has come"; these indexes hold only the rows in X,
ordered by T, so a sweep reads the due rows and nothing else, however large the history (final jobs) or
the future (scheduled jobs) grows. The queries name their states as SQL literals (`models.db.fixed`), so
even a generic plan (psycopg prepares a statement after 5 executions) can prove the index predicate.

On PostgreSQL every index is built with CREATE INDEX CONCURRENTLY outside a transaction, so a live
deployment keeps writing while it runs; an invalid index left by an interrupted build is dropped and
built again. SQLite builds them in the migration's transaction (INCLUDE columns are PostgreSQL only).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OPEN = "'scheduled', 'queued', 'submitting', 'submitted'"
_UNNOTED = "outcome <> coalesce(notified_outcome, 'pending') OR (final IS true AND notified_final IS false)"

#: name, table, columns, partial predicate (None: whole table), INCLUDE columns (PostgreSQL only)
INDEXES: list[tuple[str, str, list[str], str | None, list[str]]] = [
    # release: scheduled jobs that became due
    ("ix_smsq_job_scheduled_due", "smsq_job", ["due_at"], "state = 'scheduled'", []),
    # release: unsent jobs past their validity
    ("ix_smsq_job_unsent_expires", "smsq_job", ["expires_at"],
     "state IN ('scheduled', 'queued') AND expires_at IS NOT NULL", []),
    # release: connections with due queued jobs; the backlog-age gauge
    ("ix_smsq_job_queued_due", "smsq_job", ["connection", "due_at"], "state = 'queued'", ["qos_rank"]),
    # reconcile: claims stuck in submitting
    ("ix_smsq_job_submitting_claimed", "smsq_job", ["claimed_at"], "state = 'submitting'", []),
    # the oldest-submitting gauge
    ("ix_smsq_job_submitting_updated", "smsq_job", ["connection", "updated_at"], "state = 'submitting'", []),
    # the open-jobs gauge (index-only) and the open-recipients gauge's join
    ("ix_smsq_job_open", "smsq_job", ["id"], f"state IN ({_OPEN})", ["state", "connection"]),
    # the callback sweep: jobs whose outcomes are still to be noted
    ("ix_smsq_job_callback_pending", "smsq_job", ["id"], "callback_open", []),
    # `smsq jobs`: latest first
    ("ix_smsq_job_created", "smsq_job", ["created_at"], None, []),
    # the open-recipients gauge
    ("ix_smsq_recipient_open", "smsq_recipient", ["job_id"], "NOT final", ["outcome"]),
    # the callback sweep: recipients whose outcome changed since last noted (the query's `_changed()`)
    ("ix_smsq_recipient_unnoted", "smsq_recipient", ["job_id"], _UNNOTED, []),
    # reconcile: in-flight provider calls past the settle time
    ("ix_smsq_submission_in_flight", "smsq_submission", ["started_at"], "state = 'in_flight'", []),
    # poll: due accepted submissions per connection, and the oldest one (the listing window)
    ("ix_smsq_submission_accepted_due", "smsq_submission", ["connection", "next_poll_at"],
     "state = 'accepted'", []),
    ("ix_smsq_submission_accepted_started", "smsq_submission", ["connection", "started_at"],
     "state = 'accepted'", []),
]  # fmt: skip


def _options(where: str | None, include: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if where is not None:
        options["postgresql_where"] = options["sqlite_where"] = sa.text(where)
    if include:
        options["postgresql_include"] = include
    return options


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for name, table, columns, where, include in INDEXES:
            op.create_index(name, table, columns, **_options(where, include))
        return
    with op.get_context().autocommit_block():
        for name, table, columns, where, include in INDEXES:
            valid = bind.exec_driver_sql(
                "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %(name)s AND pg_table_is_visible(c.oid)",
                {"name": name},
            ).scalar()
            if valid:
                continue  # built by an earlier, interrupted run of this migration
            if valid is False:  # an interrupted CONCURRENTLY build leaves an invalid index behind
                op.drop_index(name, table_name=table, postgresql_concurrently=True)
            op.create_index(name, table, columns, postgresql_concurrently=True, **_options(where, include))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        for name, table, *_ in reversed(INDEXES):
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        for name, table, *_ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
