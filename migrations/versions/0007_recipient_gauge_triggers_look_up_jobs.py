"""recipient gauge triggers: look up each changed job by primary key, whatever the table statistics

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-21 10:00:00

The recipient triggers of 0006 join their transition rows with the open jobs of `smsq_job`. With hash and
merge joins off, the planner may still put the open jobs on the inner side of a nested loop, materialized,
when the statistics say there are few: then every transition row is compared with every open job. After a
large enqueue, before autovacuum has analyzed `smsq_job` (86 open jobs estimated, 15,000 there), one
3,000-recipient UPDATE spent 755 ms in the trigger (9,000,000 rows removed by the join filter) where its
own work took 60 ms; and the send path runs such an UPDATE for every 3,000-recipient call (the claim's
`submission_id`), as does a poll writing its report.

Now each trigger first sums its rows by (outcome, job) and drops the groups that cancel out (a row whose
outcome, finality and job did not change adds +1 and -1: the claim's UPDATE leaves nothing), then looks
up each remaining job by primary key (a LATERAL subquery with LIMIT 1, which the planner cannot turn back
into a join of its own choosing): 3 ms for that UPDATE, and never more lookups than changed jobs.

Only the trigger functions change (`CREATE OR REPLACE FUNCTION`): no lock on the tables, nothing to
rebuild. SQLite has no triggers (its gauges count directly).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _load(filename: str, name: str) -> ModuleType:
    path = Path(__file__).with_name(filename)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _previous() -> ModuleType:
    return _load("0006_gauge_triggers_planned_per_statement.py", "smsq_migration_0006")


#: Each trigger's rows: outcome, job, finality and +1 (a recipient counted) or -1 (no longer counted).
ROWS = {
    "smsq_gauge_recipient_insert": "SELECT outcome, job_id, final, 1 AS n FROM new_rows",
    "smsq_gauge_recipient_update": "SELECT outcome, job_id, final, 1 AS n FROM new_rows "
    "UNION ALL SELECT outcome, job_id, final, -1 FROM old_rows",
    "smsq_gauge_recipient_delete": "SELECT outcome, job_id, final, -1 AS n FROM old_rows",
}


def body(rows: str) -> str:
    g = _previous()._gauges()
    return f"""{g._INSERT}
    SELECT 'recipients', d.outcome, j.connection, sum(d.n)
    FROM (SELECT outcome, job_id, sum(n) AS n FROM ({rows}) r
          WHERE NOT r.final GROUP BY outcome, job_id HAVING sum(n) <> 0) d
    CROSS JOIN LATERAL (SELECT connection FROM smsq_job
                        WHERE id = d.job_id AND state IN {g._OPEN} LIMIT 1) j
    GROUP BY d.outcome, j.connection HAVING sum(d.n) <> 0;"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    previous = _previous()
    for name, rows in ROWS.items():
        previous._replace(name, body(rows), previous.LOOKUPS)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    previous = _previous()
    for name, (old_body, settings) in previous.bodies().items():
        if name in ROWS:
            previous._replace(name, old_body, settings)
