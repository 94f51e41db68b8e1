"""The task form: smsq publishes each event to the application's own task name and queue, consumed here by
a real Celery worker of a separate application. Also the by-name enqueue (`smsq.enqueue`) with a callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.callbacks.app_receiver import RECEIVED_KEY
from tests.callbacks.conftest import REDIS_URL, callback_settings
from tests.callbacks.support import TEXT, enqueue_with, finish_job, numbers, recipient_ids, write_outcome
from tests.conftest import ROOT, Sandbox, wait_until
from worker.callbacks.outbox import event_id
from worker.callbacks.tasks import run_callbacks
from worker.runtime import Runtime

NO_PROVIDER = Sandbox("http://127.0.0.1:9", None)


@pytest.fixture
def app_worker(tmp_path: Path, clean_redis: redis.Redis[Any]) -> Iterator[None]:
    log = tmp_path / "app-worker.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(PYTHONPATH=str(ROOT), APP_BROKER_URL=REDIS_URL)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.callbacks.app_receiver",
                "worker",
                "-Q",
                "app.outcomes",
                "-P",
                "solo",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                "app@%h",
                "--loglevel=INFO",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(lambda: b"ready." in log.read_bytes() or proc.poll() is not None, 30, what="app worker")
        assert proc.poll() is None, log.read_text()
        yield
    finally:
        os.killpg(proc.pid, 9)
        proc.wait(10)


def test_events_reach_the_applications_own_task_and_queue(
    sqlite_url: str, make_runtime: Callable[..., Runtime], clean_redis: redis.Redis[Any], app_worker: None
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url))
    job_id = enqueue_with(rt, {"task": "app.sms_outcome", "queue": "app.outcomes"}, count=2)
    ids = recipient_ids(rt, job_id)
    write_outcome(rt, ids[0], "delivered", True, process_status="DONE", status="SUC_FIN")
    write_outcome(rt, ids[1], "expired", True, process_status="DONE", status="TIMEOUT")
    finish_job(rt, job_id)
    assert run_callbacks(rt)["delivered"] == 3
    raw = wait_until(
        lambda: clean_redis.llen(RECEIVED_KEY) >= 3 and clean_redis.lrange(RECEIVED_KEY, 0, -1), 20
    )
    events = [json.loads(item) for item in raw]
    assert sorted(e["id"] for e in events) == sorted(
        [
            event_id(ids[0], "delivered", True),
            event_id(ids[1], "expired", True),
            event_id(job_id, "finished", True),
        ]
    )
    assert {(e["recipient_id"], e["outcome"]) for e in events if e["type"] == "recipient"} == {
        (ids[0], "delivered"),
        (ids[1], "expired"),
    }
    assert all(TEXT not in item.decode() and numbers(2)[0] not in item.decode() for item in raw)


def test_the_by_name_enqueue_takes_a_callback(
    sqlite_url: str, make_runtime: Callable[..., Runtime], receiver: Any
) -> None:
    from models.db import transaction
    from models.tables import Job
    from worker.tasks import enqueue_task

    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url, enqueue_by_name=True))
    request = {"messages": [{"text": "Hi", "recipients": [{"dst": "+4917612345678"}]}]}
    job_id = enqueue_task.apply(
        kwargs={"request": request, "callback": {"url": receiver.url, "events": "all"}}
    ).get()
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        assert (
            job is not None and job.callback == {"url": receiver.url, "events": "all"} and job.callback_open
        )
