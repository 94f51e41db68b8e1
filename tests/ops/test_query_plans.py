"""Every sweep, poll, callback-sweep and gauge query reads its partial index, even in a generic plan.

psycopg prepares a statement after 5 executions and PostgreSQL may then plan it once for any parameter
values (a generic plan). The queries name their states as SQL literals so that plan can still prove the
predicate of the partial index shaped for it (migration 0004). Here every query is PREPAREd as smsq sends
it and EXPLAINed under `plan_cache_mode = force_generic_plan`, on a database filled like bench/queries.py
(20 % of jobs scheduled in the future, most final): no sequential scan of a big table, and the index named.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from bench.queries import fill, generic_plan, queries, scratch_database
from models.db import make_engine

ROWS = 5000

#: The index each query must use (a query may use more).
EXPECTED = {
    "release: expired unsent jobs": "ix_smsq_job_unsent_expires",
    "release: due scheduled jobs": "ix_smsq_job_scheduled_due",
    "release: connections with due queued jobs": "ix_smsq_job_head",
    "reconcile: stuck submitting jobs": "ix_smsq_job_submitting_claimed",
    "reconcile: in-flight submissions": "ix_smsq_submission_in_flight_ids",
    "poll: due accepted submissions (default)": "ix_smsq_submission_accepted_due",
    "poll: oldest accepted submission (default)": "ix_smsq_submission_accepted_started",
    "callbacks: changed recipients": "ix_smsq_recipient_to_note",
    "callbacks: closable jobs": "ix_smsq_job_callback_closable",
    "callbacks: due events": "ix_smsq_callback_due",
    # the gauges read the few rows of the counts kept on write (migration 0005), never the open rows
    "gauge: open jobs by state (counted on write)": "smsq_gauge_delta",
    "gauge: open recipients by outcome (counted on write)": "smsq_gauge_delta",
    "gauge: backlog age (default)": "ix_smsq_job_queued_due",
    "gauge: oldest submitting (default)": "ix_smsq_job_submitting_updated",
    "listing: `smsq jobs` latest 50": "ix_smsq_job_created",
}


@pytest.fixture(scope="module")
def filled_engine():
    with scratch_database("plans") as url:
        fill(url, ROWS)
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.mark.parametrize("name", list(EXPECTED))
def test_generic_plan_reads_the_partial_index(filled_engine, name):
    statement = {n: s for n, _, s in queries(datetime.now(UTC))}[name]
    plan = generic_plan(filled_engine, statement)
    assert not re.search(r"Seq Scan on smsq_(job|recipient|submission|callback)\b", plan), plan
    assert EXPECTED[name] in plan, plan


def test_every_timed_query_is_checked():
    assert [name for name, _, _ in queries(datetime.now(UTC))] == list(EXPECTED)
