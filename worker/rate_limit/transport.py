"""Every HTTP request to a provider passes through its connection's limiter, at the last moment.

`LimitedTransport` wraps the real httpx transport of a provider client: right before each request is
handed to the network, after all database work of the send path, it takes a slot from the connection's
`RedisRateLimiter` (waiting at most about a second, never busy-looping), and a 429 answer pauses the
whole connection for its Retry-After. Because the limiter sits at the transport, no code path (send,
poll, lookup, listing pages, data-center failover) can make an uncounted call, and the delay between
grant and wire is only this function's own few lines (measured: `smsq_limiter_grant_to_wire_seconds`).
A grant that went stale before the request could be written (the thread was descheduled for longer
than half the limiter's margin) is not used: another slot is taken, so the margin still holds.

The kind of call ("send" or "poll") comes from a context variable set with `call_kind(...)`; requests
made outside one count as "poll".
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from worker.errors import RateLimitExceeded
from worker.metrics.counters import (
    GRANT_TO_WIRE,
    LIMITER_WAIT_SECONDS,
    PROVIDER_CALLS,
    PROVIDER_REQUEST_SECONDS,
    PROVIDER_THROTTLED,
    STALE_GRANTS,
    operation_name,
)
from worker.providers.base import parse_retry_after
from worker.rate_limit.limiter import CallKind, RedisRateLimiter

#: How long one request may wait for a slot before giving up with RateLimitExceeded.
MAX_WAIT_S = 1.0
#: A drain handed back to wait for a slot is woken this much before the slot frees (less than MAX_WAIT_S),
#: so its claim is made while the slot is still taken and its request is written the moment it frees.
WAKE_LEAD_S = 0.8


@dataclass
class CallTrace:
    """What the requests made inside one `call_kind` block did: how many were handed to the network."""

    kind: CallKind
    written: int = 0


_trace: contextvars.ContextVar[CallTrace | None] = contextvars.ContextVar("smsq_call_trace", default=None)


@contextlib.contextmanager
def call_kind(kind: CallKind) -> Iterator[CallTrace]:
    """Requests made inside count as `kind`; the yielded trace says whether any reached the network."""
    trace = CallTrace(kind)
    token = _trace.set(trace)
    try:
        yield trace
    finally:
        _trace.reset(token)


def take_slot(
    limiter: RedisRateLimiter,
    kind: CallKind,
    *,
    max_wait_s: float = MAX_WAIT_S,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Take a slot, sleeping at most `max_wait_s`; 0.0 on success, else the seconds still to wait."""
    slept_s = 0.0
    while True:
        wait_s = limiter.try_acquire(kind)
        if wait_s == 0.0:
            return 0.0
        remaining_s = max_wait_s - slept_s
        if limiter.on_wait is not None:
            limiter.on_wait(kind, wait_s)
        if wait_s > remaining_s:
            return wait_s
        nap_s = max(wait_s, 0.001)
        sleep(nap_s)
        slept_s += nap_s


class LimitedTransport(httpx.BaseTransport):
    """An httpx transport that takes a limiter slot right before every request."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        limiter: RedisRateLimiter,
        connection: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._inner = inner
        self._limiter = limiter
        self._connection = connection
        self._monotonic = monotonic
        self._sleep = sleep
        self._stale_after_s = limiter.margin_s / 2

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        operation = _operation(request)
        trace = _trace.get()
        self._grant(trace.kind if trace is not None else "poll")
        if trace is not None:
            trace.written += 1
        started_s = time.perf_counter()
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            seconds = PROVIDER_REQUEST_SECONDS.labels(self._connection, operation)
            seconds.observe(time.perf_counter() - started_s)
            PROVIDER_CALLS.labels(self._connection, operation, type(exc).__name__).inc()
            raise
        seconds = PROVIDER_REQUEST_SECONDS.labels(self._connection, operation)
        seconds.observe(time.perf_counter() - started_s)
        PROVIDER_CALLS.labels(self._connection, operation, str(response.status_code)).inc()
        if response.status_code == 429:
            PROVIDER_THROTTLED.labels(self._connection).inc()
            self._limiter.pause(parse_retry_after(response.headers.get("Retry-After")) or 1.0)
        return response

    def _grant(self, kind: CallKind) -> None:
        """Take a slot; if it went stale before we got it back, take another (the margin must hold).

        The grant happened inside the Redis round trip, so "now minus when we asked" bounds the time
        from grant to here; only the inner transport's own work (keep-alive: no connect) follows.
        """
        waited_s = 0.0
        while True:
            asked_at = self._monotonic()
            grant = self._limiter.attempt(kind)
            wait_s = grant.wait_s
            if grant.granted:
                # Rebuilding a lost window (first call after Redis restarted) came before the grant.
                delay_s = self._monotonic() - asked_at - grant.recovery_s
                if delay_s <= self._stale_after_s:
                    GRANT_TO_WIRE.labels(self._connection).observe(delay_s)
                    LIMITER_WAIT_SECONDS.labels(self._connection, kind).observe(waited_s)
                    return
                STALE_GRANTS.labels(self._connection).inc()
                continue
            if self._limiter.on_wait is not None:
                self._limiter.on_wait(kind, wait_s)
            if waited_s + wait_s > MAX_WAIT_S:
                raise RateLimitExceeded(wait_s)
            nap_s = max(wait_s, 0.001)
            self._sleep(nap_s)
            waited_s += nap_s

    def close(self) -> None:
        self._inner.close()


def _operation(request: httpx.Request) -> str:
    """A low-cardinality label for a request: an operation name such as `send_job` (ids folded)."""
    last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith(("J.", "S.")):
        last = "{id}"
    return operation_name(request.method, last)
