"""Sending due outbox events: a signed POST to a webhook, or a task message to the application's queue.

One process delivers at a time (the beat task holds a Redis lock), so a pending row needs no claim: it is
sent, then marked `delivered`, or given its next attempt with exponential backoff and jitter, or marked
`failed` once its retry period (`SMSQ_CALLBACK_RETRY_PERIOD_S`) has ended. A process killed mid-send
leaves the row pending and due: it is sent again (at least once; the receiver deduplicates on the id).

Bounds: at most `SMSQ_CALLBACK_CONCURRENCY` requests in flight per receiver (scheme://host:port, or the
task's queue), a bounded batch read per round, and a time budget per run, so a slow receiver holds a few
threads for at most its timeout and the rest waits in the database, not in memory or the broker.
These HTTP calls use a plain httpx client: they never pass the provider limiter.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from kombu import Queue as KombuQueue  # type: ignore[attr-defined]
from sqlalchemy import update
from sqlmodel import col, select

from models.db import transaction, utc
from models.tables import CallbackEvent, CallbackState, Job
from worker.callbacks.metrics import CALLBACK_ATTEMPTS, CALLBACK_EVENTS
from worker.callbacks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from worker.runtime import Runtime

log = logging.getLogger("smsq.callbacks")

#: Events read per round; most threads used at once, whatever the number of receivers.
BATCH = 200
MAX_THREADS = 32
#: First retry delay; doubled per attempt up to SMSQ_CALLBACK_BACKOFF_MAX_S.
BACKOFF_BASE_S = 1.0

Attempt = Callable[["Due"], str | None]


@dataclass(frozen=True)
class Due:
    """One due event with the job's callback (where to send it)."""

    event: CallbackEvent
    callback: dict[str, Any]


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def backoff_s(attempts: int, cap_s: float) -> float:
    """Delay before attempt `attempts + 1`: doubling from 1 s, capped, with jitter (50-100 %)."""
    delay = min(cap_s, BACKOFF_BASE_S * 2 ** max(attempts - 1, 0))
    return float(delay * (0.5 + random.random() / 2))


@dataclass
class Sender:
    """Performs one attempt; returns None on success or a short error ("HTTP 503", "ConnectTimeout")."""

    rt: Runtime
    http: httpx.Client

    def __call__(self, due: Due) -> str | None:
        try:
            if due.event.kind == "webhook":
                return self._post(due)
            self._publish(due)
        except Exception as exc:  # any failure is a retry; never the receiver's answer, never a secret
            return type(exc).__name__
        return None

    def _post(self, due: Due) -> str | None:
        event = due.event
        secret = self.rt.connection(event.connection).callback_secret.get_secret_value()
        body = body_of(event.payload)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "smsq-callbacks",
            EVENT_ID_HEADER: event.id,
            SIGNATURE_HEADER: sign(secret, body),
        }
        # Streamed and closed unread: the receiver's answer body is never read into memory or logged.
        with self.http.stream("POST", due.callback["url"], content=body, headers=headers) as response:
            if 200 <= response.status_code < 300:
                return None
            return f"HTTP {response.status_code}"

    def _publish(self, due: Due) -> None:
        name = due.callback["queue"]
        self.rt.celery.send_task(
            due.callback["task"],
            args=(due.event.payload,),
            queue=KombuQueue(name, routing_key=name),  # type: ignore[no-untyped-call]
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, result: str) -> None:
        with self._lock:
            setattr(self, result, getattr(self, result) + 1)


def _record(rt: Runtime, event: CallbackEvent, error: str | None, report: DeliveryReport) -> None:
    now = rt.clock.now()
    give_up_at = utc(event.give_up_at) or now
    attempts = event.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "last_error": error}
    if error is None:
        values.update(state=CallbackState.DELIVERED, completed_at=now)
        result = "delivered"
    elif now >= give_up_at:
        values.update(state=CallbackState.FAILED, completed_at=now)
        result = "failed"
    else:
        delay = timedelta(seconds=backoff_s(attempts, rt.settings.callback_backoff_max_s))
        values["next_attempt_at"] = min(now + delay, give_up_at)  # a last attempt when the period ends
        result = "retried"
    with transaction(rt.sessions) as session:
        session.execute(
            update(CallbackEvent)
            .where(
                col(CallbackEvent.id) == event.id,
                col(CallbackEvent.state) == CallbackState.PENDING,
                col(CallbackEvent.attempts) == event.attempts,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    CALLBACK_ATTEMPTS.labels(event.connection, event.kind, "ok" if error is None else "error").inc()
    if result != "retried":
        CALLBACK_EVENTS.labels(event.connection, event.kind, result).inc()
    report.count(result)
    if error is not None:
        # Ids, the receiver's host and the short error only: never the body, the answer or a secret.
        log.info("callback %s to %s: %s (attempt %d, %s)", event.id, event.receiver, error, attempts, result)


def _due(rt: Runtime) -> list[Due]:
    now = rt.clock.now()
    with transaction(rt.sessions) as session:
        rows = session.exec(
            select(CallbackEvent, Job.callback)
            .join(Job, col(Job.id) == col(CallbackEvent.job_id))
            .where(
                col(CallbackEvent.state) == CallbackState.PENDING,
                col(CallbackEvent.next_attempt_at) <= now,
            )
            .order_by(col(CallbackEvent.next_attempt_at))
            .limit(BATCH)
        ).all()
    return [Due(event, dict(callback or {})) for event, callback in rows]


def deliver_due(rt: Runtime, attempt: Attempt, *, budget_s: float) -> DeliveryReport:
    """Send due events for up to `budget_s` (plus one timeout); at most the cap per receiver at once."""
    report = DeliveryReport()
    deadline = time.monotonic() + budget_s
    cap = rt.settings.callback_concurrency

    def run(lane: list[Due]) -> None:
        for due in lane:
            if time.monotonic() >= deadline:
                return  # left pending and due: the next run sends it
            _record(rt, due.event, attempt(due), report)

    with ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="smsq-callback") as pool:
        while time.monotonic() < deadline:
            batch = _due(rt)
            # `cap` lanes per receiver, each sent in order: never more than `cap` requests to one receiver.
            lanes: dict[str, list[list[Due]]] = defaultdict(lambda: [[] for _ in range(cap)])
            seen: dict[str, int] = defaultdict(int)
            for due in batch:
                receiver = due.event.receiver
                lanes[receiver][seen[receiver] % cap].append(due)
                seen[receiver] += 1
            futures = [pool.submit(run, lane) for groups in lanes.values() for lane in groups if lane]
            for future in futures:
                future.result()
            if len(batch) < BATCH:
                break
    return report
