"""In-process flow without Celery: enqueue -> submit -> poll -> finished, for each provider."""

from __future__ import annotations

import pytest

from models.clock import ManualClock
from scheduler.poll import poll_connection
from tests.conftest import smsq_settings
from worker.producer import enqueue
from worker.status import job_status
from worker.submit.dispatch import submit_next


class _NoPublish:
    def __call__(self, *a, **k):
        return 0


@pytest.mark.parametrize("provider", ["retarus", "retarus_http", "sendmode"])
def test_one_job_goes_through_each_provider(
    provider, sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    rt = runtime_factory(smsq_settings(box, sqlite_url, provider), clock=clock)
    rt.wake = _NoPublish()
    handle = enqueue(
        {
            "messages": [
                {"text": "Hello", "recipients": [{"dst": "+4917612340000"}, {"dst": "+4917612340001"}]}
            ]
        },
        runtime=rt,
    )
    result = submit_next("default", rt)
    if provider == "retarus_http":
        while result.kind == "sent" and job_status(handle.id, rt)["state"] == "queued":
            result = submit_next("default", rt)
    assert result.kind == "sent", result
    for _ in range(10):
        clock.advance(30)
        poll_connection(rt, "default")
        if job_status(handle.id, rt)["state"] == "finished":
            break
    status = job_status(handle.id, rt)
    assert status["state"] == "finished", status
    outcomes = {r["dst"]: r["outcome"] for r in status["recipients"]}
    if provider == "sendmode":
        assert outcomes == {"+4917612340000": "accepted", "+4917612340001": "accepted"}
    else:
        assert outcomes["+4917612340000"] == "accepted"
        assert outcomes["+4917612340001"] == "undeliverable"
