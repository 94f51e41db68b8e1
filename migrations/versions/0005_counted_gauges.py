"""open-work gauges counted on write (PostgreSQL), callback sweep indexes proportional to their answer

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-18 10:00:00

Gauges. `smsq_jobs` and `smsq_open_recipients` counted the open rows at every scrape, which grows with
the open set. On PostgreSQL, statement-level AFTER triggers with transition tables now append one
aggregated delta row per (gauge, state or outcome, connection) and statement to `smsq_gauge_delta`: an
INSERT only, so writers never wait on a shared counter row. The gauge sums the table; the scrape and the
reconcile sweep compact it (`worker.metrics.open_counts.compact`). The table is filled with the current
counts in the transaction that creates the triggers, under a SHARE ROW EXCLUSIVE lock on both tables,
so the counts start exact. SQLite (embedded, small) keeps counting directly: the table exists, unused.

The recipient gauge depends on the job's state too (recipients not final *of open jobs*). A job trigger
that moves a job in or out of the open states first locks the job's non-final recipients FOR SHARE, so a
concurrent transaction changing one of them is counted either entirely before or entirely after it.

Callback sweep. Recipients of jobs without a callback were never noted, so `ix_smsq_recipient_unnoted`
held most of the history. Recipients of a job with a callback are now stored with `notified_outcome =
'pending'` (the old NULL meant the same); those of jobs without one keep NULL and stay out of the new
`ix_smsq_recipient_to_note`. The recipients of jobs whose callback is still open get 'pending' here.
Run `smsq migrate` with the old workers stopped: an old producer would store NULL for a callback job.

Indexes are built CONCURRENTLY outside a transaction (as in 0004); the replaced ones are dropped after.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_OPEN = "('scheduled', 'queued', 'submitting', 'submitted')"
_TERMINAL = "('canceled', 'expired', 'failed', 'finished', 'rejected')"
_TO_NOTE = "notified_outcome IS NOT NULL AND (outcome <> notified_outcome OR (final IS true AND notified_final IS false))"

#: name, table, columns, partial predicate, INCLUDE columns (PostgreSQL only)
INDEXES: list[tuple[str, str, list[str], str, list[str]]] = [
    # the callback sweep: recipients of callback jobs whose outcome changed since last noted, in its order
    ("ix_smsq_recipient_to_note", "smsq_recipient", ["job_id", "id"], _TO_NOTE, []),
    # the callback sweep: terminal jobs whose callback is still open
    ("ix_smsq_job_callback_closable", "smsq_job", ["id"], f"callback_open AND state IN {_TERMINAL}", []),
    # reconcile: in-flight provider calls past the settle time, index-only
    ("ix_smsq_submission_in_flight_ids", "smsq_submission", ["started_at"], "state = 'in_flight'", ["id"]),
]  # fmt: skip
#: replaced by the ones above: name, table, columns, predicate (for the downgrade)
REPLACED: list[tuple[str, str, list[str], str | None]] = [
    # the whole-table boolean index (0003): a generic plan preferred it to the closable one, then filtered
    ("ix_smsq_job_callback_open", "smsq_job", ["callback_open"], None),
    # jobs with an open callback (0004): the sweep no longer starts from them (a plan that did read all)
    ("ix_smsq_job_callback_pending", "smsq_job", ["id"], "callback_open"),
    ("ix_smsq_recipient_unnoted", "smsq_recipient", ["job_id"],
     "outcome <> coalesce(notified_outcome, 'pending') OR (final IS true AND notified_final IS false)"),
    ("ix_smsq_submission_in_flight", "smsq_submission", ["started_at"], "state = 'in_flight'"),
]  # fmt: skip

_INSERT = "INSERT INTO smsq_gauge_delta (gauge, label, connection, n)"
#: (trigger function, table, event, transition tables, body)
_JOB_DELTA = f"""{_INSERT}
    SELECT 'jobs', label, connection, sum(n) FROM ({{rows}}) d GROUP BY label, connection HAVING sum(n) <> 0;"""
_NEW_JOBS = f"SELECT state AS label, connection, 1 AS n FROM new_rows WHERE state IN {_OPEN}"
_OLD_JOBS = f"SELECT state AS label, connection, -1 AS n FROM old_rows WHERE state IN {_OPEN}"
# jobs moving in or out of the open states (or between connections): their non-final recipients count
_MOVED = f"""SELECT o.id, o.connection AS old_connection, n.connection AS new_connection,
        o.state IN {_OPEN} AS was_open, n.state IN {_OPEN} AS is_open
    FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE (o.state IN {_OPEN}) <> (n.state IN {_OPEN}) OR o.connection <> n.connection"""
_JOBS_UPDATE = f"""{_JOB_DELTA.format(rows=_NEW_JOBS + " UNION ALL " + _OLD_JOBS)}
    PERFORM 1 FROM smsq_recipient r JOIN ({_MOVED}) m ON r.job_id = m.id WHERE NOT r.final FOR SHARE OF r;
    {_INSERT}
    SELECT 'recipients', r.outcome, x.connection, sum(x.n)
    FROM smsq_recipient r JOIN (
        SELECT id, old_connection AS connection, -1 AS n FROM ({_MOVED}) m WHERE was_open
        UNION ALL SELECT id, new_connection, 1 FROM ({_MOVED}) m WHERE is_open) x ON r.job_id = x.id
    WHERE NOT r.final GROUP BY r.outcome, x.connection HAVING sum(x.n) <> 0;"""
_RECIPIENT_DELTA = f"""{_INSERT}
    SELECT 'recipients', d.outcome, j.connection, sum(d.n)
    FROM ({{rows}}) d JOIN smsq_job j ON j.id = d.job_id
    WHERE NOT d.final AND j.state IN {_OPEN} GROUP BY d.outcome, j.connection HAVING sum(d.n) <> 0;"""
# only the rows whose outcome, finality or job changed (not the callback sweep's notes, not the progress)
_CHANGED = """FROM old_rows o JOIN new_rows n ON n.id = o.id
    WHERE o.outcome <> n.outcome OR o.final <> n.final OR o.job_id <> n.job_id"""
TRIGGERS: list[tuple[str, str, str, str, str]] = [
    # new jobs have no recipients yet (the foreign key): only the jobs gauge moves
    ("smsq_gauge_job_insert", "smsq_job", "INSERT", "NEW TABLE AS new_rows", _JOB_DELTA.format(rows=_NEW_JOBS)),
    ("smsq_gauge_job_update", "smsq_job", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows", _JOBS_UPDATE),
    # a deleted job has no recipients left (the foreign key)
    ("smsq_gauge_job_delete", "smsq_job", "DELETE", "OLD TABLE AS old_rows", _JOB_DELTA.format(rows=_OLD_JOBS)),
    ("smsq_gauge_recipient_insert", "smsq_recipient", "INSERT", "NEW TABLE AS new_rows",
     _RECIPIENT_DELTA.format(rows="SELECT outcome, job_id, final, 1 AS n FROM new_rows")),
    ("smsq_gauge_recipient_update", "smsq_recipient", "UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
     _RECIPIENT_DELTA.format(rows=f"SELECT n.outcome, n.job_id, n.final, 1 AS n {_CHANGED}"
                             f" UNION ALL SELECT o.outcome, o.job_id, o.final, -1 {_CHANGED}")),
    ("smsq_gauge_recipient_delete", "smsq_recipient", "DELETE", "OLD TABLE AS old_rows",
     _RECIPIENT_DELTA.format(rows="SELECT outcome, job_id, final, -1 AS n FROM old_rows")),
]  # fmt: skip

#: The counts at the time the triggers start (under the triggers' lock, so none is missed or doubled).
_BACKFILL = [
    f"""{_INSERT} SELECT 'jobs', state, connection, count(*) FROM smsq_job WHERE state IN {_OPEN}
        GROUP BY state, connection""",
    f"""{_INSERT} SELECT 'recipients', r.outcome, j.connection, count(*)
        FROM smsq_recipient r JOIN smsq_job j ON j.id = r.job_id WHERE j.state IN {_OPEN} AND NOT r.final
        GROUP BY r.outcome, j.connection""",
]
#: Recipients of jobs whose callback is still open: 'pending' is what their NULL meant.
_MARK_WATCHED = """UPDATE smsq_recipient SET notified_outcome = 'pending'
    WHERE notified_outcome IS NULL AND job_id IN (SELECT id FROM smsq_job WHERE callback_open)"""


def _options(where: str | None, include: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if where is not None:
        options = {"postgresql_where": sa.text(where), "sqlite_where": sa.text(where)}
    if include:
        options["postgresql_include"] = include
    return options


def _create_counters(postgresql: bool) -> None:
    op.create_table(
        "smsq_gauge_delta",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("gauge", sa.String(16), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        sa.Column("connection", sa.String(64), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
    )
    if not postgresql:
        return
    op.execute("LOCK TABLE smsq_job, smsq_recipient IN SHARE ROW EXCLUSIVE MODE")
    for name, table, event, referencing, body in TRIGGERS:
        op.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$\n"
            f"BEGIN\n    {body}\n    RETURN NULL;\nEND\n$$"
        )
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} REFERENCING {referencing} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
        )
    for statement in _BACKFILL:
        op.execute(statement)


def _build_index(bind: Any, name: str, table: str, columns: list[str], options: dict[str, Any]) -> None:
    valid = bind.exec_driver_sql(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relname = %(name)s AND pg_table_is_visible(c.oid)",
        {"name": name},
    ).scalar()
    if valid:
        return  # built by an earlier, interrupted run of this migration
    if valid is False:  # an interrupted CONCURRENTLY build leaves an invalid index behind
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
    op.create_index(name, table, columns, postgresql_concurrently=True, **options)


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    op.execute(_MARK_WATCHED)
    _create_counters(postgresql)
    if not postgresql:
        for name, table, columns, where, include in INDEXES:
            op.create_index(name, table, columns, **_options(where, include))
        for name, table, *_ in REPLACED:
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, where, include in INDEXES:
            _build_index(bind, name, table, columns, _options(where, include))
        for name, table, *_ in REPLACED:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)


def downgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        for name, table, *_ in reversed(TRIGGERS):
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    op.drop_table("smsq_gauge_delta")
    if not postgresql:
        for name, table, columns, where in REPLACED:
            op.create_index(name, table, columns, **_options(where, []))
        for name, table, *_ in reversed(INDEXES):
            op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        for name, table, columns, where in REPLACED:
            _build_index(bind, name, table, columns, _options(where, []))
        for name, table, *_ in reversed(INDEXES):
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
