"""The done-when case: while a real worker and beat send live traffic, the retention sweep deletes only the
old final jobs, a bounded number of batches per run, and leaves open, recent and live jobs alone."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlmodel import col

from models.db import transaction
from models.enums import TERMINAL_JOB_STATES, JobState
from models.tables import Job, SubmissionState
from tests.conftest import Processes, Sandbox, settings_env, smsq_settings, wait_until
from tests.retention.conftest import REDIS_URL
from tests.retention.support import Seeder, existing
from worker.producer import enqueue_many
from worker.runtime import Runtime

DAY = timedelta(days=1)
BATCH, MAX_BATCHES = 20, 2
FAST: dict[str, Any] = {
    "broker_url": REDIS_URL,
    "poll_interval_s": 1.0,
    "release_interval_s": 1.0,
    "reconcile_interval_s": 2.0,
    "callback_interval_s": 1.0,
    "retention_days": 30,
    "retention_interval_s": 1.0,
    "retention_batch": BATCH,
    "retention_max_batches": MAX_BATCHES,
}


def _sent(rt: Runtime, ids: list[str]) -> bool:
    """Every job of `ids` reached the provider (submitted) or is final."""
    done = {JobState.SUBMITTED, *TERMINAL_JOB_STATES}
    with transaction(rt.sessions) as session:
        states = session.execute(select(col(Job.state)).where(col(Job.id).in_(ids))).scalars().all()
    return len(states) == len(ids) and all(state in done for state in states)


def _old_final_left(rt: Runtime, ids: list[str]) -> int:
    with transaction(rt.sessions) as session:
        return int(session.execute(select(func.count()).where(col(Job.id).in_(ids))).scalar_one())


def _retention_results(log: str) -> list[dict[str, Any]]:
    """Every smsq.retention result the worker logged (`Task smsq.retention[...] succeeded in ...: {...}`)."""
    found = re.findall(r"Task smsq\.retention\[[^\]]+\] succeeded in [0-9.]+s: (\{.*\})", log)
    return [ast.literal_eval(text) for text in found]


def test_retention_deletes_only_old_final_jobs_in_batches_while_workers_run(
    sandbox: Sandbox,
    postgres_url: str,
    runtime_factory: Callable[..., Runtime],
    processes: Processes,
) -> None:
    settings = smsq_settings(sandbox, postgres_url, **FAST)
    rt = runtime_factory(settings)
    seed = Seeder(rt.sessions, rt.clock.now())  # the database's clock
    for index in range(150):
        seed.job(
            "old_final", (31 + index % 60) * DAY, ("finished", "expired", "failed")[index % 3], recipients=1
        )
    for index in range(20):
        seed.job("recent_final", (index % 29) * DAY + timedelta(hours=1), recipients=1)
    parked = seed.submission(40 * DAY, SubmissionState.ACCEPTED)  # not due for a poll: stays open
    for _ in range(10):
        seed.job("old_open", 40 * DAY, "scheduled", recipients=1, due_at=seed.now + 365 * DAY)
        seed.job("old_open", 40 * DAY, "submitted", recipients=1, submission=parked)
    old_final = seed.made["old_final"]
    kept = [*seed.made["recent_final"], *seed.made["old_open"]]

    env = settings_env(settings)
    processes.worker(env, concurrency=2)
    processes.beat(env)
    live = [
        job.id
        for job in enqueue_many(
            [
                {"messages": [{"text": f"live {i}", "recipients": [{"dst": f"+4917640{i:06d}"}]}]}
                for i in range(30)
            ],
            runtime=rt,
        )
    ]
    wait_until(lambda: _old_final_left(rt, old_final) == 0, 60, what="every old final job purged")
    wait_until(lambda: _sent(rt, live), 60, what="every live job sent by the workers")

    assert existing(rt.sessions, Job, kept) == set(kept), processes.logs()
    assert existing(rt.sessions, Job, live) == set(live)  # new: kept
    full = "\n".join(log.read_text() for _, log in processes.started)
    results = [r for r in _retention_results(full) if r.get("jobs")]
    assert sum(r["jobs"] for r in results) == len(old_final), processes.logs()
    assert len(results) >= len(old_final) // (BATCH * MAX_BATCHES)  # spread over several runs
    assert all(r["batches"] <= MAX_BATCHES and r["jobs"] <= BATCH * MAX_BATCHES for r in results)
