"""Rounds of small calls: one claim carries several provider calls when each call is small.

With one recipient per call (`SMSQ_BATCH_MAX_RECIPIENTS=1`, or HTTP Simple), a round claims up to
`round_max_calls` calls' worth of jobs and commits each next call's evidence with the previous call's
acceptance. A fault part-way through a round must leave nothing in flight that was not sent, send nothing
twice, and give the unsent jobs back to the backlog.
"""

from __future__ import annotations

import json

import httpx
from sqlalchemy import text
from sqlmodel import select

from bench.database import StatementCounter
from models.clock import ManualClock
from models.db import transaction
from models.tables import Submission, SubmissionState
from tests.conftest import smsq_settings
from tests.integration.test_faults import _drain
from tests.integration.test_send_path import number, one, sandbox_refs
from worker.producer import enqueue_many
from worker.status import job_status
from worker.submit.dispatch import submit_next


class FailThird(httpx.HTTPTransport):
    """The network, with the sandbox told to answer 503 to the third send call of the test."""

    def __init__(self, box) -> None:
        super().__init__()
        self.box, self.sends = box, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.sends += 1
            if self.sends == 3:
                self.box.state.fail_next(1, status=503)
        return super().handle_request(request)


def _in_flight(rt) -> list[str]:
    with transaction(rt.sessions) as session:
        query = select(Submission.id).where(Submission.state == SubmissionState.IN_FLIGHT)
        return list(session.exec(query))


def test_a_provider_error_part_way_gives_the_rest_of_the_round_back(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(box, sqlite_url, batch_max_recipients=1, round_max_calls=8)
    rt = runtime_factory(settings, clock=clock, transport=FailThird(box))
    rt.wake = lambda *args, **kwargs: True
    handles = enqueue_many([one(number(i)) for i in range(8)], runtime=rt)

    result = submit_next("default", rt)

    # The first two calls went out, the third was answered 503: the round stops and retries later
    assert result.calls == 2 and result.kind == "retry"
    states = [job_status(h.id, rt)["state"] for h in handles]
    assert states[:2] == ["submitted", "submitted"]
    assert set(states[2:]) == {"queued"}  # the failed call's job and the ones never called
    assert _in_flight(rt) == []  # no evidence left for a call that was not made
    # And once drained, every recipient reached the provider exactly once
    _drain(rt, clock)
    assert {job_status(h.id, rt)["state"] for h in handles} == {"submitted"}
    refs = sandbox_refs(box)
    assert len(refs) == 8 and set(refs.values()) == {1}


def test_a_poison_job_part_way_fails_alone_and_the_round_goes_on(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    rt = runtime_factory(smsq_settings(sandbox, sqlite_url, batch_max_recipients=1), clock=ManualClock())
    rt.wake = lambda *args, **kwargs: False
    handles = enqueue_many([one(number(i)) for i in range(5)], runtime=rt)
    poison = handles[2].id
    with rt.engine.begin() as conn:  # as an older version could have stored it: a lone surrogate
        stored = json.loads(
            conn.execute(text("SELECT request FROM smsq_job WHERE id = :id"), {"id": poison}).scalar_one()
        )
        stored["messages"][0]["text"] = "hi \ud800 there"
        conn.execute(
            text("UPDATE smsq_job SET request = :r WHERE id = :id"), {"r": json.dumps(stored), "id": poison}
        )

    result = submit_next("default", rt)

    assert result.calls == 4  # one round: the poison's call could not be built, the others went out
    states = {h.id: job_status(h.id, rt)["state"] for h in handles}
    assert states.pop(poison) == "failed"
    assert set(states.values()) == {"submitted"}
    assert _in_flight(rt) == []
    assert len(sandbox_refs(sandbox)) == 4


def test_http_simple_sends_a_round_of_jobs_one_transaction_per_call(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    settings = smsq_settings(sandbox, sqlite_url, "retarus_http", round_max_calls=4)
    rt = runtime_factory(settings, clock=ManualClock())
    rt.wake = lambda *args, **kwargs: False
    _ = rt.sessions
    rt.limiter("default").peek()
    handles = enqueue_many([one(number(i)) for i in range(6)], runtime=rt)
    counter = StatementCounter(rt.engine)

    result = submit_next("default", rt)

    assert result.calls == 4
    assert counter.commits == 1 + 4  # the claim, then one per call
    assert [job_status(h.id, rt)["state"] for h in handles] == ["submitted"] * 4 + ["queued"] * 2
    assert submit_next("default", rt).calls == 2
    refs = sandbox_refs(sandbox)
    assert len(refs) == 6 and set(refs.values()) == {1}
