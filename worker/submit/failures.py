"""What a provider call that did not end in an acceptance means for its submission and for the round.

`record_failure` sorts the exception a call raised: refused by the limiter or a 429 (nothing sent, the
round waits), an unknown fate (left in flight for `resolve`), a provider retry, a refusal of the content
(that job alone is rejected, or a shared call is split up), the limiter's Redis away before the request
was written, or an error of our own. Only a call known not to have created anything releases its
recipients; `RoundResult` carries what the round must do next.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import redis

from worker.errors import (
    DeliveryUnknown,
    DuplicateJob,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
)
from worker.runtime import Runtime
from worker.submit.calls import ProviderCall
from worker.submit.record import close_failed, isolate, mark_unknown, reject, reject_unsendable
from worker.submit.settle import Failure, Requeued

log = logging.getLogger("smsq.dispatch")

RoundKind = Literal["sent", "idle", "throttled", "paused", "retry", "unknown"]

#: What one call's answer means for the round: it was accepted, the round goes on, or it stops.
Step = tuple[Literal["accepted", "next", "stop"], Failure | None]


@dataclass
class RoundResult:
    """What one submission round did; `wait_s` says when trying again makes sense."""

    kind: RoundKind
    wait_s: float = 0.0
    calls: int = 0
    requeued: list[Requeued] = field(default_factory=list)
    resolve: list[str] = field(default_factory=list)  # submissions whose fate must be looked up
    invited: bool = False  # woke another drain to help with the backlog


def _unknown(rt: Runtime, sub_id: str, reason: str, result: RoundResult) -> None:
    mark_unknown(rt, sub_id, reason)
    result.kind = "unknown"
    result.resolve.append(sub_id)


def record_failure(
    rt: Runtime, exc: Exception, call: ProviderCall, sub_id: str, result: RoundResult, *, written: bool
) -> Step:
    """Record why a call failed; only a call known not to have created anything releases its recipients."""
    if isinstance(exc, RateLimitExceeded | ProviderThrottled):
        wait_s = exc.wait_s if isinstance(exc, RateLimitExceeded) else exc.retry_after_s or 1.0
        close_failed(
            rt, sub_id, "rate limit reached before the call was made" if written is False else str(exc)
        )
        result.kind, result.wait_s = "throttled", wait_s
        return "stop", exc
    if isinstance(exc, DeliveryUnknown | DuplicateJob):
        _unknown(rt, sub_id, str(exc), result)
        return "stop", exc
    if isinstance(exc, RetryableProviderError | ProviderAuthError):
        close_failed(rt, sub_id, str(exc))
        result.kind = "retry"
        return "stop", exc
    if isinstance(exc, PermanentProviderError):
        if len(call.job_ids) > 1:
            close_failed(rt, sub_id, str(exc))
            isolate(rt, call.job_ids)  # one job's content may have spoiled the shared call
        else:
            reject(rt, sub_id, call, str(exc))
        return "next", None
    if isinstance(exc, ProviderError):  # a provider error of no known kind: treat its fate as unknown
        _unknown(rt, sub_id, str(exc), result)
        return "stop", exc
    if isinstance(exc, redis.RedisError) and not written:
        # The limiter's Redis is away (restart, failover): the request was never written. Try later, as a
        # wait, not as a provider retry and never as a refusal.
        close_failed(rt, sub_id, f"not sent: the limiter's Redis did not answer ({type(exc).__name__})")
        result.kind, result.wait_s = "throttled", 1.0
        return "stop", None
    # Not a provider answer: a bug, or an encoding error while building the request. If the request never
    # reached the transport, the call did not leave: the job is isolated and, when alone, fails with a
    # reason, while its neighbours go on. If it did, its fate is unknown.
    log.error("call for submission %s failed: %s", sub_id, type(exc).__name__)
    if written:
        _unknown(rt, sub_id, f"error after the request was written: {type(exc).__name__}", result)
        return "stop", None
    if len(call.job_ids) > 1:
        close_failed(rt, sub_id, f"could not build the request: {type(exc).__name__}")
        isolate(rt, call.job_ids)
    else:
        reject_unsendable(rt, sub_id, call, type(exc).__name__)
    return "next", None
