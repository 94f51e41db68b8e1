"""The beat task `smsq.callbacks` (queue `smsq.callback`): note changed outcomes, then send due events.

It runs under a Redis lock, so one process at a time notes and delivers: it holds one worker process
for at most its budget plus one callback timeout, and sends or polls never wait behind a receiver. Run
a worker with `-Q smsq.callback` to keep even that one process apart from the send path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import redis
from celery import shared_task

from worker.callbacks.delivery import Sender, deliver_due
from worker.callbacks.metrics import CALLBACK_NOTED
from worker.callbacks.outbox import note_outcomes
from worker.runtime import Runtime, get_runtime

LOCK_KEY = "smsq:lock:callbacks"


@contextlib.contextmanager
def held_lock(client: redis.Redis[Any], ttl_s: float) -> Iterator[bool]:
    """True when this process holds the callbacks lock (released on exit; expires if the holder dies)."""
    lock = client.lock(LOCK_KEY, timeout=max(ttl_s, 1.0), blocking=False)
    held = lock.acquire()
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()


def budget_s(rt: Runtime) -> float:
    """How long one run may send: a few intervals, at least 2 s."""
    return max(rt.settings.callback_interval_s * 4, 2.0)


def http_client(rt: Runtime) -> httpx.Client:
    """A plain client (never the provider limiter's transport), no redirects, the callback timeout."""
    timeout = rt.settings.callback_timeout_s
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    return httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)), limits=limits)


def run_callbacks(rt: Runtime) -> dict[str, Any]:
    noted = note_outcomes(rt)
    CALLBACK_NOTED.inc(noted.events)
    with http_client(rt) as http:
        sent = deliver_due(rt, Sender(rt, http), budget_s=budget_s(rt))
    return {
        "noted": noted.events,
        "jobs_closed": noted.jobs_closed,
        "delivered": sent.delivered,
        "retried": sent.retried,
        "failed": sent.failed,
    }


@shared_task(name="smsq.callbacks", ignore_result=True, send_events=False)  # type: ignore[untyped-decorator]
def callbacks_task() -> dict[str, Any]:
    rt = get_runtime()
    ttl_s = budget_s(rt) + rt.settings.callback_timeout_s + 2
    with held_lock(rt.redis, ttl_s) as held:
        if not held:
            return {"skipped": True}
        return run_callbacks(rt)
