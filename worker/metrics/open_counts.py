"""The open-work gauges (`smsq_jobs`, `smsq_open_recipients`) as counts maintained on write.

On PostgreSQL, statement-level triggers (migration 0005) append the change of each statement to
`smsq_gauge_delta`, one row per (gauge, state or outcome, connection): inserts only, so concurrent writers
never wait on a shared counter row. A gauge is the sum of its rows, and `compact` folds the rows into one
per group (the scrape and the reconcile sweep call it), so the sum reads a few rows at any scale.

On SQLite, the embedded small-scale store, there are no triggers: the gauges count the open rows directly
(`worker.metrics.server.open_jobs_query`, `open_recipients_query`), which is what the counts equal.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from models.db import fixed
from models.tables import GaugeDelta

JOBS = "jobs"  # label: the job state
RECIPIENTS = "recipients"  # label: the recipient's outcome

_COMPACT = text(
    "WITH gone AS (DELETE FROM smsq_gauge_delta RETURNING gauge, label, connection, n) "
    "INSERT INTO smsq_gauge_delta (gauge, label, connection, n) "
    "SELECT gauge, label, connection, sum(n) FROM gone GROUP BY gauge, label, connection HAVING sum(n) <> 0"
)


def counted(session: Session) -> bool:
    """True where the triggers keep the counts (PostgreSQL)."""
    return session.get_bind().dialect.name == "postgresql"


def counted_query(gauge: str) -> Any:
    """(label, connection, count) of one gauge: the sum of its deltas, groups that sum to 0 left out."""
    total = func.sum(GaugeDelta.n)
    return (
        select(GaugeDelta.label, GaugeDelta.connection, total)
        .where(col(GaugeDelta.gauge) == fixed(gauge))
        .group_by(col(GaugeDelta.label), col(GaugeDelta.connection))
        .having(total != 0)
    )


def compact(session: Session) -> None:
    """Replace the deltas by their sums, in the caller's transaction. A concurrent compaction skips the
    rows this one deleted; rows written after its snapshot stay for the next one: nothing is counted twice.
    """
    if counted(session):
        session.execute(_COMPACT)
