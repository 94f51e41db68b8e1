"""Every HTTP request to a provider passes through its connection's limiter.

`LimitedTransport` wraps the real httpx transport of a provider client: before each request it takes
a slot from the connection's `RedisRateLimiter` (waiting at most about a second, never busy-looping),
and a 429 answer pauses the whole connection for its Retry-After. Because the limiter sits at the
transport, no code path (send, poll, lookup, listing pages, data-center failover) can make an
uncounted call.

The kind of call ("send" or "poll") and slots already taken by the caller come from a context
variable set with `call_kind(...)`: the sender takes its first slot *before* claiming jobs, so that
no job is claimed without a slot in hand, and passes it on as prepaid.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from worker.errors import RateLimitExceeded
from worker.metrics.counters import PROVIDER_CALLS
from worker.providers.base import parse_retry_after
from worker.rate_limit.limiter import CallKind, RedisRateLimiter

#: How long one request may wait for a slot before giving up with RateLimitExceeded.
MAX_WAIT_S = 1.0


@dataclass
class _Budget:
    kind: CallKind
    prepaid: int = 0


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("smsq_call_budget", default=None)


@contextlib.contextmanager
def call_kind(kind: CallKind, *, prepaid: int = 0) -> Iterator[None]:
    """Requests made inside count as `kind`; the first `prepaid` of them use slots already taken."""
    token = _budget.set(_Budget(kind, prepaid))
    try:
        yield
    finally:
        _budget.reset(token)


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
        if wait_s > remaining_s:
            if limiter.on_wait is not None:
                limiter.on_wait(kind, wait_s)
            return wait_s
        nap_s = max(wait_s, 0.001)
        if limiter.on_wait is not None:
            limiter.on_wait(kind, nap_s)
        sleep(nap_s)
        slept_s += nap_s


class LimitedTransport(httpx.BaseTransport):
    """An httpx transport that takes a limiter slot before every request."""

    def __init__(self, inner: httpx.BaseTransport, limiter: RedisRateLimiter, connection: str) -> None:
        self._inner = inner
        self._limiter = limiter
        self._connection = connection

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        budget = _budget.get() or _Budget("poll")
        if budget.prepaid > 0:
            budget.prepaid -= 1
        else:
            wait_s = take_slot(self._limiter, budget.kind)
            if wait_s:
                raise RateLimitExceeded(wait_s)
        operation = _operation(request)
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            PROVIDER_CALLS.labels(self._connection, operation, type(exc).__name__).inc()
            raise
        PROVIDER_CALLS.labels(self._connection, operation, str(response.status_code)).inc()
        if response.status_code == 429:
            self._limiter.pause(parse_retry_after(response.headers.get("Retry-After")) or 1.0)
        return response

    def close(self) -> None:
        self._inner.close()


def _operation(request: httpx.Request) -> str:
    """A low-cardinality label for a request: method and last path segment, ids folded."""
    last = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    if last.startswith(("J.", "S.")):
        last = "{id}"
    return f"{request.method} {last}"
