"""gauge triggers: plan each statement that reads a big table with the statement's own row counts

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20 10:00:00

The triggers of 0005 join their transition tables with `smsq_recipient` or `smsq_job`. PL/pgSQL plans a
static statement once per session and keeps that plan, and the planner sizes a transition table by the
rows it holds at that first firing. A session whose first firing was a large statement (a claim of 3,000
jobs, a poll finishing them) kept a plan built for 3,000 rows: a sequential scan and sort of the whole
recipient table, then reused for every one-row UPDATE after it. Measured at 30,000 recipient rows: 75 ms
per one-row job UPDATE instead of 0.2 ms, so a poll finishing 3,000 jobs spent minutes in the trigger
(and it grows with the table). Now:

- the job trigger (a few firings per round or poll) runs its recipient statements through `EXECUTE`,
  planned at every firing with the true sizes (index lookups for a few jobs, a hash join for thousands),
  and only when some job moved in or out of the open states (the send path's claim and acceptance move
  none);
- the recipient triggers (one firing per row of an executemany: an enqueue, a poll's report) stay static,
  planned once, but with hash and merge joins and sequential scans off for the function (`SET` on the
  function), so their join with `smsq_job` is a primary-key lookup per row whatever the first firing;
  the update trigger no longer pairs old and new rows (that join, over two transition tables, would be
  quadratic as a nested loop): an unchanged row adds +1 and -1 to the same group, which is dropped.

Only the trigger functions change (`CREATE OR REPLACE FUNCTION`): no lock on the tables, nothing to
rebuild. SQLite has no triggers (its gauges count directly).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _gauges() -> ModuleType:
    # 0005's SQL, so both revisions speak of the same statements (alembic loads it too).
    path = Path(__file__).with_name("0005_counted_gauges.py")
    spec = importlib.util.spec_from_file_location("smsq_migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dynamic(statement: str) -> str:
    """`statement` run through EXECUTE: planned at every firing, with the transition tables' true sizes."""
    text = statement.strip().removesuffix(";")
    if text.startswith("PERFORM "):
        text = "SELECT " + text.removeprefix("PERFORM ")
    return f"EXECUTE $q${text}$q$;"


#: A function's own planner settings: its joins are lookups by primary key, whatever the first firing.
LOOKUPS = "SET enable_hashjoin = off SET enable_mergejoin = off SET enable_seqscan = off"


def bodies() -> dict[str, tuple[str, str]]:
    """The new body and function settings of each trigger function that reads a big table."""
    g = _gauges()
    # Not EXISTS: that is planned for an early match, a nested loop over old x new rows when none matches.
    moved_any = f"SELECT count(*) > 0 FROM ({g._MOVED}) m"
    job_update = (
        f"{g._JOB_DELTA.format(rows=g._NEW_JOBS + ' UNION ALL ' + g._OLD_JOBS)}\n"
        f"    EXECUTE $q${moved_any}$q$ INTO moved;\n"
        "    IF moved THEN\n"
        + "".join(f"        {_dynamic(s)}\n" for s in g._JOBS_UPDATE.split(";")[1:] if s.strip())
        + "    END IF;"
    )
    # Recipients fire once per row in an executemany (a poll's report, an enqueue): planning each firing
    # would cost more than the statement, so these stay static, with nested loops by primary key forced.
    # The update no longer pairs old and new rows (a join over two transition tables, quadratic as a
    # nested loop): a row that changed none of outcome, finality or job adds +1 and -1 to the same group,
    # which the HAVING drops.
    recipient_update = g._RECIPIENT_DELTA.format(
        rows="SELECT outcome, job_id, final, 1 AS n FROM new_rows "
        "UNION ALL SELECT outcome, job_id, final, -1 FROM old_rows"
    )
    out = {"smsq_gauge_job_update": (job_update, "")}
    for name, table, event, _referencing, body in g.TRIGGERS:
        if table == "smsq_recipient":
            out[name] = (recipient_update if event == "UPDATE" else body, LOOKUPS)
    return out


def _replace(name: str, body: str, settings: str = "") -> None:
    # CREATE OR REPLACE sets every attribute: a function given no SET clause loses an earlier one.
    op.execute(
        f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql {settings} AS $$\n"
        f"DECLARE\n    moved boolean;\nBEGIN\n    {body}\n    RETURN NULL;\nEND\n$$"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, (body, settings) in bodies().items():
        _replace(name, body, settings)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    changed = bodies()
    for name, _table, _event, _referencing, body in _gauges().TRIGGERS:
        if name in changed:
            _replace(name, body)
