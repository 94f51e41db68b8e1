"""Submitting: drain a connection's backlog into provider calls, recording each call before it is made.

The use case behind the `smsq.drain` task. `drain(connection)` loops while work is due and slots come:

1. checks that a send slot is free now or within a second (`limiter.peek`, which takes nothing), and
   for Sendmode that the balance covers the waiting parts; otherwise it hands back to the broker with a
   wake-up at the time the slot frees;
2. claims the backlog head plus compatible jobs (`claim.claim_batch`: SKIP LOCKED on PostgreSQL);
3. for each provider call: commits a `Submission` row (`in_flight`, with the exact Retarus body),
   calls the provider (the transport takes the slot right before the request is written), and records
   the answer: accepted, refused (the job alone is rejected), known not sent (released), or unknown
   (left in flight for `resolve`);
4. settles the batch: one UPDATE when every claimed recipient went out, per job otherwise.

A drain runs at most `drain_max_s`, then hands back (a wake-up on the broker), so one connection never
holds a worker thread for long and sweeps and polls interleave. Under backlog one drain invites helpers
(`Waker.join`, up to `drain_concurrency` per connection).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from models.db import transaction, utc
from models.enums import JobState, ProviderKey
from models.tables import Job
from worker.memory import batch_gate
from worker.metrics.counters import ENQUEUE_TO_SUBMITTED, RECIPIENTS_SUBMITTED, observe_all
from worker.policy.credits import RECHECK_S as CREDIT_RECHECK_S
from worker.policy.credits import credit_pause
from worker.rate_limit.transport import MAX_WAIT_S, CallTrace, call_kind
from worker.runtime import Runtime
from worker.submit.answers import accept_round
from worker.submit.calls import ProviderCall
from worker.submit.claim import claim_batch, round_limit
from worker.submit.failures import RoundResult, Step, record_failure
from worker.submit.record import Evidence, Prepared, accept, new_submission, open_submission, preparer
from worker.submit.resolve import settle_time
from worker.submit.settle import Failure, Requeued, settle_jobs

#: Longest a round of several calls goes on starting calls after its claim (`round_end`: also at most a
#: quarter of the time `resolve` waits before it may call an unanswered call absent). The jobs of the calls
#: not started go back to the backlog.
ROUND_CALLS_S = 5.0


@dataclass
class DrainResult:
    """How a drain ended: `idle` (nothing due), `throttled`/`paused` (wake again in `wait_s`), `yield`."""

    kind: Literal["idle", "throttled", "paused", "yield"]
    wait_s: float = 0.0
    calls: int = 0
    rounds: int = 0
    requeued: list[Requeued] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)


def drain(
    rt: Runtime, connection: str, *, invite: bool = True, heartbeat: Callable[[], None] | None = None
) -> DrainResult:
    """Submit the connection's due backlog until it is empty, the limiter says wait, or time is up.
    `heartbeat` runs before every round (the task renews its drain lease there)."""
    deadline = time.monotonic() + rt.settings.drain_max_s
    result = DrainResult("idle")
    while True:
        if heartbeat is not None:
            heartbeat()
        if time.monotonic() > deadline:
            result.kind = "yield"
            return result
        round_ = submit_next(connection, rt, invite=invite)
        if round_.kind == "idle":
            return result
        invite = invite and not round_.invited
        result.rounds += 1
        result.calls += round_.calls
        result.requeued.extend(round_.requeued)
        result.resolve.extend(round_.resolve)
        if round_.kind in ("throttled", "paused"):
            result.kind, result.wait_s = round_.kind, max(round_.wait_s, 0.001)
            return result


def submit_next(connection: str, rt: Runtime, *, invite: bool = False) -> RoundResult:
    """One round: if a send slot is (nearly) free, claim the backlog head plus compatible jobs and submit.

    With `invite`, a full batch (more backlog than one call carries) wakes another drain to join.
    """
    provider = ProviderKey(rt.connection(connection).provider)
    if provider is ProviderKey.SENDMODE and credit_pause(rt, connection) is not None:
        return RoundResult("paused", wait_s=CREDIT_RECHECK_S)
    limiter = rt.limiter(connection)
    wait_s = limiter.peek("send")
    if wait_s > MAX_WAIT_S:
        limiter.mark_send_demand()  # sends filled their share and wait: polls keep to their reserve
        return RoundResult("throttled", wait_s=wait_s)
    limit = round_limit(rt, connection, provider)
    with batch_gate(limit):  # one large batch in memory per process at a time (worker/memory.py)
        claim = claim_batch(rt, connection, provider, preparer(rt, connection, provider), limit)
        if claim is None:
            return RoundResult("idle")
        if claim.full:  # more backlog than one call carries: sends have demand
            limiter.mark_send_demand()
        invited = invite and claim.full and rt.wake(connection)
        result = submit_claim(rt, connection, claim.token, claim.prepared)
        del claim  # its rows and bodies are freed before another thread's batch may start
    result.invited = invited
    return result


def submit_job(job_id: str, rt: Runtime) -> RoundResult:
    """One round for the connection of `job_id`, if that job is still waiting and due (CLI and tests)."""
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.state != JobState.QUEUED:
            return RoundResult("idle")
        connection, due_at = job.connection, utc(job.due_at)
    if due_at is not None and due_at > rt.clock.now():
        return RoundResult("idle")  # the release sweep wakes the connection when it is due
    return submit_next(connection, rt)


def submit_claim(rt: Runtime, connection: str, token: str, prepared: Prepared) -> RoundResult:
    """Make the prepared calls of the claim `token`, record each answer, and settle the jobs.

    Retarus REST: every call's evidence came with the claim, and the answers are recorded together
    (`_submit_opened`). HTTP Simple and Sendmode: one transaction per call, its acceptance plus the next
    call's evidence. Either way a clean, complete round (every call accepted, no recipient held back)
    moves the whole claim with its last record; anything else settles job by job. A round stops starting
    calls once it has run `ROUND_CALLS_S` (a slow provider, a loaded host): the jobs of the calls it did
    not make go back to the backlog.
    """
    provider = ProviderKey(rt.connection(connection).provider)
    if provider is ProviderKey.RETARUS and prepared.calls:  # every call's evidence is committed
        return _submit_opened(rt, connection, token, prepared)
    calls = prepared.calls
    result = RoundResult("sent" if calls else "idle")
    client = rt.client(connection)
    failure: Failure | None = None
    clean = prepared.complete
    target = (
        JobState.FINISHED if provider is ProviderKey.SENDMODE else JobState.SUBMITTED
    )  # accepted is final
    opened: dict[int, Evidence] = {0: prepared.subs[0]} if calls else {}
    budget_end = round_end(rt, connection)
    for index, call in enumerate(calls):
        last = index == len(calls) - 1
        # A round that has run past its budget (a slow provider, a loaded host) makes this call and no more.
        ends = not last and rt.clock.now() > budget_end
        sub = opened.pop(index, None) or open_submission(rt, connection, provider, prepared.jobs, call)
        settle = (token, target) if clean and last else None
        # The next call's evidence is committed with this call's acceptance (one transaction per call).
        then_open = None if last or ends else (new_submission(rt, connection, provider, prepared.jobs,
                                                              calls[index + 1]), calls[index + 1])  # fmt: skip
        outcome, failure = _call(rt, client, call, sub, provider, connection, result, settle, then_open)
        if outcome == "accepted":
            if then_open is not None:
                opened[index + 1] = then_open[0]
            result.calls += 1
            _observe_submitted(rt, connection, prepared, call)
            if ends:
                clean = False  # the jobs of the calls not made are settled below: back to the backlog
                break
            continue
        clean = False
        if outcome == "stop":
            break
    job_ids = prepared.job_ids
    if clean and calls:
        job_ids = []  # the last acceptance moved the whole claim
    result.requeued = settle_jobs(rt, job_ids, failure=failure, retry=result.kind == "retry")
    if result.kind == "retry" and result.requeued:
        result.wait_s = max(item.delay_s for item in result.requeued)
    return result


def _submit_opened(rt: Runtime, connection: str, token: str, prepared: Prepared) -> RoundResult:
    """A Retarus REST round whose calls' evidence was committed with the claim: make the calls (up to
    `round_parallel_calls` at a time), then record every acceptance, and settle a clean, complete claim,
    in one transaction (`answers.accept_round`).

    A call whose fate is known at once (refused, not sent, unknown) is recorded as it happens, as in any
    round. When the round stops early (throttled, a provider retry, an unknown fate) or runs past its time
    budget, the calls not yet started are never made: they are closed `failed` and their recipients go
    back to the backlog. Should the process die part-way, nothing is lost or sent twice: `resolve` looks
    every call left in flight up, finds the ones made, and resends the ones never made (exact body,
    duplicateDetection)."""
    result = RoundResult("sent")
    calls = _OpenedCalls(rt, connection, prepared, result)
    try:
        calls.make_all()
    finally:
        # Also when making them failed (the database, mid-round): what was accepted is recorded if the
        # database answers (and found by lookup otherwise); the calls never started are closed.
        settle = (token, JobState.SUBMITTED) if calls.clean and not calls.unmade else None
        accepted = [(sub, job_id) for sub, _, job_id in calls.accepted]
        moved = accept_round(rt, accepted, calls.unmade, settle=settle)
    for _, call, _ in calls.accepted:
        result.calls += 1
        RECIPIENTS_SUBMITTED.labels(connection).inc(len(call.recipients))
        _observe_submitted(rt, connection, prepared, call)
    job_ids = [] if moved and settle is not None else prepared.job_ids  # a clean round moved the claim
    result.requeued = settle_jobs(rt, job_ids, failure=calls.failure, retry=result.kind == "retry")
    if result.kind == "retry" and result.requeued:
        result.wait_s = max(item.delay_s for item in result.requeued)
    return result


class _OpenedCalls:
    """The calls of a round with committed evidence, made in order by up to `round_parallel_calls`
    threads; a call that stops the round keeps the calls not yet started from being made."""

    def __init__(self, rt: Runtime, connection: str, prepared: Prepared, result: RoundResult) -> None:
        self.rt, self.result = rt, result
        self.client = rt.client(connection)
        self.pairs = list(zip(prepared.calls, prepared.subs, strict=True))
        self.budget_end = round_end(rt, connection)
        self.accepted: list[tuple[Evidence, ProviderCall, str]] = []
        self.unmade: list[str] = []
        self.failure: Failure | None = None
        self.clean = prepared.complete
        self._started: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def make_all(self) -> None:
        parallel = min(self.rt.settings.round_parallel_calls, len(self.pairs))
        try:
            if parallel == 1:
                for index in range(len(self.pairs)):
                    self._make(index)
            else:
                with ThreadPoolExecutor(parallel, thread_name_prefix="smsq-call") as pool:
                    list(pool.map(self._make, range(len(self.pairs))))
        finally:
            self.unmade = [sub.id for index, (_, sub) in enumerate(self.pairs) if index not in self._started]
            if self.unmade:
                self.clean = False

    def _make(self, index: int) -> None:
        with self._lock:
            if self._stop.is_set() or (index and self.rt.clock.now() > self.budget_end):
                self._stop.set()
                return
            self._started.add(index)
        call, sub = self.pairs[index]
        trace = CallTrace("send")
        try:
            with call_kind("send") as trace:
                provider_job_id = call.run(self.client)
        except Exception as exc:
            with self._lock:
                self.clean = False
                written = trace.written > 0
                outcome, failure = record_failure(self.rt, exc, call, sub.id, self.result, written=written)
                self.failure = self.failure or failure
                if outcome == "stop":
                    self._stop.set()
            return
        if provider_job_id is None:  # REST always answers with one (`post_job` raises otherwise)
            raise AssertionError("Retarus accepted a job without a jobId")
        with self._lock:
            self.accepted.append((sub, call, provider_job_id))


def round_end(rt: Runtime, connection: str) -> datetime:
    """When a round of several calls stops starting calls: `ROUND_CALLS_S` after its claim, and never later
    than a quarter of the time `resolve` waits before an unanswered call may be called absent."""
    return rt.clock.now() + min(timedelta(seconds=ROUND_CALLS_S), settle_time(rt, connection) / 4)


def _observe_submitted(rt: Runtime, connection: str, prepared: Prepared, call: ProviderCall) -> None:
    carried = set(call.job_ids)
    now = rt.clock.now()  # the claimed jobs' times are aware UTC (ClaimedJob), as is the clock's
    waits = ((now - max(j.created_at, j.due_at)).total_seconds() for j in prepared.jobs if j.id in carried)
    observe_all(ENQUEUE_TO_SUBMITTED, connection, waits)  # metric: due -> accepted


def _call(
    rt: Runtime,
    client: object,
    call: ProviderCall,
    sub: Evidence,
    provider: ProviderKey,
    connection: str,
    result: RoundResult,
    settle: tuple[str, JobState] | None,
    then_open: tuple[Evidence, ProviderCall] | None = None,
) -> Step:
    """Make one provider call and record its answer; says whether the round goes on."""
    trace = CallTrace("send")
    try:
        with call_kind("send") as trace:
            provider_job_id = call.run(client)
    except Exception as exc:
        return record_failure(rt, exc, call, sub.id, result, written=trace.written > 0)
    accept(rt, sub, provider, provider_job_id, settle=settle, then_open=then_open)
    RECIPIENTS_SUBMITTED.labels(connection).inc(len(call.recipients))
    return "accepted", None
