"""A poison job among five valid neighbours (issue 15, Done-when 2), with real worker and beat processes.

Validation now refuses a lone surrogate at enqueue, so the poison is made as data an older version would
have stored: six jobs with identical options are enqueued (they coalesce into one Retarus call), then,
before any worker runs, one job's stored request is rewritten so that its text holds a lone surrogate.
The request for the shared call cannot be built (UTF-8 cannot encode it), so nothing leaves: the send path
isolates the jobs, the five valid ones are delivered, the poison ends `failed` with a reason. The worker
runs at DEBUG and its log (and beat's) must hold no number, no message text and no password.

Redis is a private `redis-server` on a free port (bench.chaos.PrivateRedis): nothing shared is touched.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from bench.chaos import Fleet, PrivateRedis
from models.migrate import upgrade
from tests.conftest import SANDBOX_PASS, SANDBOX_USER, Sandbox, wait_until
from worker.celery_app import create_celery_app
from worker.producer import enqueue_many
from worker.runtime import Runtime
from worker.settings import load_settings, settings_environment

NUMBERS = [f"+4917655501{i:02d}" for i in range(6)]  # none ends in a sandbox magic number
GOOD_TEXT = "Neighbour text Quokka"
POISON_TEXT = "hi \ud800 there Wombat"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    yield server
    server.kill()


def accepted_refs(box: Sandbox) -> collections.Counter[str]:
    refs: collections.Counter[str] = collections.Counter()
    for job in box.state.snapshot_jobs():
        for recipient in job.get("recipients", []):
            if recipient.get("customerRef"):
                refs[recipient["customerRef"]] += 1
    return refs


def test_a_poison_job_fails_alone_its_neighbours_are_delivered_and_the_log_stays_clean(
    sandbox_factory: Any, tmp_path: Path, private_redis: PrivateRedis
) -> None:
    box = sandbox_factory()
    url = f"sqlite:///{tmp_path / 'smsq.db'}"
    upgrade(url)
    settings = load_settings(
        broker_url=private_redis.url, database_url=url, provider="retarus", provider_url=box.rest_url,
        provider_username=SANDBOX_USER, provider_password=SANDBOX_PASS,
        poll_interval_s=1.0, poll_max_interval_s=2.0, release_interval_s=1.0, reconcile_interval_s=1.0,
        queued_grace_s=3.0, submit_timeout_s=3.0, retry_backoff_max_s=2.0,
    )  # fmt: skip
    rt = Runtime(settings, celery=create_celery_app(settings))
    try:
        # Given six jobs with identical options (one provider call), enqueued while no worker runs
        options = {"src": "ACME", "statusRequested": True}
        requests = [
            {"messages": [{"text": GOOD_TEXT, "recipients": [{"dst": n}]}], "options": options}
            for n in NUMBERS
        ]
        handles = enqueue_many(requests, runtime=rt)
        poison, good = handles[0].id, [h.id for h in handles[1:]]
        # And the first one's stored request rewritten as an older version could have stored it
        engine = create_engine(url)
        with engine.begin() as conn:
            stored = json.loads(
                conn.execute(text("SELECT request FROM smsq_job WHERE id = :id"), {"id": poison}).scalar_one()
            )
            stored["messages"][0]["text"] = POISON_TEXT
            conn.execute(
                text("UPDATE smsq_job SET request = :r WHERE id = :id"),
                {"r": json.dumps(stored), "id": poison},
            )

        # When a worker at DEBUG and beat run
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
        env.update(settings_environment(settings))
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
        fleet = Fleet(env, tmp_path, loglevel="DEBUG")
        try:
            fleet.worker(concurrency=1)
            fleet.beat()

            def states() -> dict[str, str]:
                with engine.connect() as conn:
                    rows = conn.execute(text("SELECT id, state FROM smsq_job"))
                    return {str(i): str(s) for i, s in rows}

            def done() -> bool:
                now = states()
                return now[poison] == "failed" and all(now[g] == "finished" for g in good)

            try:
                wait_until(done, 60, what="the poison failed and its neighbours finished")
            except BaseException:
                print(states(), fleet.logs()[-6000:])
                raise
            assert fleet.restarts == {}, fleet.restarts
        finally:
            fleet.stop()
        log = fleet.logs()

        # Then the five neighbours were delivered, each accepted once; the poison never left
        with engine.connect() as conn:
            rows = list(conn.execute(text("SELECT job_id, id, outcome, reason FROM smsq_recipient")))
            reason = conn.execute(
                text("SELECT reason FROM smsq_job WHERE id = :id"), {"id": poison}
            ).scalar_one()
        outcomes = {str(job): str(outcome) for job, _, outcome, _ in rows}
        assert all(outcomes[g] == "delivered" for g in good), outcomes
        assert outcomes[poison] == "failed"
        refs = accepted_refs(box)
        poison_ref = next(str(rid) for job, rid, _, _ in rows if str(job) == poison)
        assert poison_ref not in refs
        assert sorted(refs) == sorted(str(rid) for job, rid, _, _ in rows if str(job) != poison)
        assert set(refs.values()) == {1}
        assert reason, "the poison job must carry a reason"
        assert "\ud800" not in reason and "Wombat" not in reason
        # the shared call was never written (the request could not be built); then five calls, one per job
        assert len([c for c in box.state.calls() if c.method == "POST"]) == 5

        # And the DEBUG logs hold no number, no text, no password
        assert "DEBUG" in log  # the level really was DEBUG
        leaks = [n for n in NUMBERS if n in log or n[3:] in log]
        leaks += [t for t in ("Quokka", "Wombat", "\\ud800", SANDBOX_PASS) if t in log]
        assert leaks == [], [line for line in log.splitlines() if any(x in line for x in leaks)][:10]
    finally:
        rt.close()
