"""Clocks: the one seam for "now" in smsq and the sandbox.

Message time (jobPeriod, validity, blackout periods, poll schedules, sandbox progress) is read from a
`Clock`. A `SpedUpClock` runs `speed` times faster than real time from a shared `epoch`, so the sandbox
and every smsq process given the same epoch and speed agree on "now" while a test covers hours in
seconds. Rate limits are never measured on these clocks: they always use real time (Redis TIME).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class SpedUpClock:
    """Time that runs `speed` times faster than real time, starting from `epoch` (a real UNIX time)."""

    def __init__(self, speed: float = 1.0, epoch: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> datetime:
        real = time.time()
        virtual = self.epoch + (real - self.epoch) * self.speed
        return datetime.fromtimestamp(virtual, UTC)

    def real_seconds(self, virtual_s: float) -> float:
        """How many real seconds `virtual_s` seconds of this clock take."""
        return virtual_s / self.speed


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            return self._now

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware datetime")
        with self._lock:
            self._now = when


def make_clock(speed: float = 1.0, epoch: float | None = None) -> Clock:
    """The clock a process should use given its settings: real time unless sped up."""
    if speed == 1.0 and epoch is None:
        return SystemClock()
    return SpedUpClock(speed, epoch)
