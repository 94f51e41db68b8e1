"""The open-work gauges stay exact: after a real workload (enqueue, send, poll, release, state changes
written the way a cancel would, retention deletes) they equal a direct COUNT of the open rows.

On PostgreSQL they are counts kept on write by the triggers of migration 0005 (`smsq_gauge_delta`); on
SQLite the gauges count directly, and the same workload checks that path still answers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, text
from sqlmodel import select

from models.clock import ManualClock
from models.db import transaction
from models.tables import GaugeDelta
from scheduler.poll import poll_connection
from scheduler.sweeps import reconcile, release
from tests.conftest import smsq_settings
from worker.metrics.open_counts import compact, counted
from worker.metrics.server import DatabaseCollector, open_jobs_query, open_recipients_query
from worker.producer import enqueue_many
from worker.retention import purge
from worker.runtime import Runtime
from worker.submit.dispatch import submit_next


def _direct_and_gauge(rt: Runtime) -> tuple[dict[str, set[Any]], dict[str, set[Any]]]:
    with transaction(rt.sessions) as session:
        direct = {
            "jobs": {tuple(row) for row in session.exec(open_jobs_query())},
            "recipients": {tuple(row) for row in session.exec(open_recipients_query())},
        }
        gauge = {
            "jobs": {tuple(row) for row in session.exec(open_jobs_query(session))},
            "recipients": {tuple(row) for row in session.exec(open_recipients_query(session))},
        }
    return direct, gauge


def _check(rt: Runtime, step: str) -> dict[str, set[Any]]:
    direct, gauge = _direct_and_gauge(rt)
    assert gauge == direct, step
    return direct


def _sql(rt: Runtime, statement: str, **params: Any) -> None:
    with transaction(rt.sessions) as session:
        session.execute(text(statement), params)


def _one(dst: str, **options: Any) -> dict[str, Any]:
    return {
        "messages": [{"text": "Hello", "recipients": [{"dst": dst}, {"dst": dst[:-1] + "1"}]}],
        "options": options,
    }


def test_gauges_equal_a_direct_count_after_a_real_workload(
    database_url, sandbox_factory, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    rt = runtime_factory(smsq_settings(box, database_url), clock=clock)
    rt.wake = lambda *a, **k: 0  # no broker: the rounds are run here
    later = (clock.now() + timedelta(hours=1)).isoformat()
    requests = [_one(f"+491761234{i:03d}0") for i in range(6)] + [_one("+4917612349990", jobPeriod=later)]
    ids = [handle.id for handle in enqueue_many(requests, runtime=rt)]
    assert _check(rt, "enqueued")["jobs"], "open jobs expected"

    # A job moved out of the open states while its recipients are not final, then its recipients (a cancel)
    _sql(rt, "UPDATE smsq_job SET state = 'canceled' WHERE id = :id", id=ids[0])
    _check(rt, "job canceled, recipients open")
    _sql(rt, "UPDATE smsq_recipient SET outcome = 'canceled', final = true WHERE job_id = :id", id=ids[0])
    _check(rt, "recipients canceled")

    for _ in range(10):  # send what is due
        if submit_next("default", rt).kind == "idle":
            break
    assert _check(rt, "submitted")["jobs"] == {("submitted", "default", 6)}  # jobPeriod: at the provider
    for _ in range(6):  # poll to the final outcomes
        clock.advance(30)
        poll_connection(rt, "default")
    assert _check(rt, "polled")["jobs"] == {("submitted", "default", 1)}  # the rest finished

    clock.advance(2 * 3600)  # the scheduled job becomes due, is released and sent
    release(rt)
    _check(rt, "released")
    submit_next("default", rt)
    reconcile(rt)  # compacts the counts on PostgreSQL
    _check(rt, "sent after release")

    removed = purge(rt.sessions, clock.now() + timedelta(days=1), batch=3)  # retention deletes final jobs
    assert removed.jobs >= 5
    _check(rt, "purged")
    _sql(rt, "DELETE FROM smsq_recipient WHERE job_id = :id", id=ids[-1])  # an open job's recipients go
    _sql(rt, "DELETE FROM smsq_job WHERE id = :id", id=ids[-1])
    assert _check(rt, "open job deleted") == {"jobs": set(), "recipients": set()}

    families = {family.name: family for family in DatabaseCollector(rt).collect()}
    assert {s.value for s in families["smsq_jobs"].samples} == {0}
    assert not families["smsq_open_recipients"].samples
    with transaction(rt.sessions) as session:
        if counted(session):
            compact(session)
            left = session.exec(select(func.count()).select_from(GaugeDelta)).one()
            assert left == 0, "compaction folds the deltas to the non-zero sums"
