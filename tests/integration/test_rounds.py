"""Rounds of small calls: one claim carries several provider calls when each call is small.

With one recipient per call (`SMSQ_BATCH_MAX_RECIPIENTS=1`, or HTTP Simple), a round claims up to
`round_max_calls` calls' worth of jobs. On Retarus REST every call's evidence is committed with the claim
and the answers are recorded together after the calls; HTTP Simple (no lookup) commits each next call's
evidence with the previous call's acceptance. A fault part-way through a round must send nothing twice,
lose nothing, and give the unsent jobs back to the backlog; a worker dying mid-round leaves calls in
flight that `resolve` sorts out by lookup.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlmodel import select

from bench.database import StatementCounter
from models.clock import ManualClock
from models.db import transaction
from models.enums import ProviderKey
from models.tables import Recipient, Submission, SubmissionState
from tests.conftest import smsq_settings
from tests.integration.test_faults import _drain
from tests.integration.test_send_path import number, one, sandbox_refs
from worker.producer import enqueue_many
from worker.rate_limit.transport import call_kind
from worker.status import job_status
from worker.submit.claim import claim_batch
from worker.submit.dispatch import ROUND_CALLS_S, submit_claim, submit_next
from worker.submit.record import preparer


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


class OnSend(httpx.HTTPTransport):
    """The network, running `hook(n)` before the n-th send call of the test is written."""

    def __init__(self, hook) -> None:
        super().__init__()
        self.hook, self.sends = hook, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.sends += 1
            self.hook(self.sends)
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
    settings = smsq_settings(
        box, sqlite_url, batch_max_recipients=1, round_max_calls=8, round_parallel_calls=1
    )
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


def test_a_worker_dying_mid_round_loses_nothing_and_sends_nothing_twice(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(box, sqlite_url, batch_max_recipients=1, round_max_calls=8)
    rt = runtime_factory(settings, clock=clock)
    rt.wake = lambda *args, **kwargs: True
    handles = enqueue_many([one(number(i)) for i in range(8)], runtime=rt)
    # The round as a worker runs it, up to the moment the process is killed: the claim (every call's
    # evidence committed with it), then three calls made, and no answer recorded.
    retarus = ProviderKey.RETARUS
    claim = claim_batch(rt, "default", retarus, preparer(rt, "default", retarus), 8)
    assert claim is not None and len(claim.prepared.calls) == 8
    client = rt.client("default")
    for call in claim.prepared.calls[:3]:
        with call_kind("send"):
            call.run(client)
    assert len(_in_flight(rt)) == 8 and len(sandbox_refs(box)) == 3

    # Another worker and beat carry on: reconcile looks every call left in flight up; the three made are
    # found, the five never made are proven absent and sent, each exactly once.
    clock.advance(rt.settings.submit_timeout_s + 60)
    _drain(rt, clock)
    assert {job_status(h.id, rt)["state"] for h in handles} == {"submitted"}
    refs = sandbox_refs(box)
    assert len(refs) == 8 and set(refs.values()) == {1}
    assert _in_flight(rt) == []
    with transaction(rt.sessions) as session:
        states = sorted(session.exec(select(Submission.state)))
    assert states.count(SubmissionState.ABSENT) == 5 and states.count(SubmissionState.ACCEPTED) == 8


def test_an_answer_for_a_call_resolved_meanwhile_is_a_conflict_not_an_overwrite(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    settings = smsq_settings(sandbox, sqlite_url, batch_max_recipients=1, round_max_calls=4)
    holder: dict[str, Any] = {}

    def resolve_the_first_call_elsewhere(sends: int) -> None:
        if sends == 2:  # another process declared the first call absent while this round went on
            with holder["rt"].engine.begin() as conn:
                conn.execute(
                    text("UPDATE smsq_submission SET state = 'absent' WHERE id = :id"),
                    {"id": holder["first"]},
                )

    rt = runtime_factory(settings, clock=ManualClock(), transport=OnSend(resolve_the_first_call_elsewhere))
    rt.wake = lambda *args, **kwargs: False
    holder["rt"] = rt
    handles = enqueue_many([one(number(i)) for i in range(4)], runtime=rt)
    with transaction(rt.sessions) as session:
        first_recipient = session.exec(select(Recipient).where(Recipient.job_id == handles[0].id)).one()
    original_prepare = preparer(rt, "default", ProviderKey.RETARUS)

    def prepare(session, token, now):
        prepared = original_prepare(session, token, now)
        holder["first"] = next(
            sub.id
            for sub, call in zip(prepared.subs, prepared.calls, strict=True)
            if call.recipients[0].id == first_recipient.id
        )
        return prepared

    claim = claim_batch(rt, "default", ProviderKey.RETARUS, prepare, 4)
    assert claim is not None
    result = submit_claim(rt, "default", claim.token, claim.prepared)

    assert result.calls == 4
    with transaction(rt.sessions) as session:
        first = session.get(Submission, holder["first"])
        assert first is not None
        assert first.state == SubmissionState.ABSENT  # the resolution stands
        assert first.conflict is not None and "accepted late" in first.conflict
        others = session.exec(select(Submission).where(Submission.id != holder["first"])).all()
    assert {sub.state for sub in others} == {SubmissionState.ACCEPTED}
    assert [job_status(h.id, rt)["state"] for h in handles[1:]] == ["submitted"] * 3


def test_a_round_past_its_time_budget_gives_its_unmade_calls_back(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(
        box, sqlite_url, batch_max_recipients=1, round_max_calls=6, round_parallel_calls=1
    )

    def slow_host(sends: int) -> None:
        if sends == 2:  # a loaded host: the round is still calling long after its claim
            clock.advance(ROUND_CALLS_S + 1)

    rt = runtime_factory(settings, clock=clock, transport=OnSend(slow_host))
    rt.wake = lambda *args, **kwargs: False
    handles = enqueue_many([one(number(i)) for i in range(6)], runtime=rt)

    result = submit_next("default", rt)

    assert result.calls == 2  # the budget is checked before each call: the third is not made
    states = [job_status(h.id, rt)["state"] for h in handles]
    assert states == ["submitted"] * 2 + ["queued"] * 4
    assert _in_flight(rt) == []  # the unmade calls are closed, not left for a lookup
    assert submit_next("default", rt).calls == 4
    refs = sandbox_refs(box)
    assert len(refs) == 6 and set(refs.values()) == {1}


def test_an_http_simple_round_past_its_time_budget_gives_the_rest_back(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(box, sqlite_url, "retarus_http", round_max_calls=6)

    def slow_provider(sends: int) -> None:
        if sends == 2:  # each answer is slow: the round is past its budget while this call is made
            clock.advance(ROUND_CALLS_S + 1)

    rt = runtime_factory(settings, clock=clock, transport=OnSend(slow_provider))
    rt.wake = lambda *args, **kwargs: False
    handles = enqueue_many([one(number(i)) for i in range(6)], runtime=rt)

    result = submit_next("default", rt)

    # The third call's evidence was committed with the second's answer: it is made, and no call after it.
    assert result.calls == 3
    states = sorted(job_status(h.id, rt)["state"] for h in handles)
    assert states == ["queued"] * 3 + ["submitted"] * 3
    assert _in_flight(rt) == []
    assert submit_next("default", rt).calls == 3
    refs = sandbox_refs(box)
    assert len(refs) == 6 and set(refs.values()) == {1}


class Overlap(httpx.HTTPTransport):
    """The network, with every send taking 50 ms; counts how many sends were in flight at once."""

    def __init__(self, box=None) -> None:
        super().__init__()
        self.box, self.sends, self.now, self.most = box, 0, 0, 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method != "POST":
            return super().handle_request(request)
        with self.lock:
            self.sends += 1
            self.now += 1
            self.most = max(self.most, self.now)
            if self.box is not None and self.sends == 3:
                self.box.state.fail_next(1, status=503)
        try:
            time.sleep(0.05)
            return super().handle_request(request)
        finally:
            with self.lock:
                self.now -= 1


def test_a_round_makes_its_calls_in_parallel_and_records_them_at_once(
    sandbox, sqlite_url, runtime_factory, redis_client
):
    settings = smsq_settings(
        sandbox, sqlite_url, batch_max_recipients=1, round_max_calls=8, round_parallel_calls=4
    )
    network = Overlap()
    rt = runtime_factory(settings, clock=ManualClock(), transport=network)
    rt.wake = lambda *args, **kwargs: False
    _ = rt.sessions
    rt.limiter("default").peek()  # its first look at its state is not part of the round
    handles = enqueue_many([one(number(i)) for i in range(8)], runtime=rt)
    counter = StatementCounter(rt.engine)

    result = submit_next("default", rt)

    assert result.calls == 8 and network.most == 4  # four calls at a time, never more
    assert counter.commits == 2, counter.statements  # the claim, then every answer at once
    assert {job_status(h.id, rt)["state"] for h in handles} == {"submitted"}
    refs = sandbox_refs(sandbox)
    assert len(refs) == 8 and set(refs.values()) == {1}


def test_a_parallel_round_that_stops_makes_no_call_it_had_not_started(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(
        box, sqlite_url, batch_max_recipients=1, round_max_calls=12, round_parallel_calls=3
    )
    network = Overlap(box)
    rt = runtime_factory(settings, clock=clock, transport=network)
    rt.wake = lambda *args, **kwargs: True
    handles = enqueue_many([one(number(i)) for i in range(12)], runtime=rt)

    result = submit_next("default", rt)

    # The third send was answered 503: the calls already under way finished, no other was started
    assert result.kind == "retry" and network.sends < 12
    assert result.calls == network.sends - 1
    assert _in_flight(rt) == []
    states = [job_status(h.id, rt)["state"] for h in handles]
    assert states.count("submitted") == result.calls and states.count("queued") == 12 - result.calls
    # And once drained, every recipient reached the provider exactly once
    _drain(rt, clock)
    assert {job_status(h.id, rt)["state"] for h in handles} == {"submitted"}
    refs = sandbox_refs(box)
    assert len(refs) == 12 and set(refs.values()) == {1}
