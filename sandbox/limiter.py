"""The sandbox's own per-credential rate limit: a sliding window over real (monotonic) time.

It imitates the provider's limit (default 100 calls per 60 s per credential), independent of smsq's
limiter, and is never measured on the sped-up sandbox clock: rate limits are real time.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class SlidingWindowLimiter:
    """At most `limit_calls` admitted calls per key within any `period_s` window."""

    def __init__(
        self, limit_calls: int, period_s: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit_calls = limit_calls
        self.period_s = period_s
        self._monotonic = monotonic
        self._admitted: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def try_acquire(self, key: str) -> float:
        """Admit a call and return 0.0, or refuse it (not counted) and return seconds until a slot frees."""
        now = self._monotonic()
        with self._lock:
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - self.period_s:
                window.popleft()
            if len(window) < self.limit_calls:
                window.append(now)
                return 0.0
            return max(window[0] + self.period_s - now, 1e-9)

    def reset(self) -> None:
        with self._lock:
            self._admitted.clear()


def retry_after_header(wait_s: float) -> str:
    """Retry-After value for a wait: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))
