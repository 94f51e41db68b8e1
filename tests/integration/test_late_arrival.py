"""Never twice on a late arrival: real worker processes and beat, the sandbox over HTTP.

A request reaches the provider but is accepted only later (the sandbox holds it, `late=True`, and
processes it on release even though its caller has gone). Meanwhile the worker is SIGKILLed (or its read
times out) and more jobs with the same options are queued. smsq may declare the call absent only after
the settle time, and then resends exactly the original body with duplicateDetection: whichever of the
two arrives second is refused by the provider. The provider's own records are the witness.
"""

from __future__ import annotations

import collections
import signal
import time
from typing import Any

import pytest
from sqlmodel import select

from models.db import transaction
from models.tables import Submission
from tests.conftest import settings_env, smsq_settings, wait_until
from tests.integration.test_send_path import number, one, recipient_ids
from worker.producer import enqueue_many
from worker.status import job_status

JOBS = "/rest/v1/jobs"
#: Short timeouts so a trial takes seconds: settle time = 2 + 1 + 1 = 4 s.
FAST: dict[str, Any] = {
    "provider_timeout_s": 2.0,
    "provider_connect_timeout_s": 1.0,
    "provider_accept_allowance_s": 1.0,
    "submit_timeout_s": 1.0,
    "reconcile_interval_s": 1.0,
}


def accepted_refs(box) -> collections.Counter[str]:
    """customerRef -> how many jobs the provider ACCEPTED carrying it (refused duplicates create none)."""
    refs: collections.Counter[str] = collections.Counter()
    for job in box.state.snapshot_jobs():
        for recipient in job.get("recipients", []):
            if recipient.get("customerRef"):
                refs[recipient["customerRef"]] += 1
    return refs


def post_jobs(box) -> list[Any]:
    return [c for c in box.state.calls() if c.path == JOBS and c.method == "POST"]


def _all_submitted(rt, handles) -> bool:
    return all(job_status(h.id, rt)["state"] in ("submitted", "finished") for h in handles)


@pytest.mark.parametrize("release_when", ["before the settle time", "after the resend"])
def test_a_request_held_while_the_worker_is_killed_is_never_accepted_twice(
    release_when, sandbox_factory, sqlite_url, runtime_factory, processes, redis_client
):
    box = sandbox_factory()
    settings = smsq_settings(box, sqlite_url, **FAST)
    rt = runtime_factory(settings)
    env = settings_env(settings)
    # Given a provider that holds the next call and accepts it late
    box.state.hold(JOBS, late=True, n=1)
    first = enqueue_many([one(number(i), text="Same options") for i in range(5)], runtime=rt)
    worker = processes.worker(env)
    wait_until(lambda: any(c.held for c in post_jobs(box)), 30, what="the call held at the provider")
    # When the worker dies with the call in flight, and more jobs with the same options are queued
    processes.kill(worker, signal.SIGKILL)
    second = enqueue_many([one(number(10 + i), text="Same options") for i in range(5)], runtime=rt)
    if release_when == "before the settle time":
        box.state.release()  # accepted within the allowance: the lookup finds it
    processes.worker(env)
    processes.beat(env)
    if release_when == "after the resend":
        wait_until(lambda: len(post_jobs(box)) >= 3, 60, what="the resend and the new jobs' call")
        box.state.release()  # the original arrives after the resend: refused as a duplicate
    wait_until(lambda: _all_submitted(rt, [*first, *second]), 60, what="every job submitted")
    time.sleep(0.5)
    # Then the provider accepted every recipient exactly once
    refs = accepted_refs(box)
    assert sorted(refs) == sorted(recipient_ids(rt)), processes.logs()
    assert set(refs.values()) == {1}
    with transaction(rt.sessions) as session:
        subs = list(session.exec(select(Submission)))
    if release_when == "after the resend":
        # the resend carried exactly the first five; the original came back 409
        assert [c.status_code for c in post_jobs(box) if c.held] == [409]
        resend = next(s for s in subs if s.resend_of)
        original = next(s for s in subs if s.id == resend.resend_of)
        assert (original.state, resend.body) == ("absent", original.body)
        assert resend.recipient_count == 5


def test_a_read_timeout_then_a_late_acceptance_is_never_accepted_twice(
    sandbox_factory, sqlite_url, runtime_factory, processes, redis_client
):
    box = sandbox_factory()
    settings = smsq_settings(box, sqlite_url, **FAST)
    rt = runtime_factory(settings)
    env = settings_env(settings)
    box.state.hold(JOBS, late=True, n=1)
    first = enqueue_many([one(number(20 + i), text="Timeout") for i in range(4)], runtime=rt)
    processes.worker(env, concurrency=2)
    processes.beat(env)
    wait_until(lambda: any(c.held for c in post_jobs(box)), 30, what="the call held")
    second = enqueue_many([one(number(30 + i), text="Timeout") for i in range(4)], runtime=rt)
    # The worker's read times out (2 s); the call is declared absent only after the settle time, resent
    wait_until(lambda: len(post_jobs(box)) >= 3, 60, what="the resend")
    box.state.release()
    wait_until(lambda: _all_submitted(rt, [*first, *second]), 60, what="every job submitted")
    time.sleep(0.5)
    refs = accepted_refs(box)
    assert sorted(refs) == sorted(recipient_ids(rt)), processes.logs()
    assert set(refs.values()) == {1}


def test_a_sweeper_whose_clock_runs_400_s_ahead_neither_expires_nor_resends_early(
    sandbox_factory, sqlite_url, runtime_factory, processes, redis_client
):
    box = sandbox_factory()
    # The sender stays blocked in its held call (30 s read timeout) while the skewed sweeps run.
    slow = {**FAST, "provider_timeout_s": 30.0, "provider_accept_allowance_s": 20.0}
    settings = smsq_settings(box, sqlite_url, **slow)
    rt = runtime_factory(settings)
    env = settings_env(settings)
    skewed = {**env, "SMSQ_HOST_CLOCK_OFFSET_S": "400"}
    box.state.hold(JOBS, late=True, n=1)
    # Given jobs that may wait 5 minutes (validity) and a sender whose call the provider holds
    sent = enqueue_many([one(number(40 + i), text="Skew", validityMin=5) for i in range(3)], runtime=rt)
    processes.worker(env, name="sender", queues="smsq.send,smsq.express")
    wait_until(lambda: any(c.held for c in post_jobs(box)), 30, what="the call held")
    waiting = enqueue_many([one(number(50 + i), text="Other", validityMin=5) for i in range(3)], runtime=rt)
    # When the sweeps (and lookups) run in a worker whose host clock is 400 s ahead
    processes.worker(skewed, name="sweeper", queues="smsq.sweep,smsq.poll")
    processes.beat(skewed)
    time.sleep(4.0)  # several release and reconcile rounds, well inside the 51 s settle time
    # Then nothing expired and nothing was resent early
    assert len(post_jobs(box)) == 1, processes.logs()
    assert {job_status(h.id, rt)["state"] for h in waiting} == {"queued"}
    assert {job_status(h.id, rt)["state"] for h in sent} == {"submitting"}
    # And once the provider accepts, everything goes out once
    box.state.release()
    wait_until(lambda: _all_submitted(rt, [*sent, *waiting]), 60, what="every job submitted")
    refs = accepted_refs(box)
    assert sorted(refs) == sorted(recipient_ids(rt)) and set(refs.values()) == {1}
