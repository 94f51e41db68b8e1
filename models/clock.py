"""Clocks: the one seam for "now" in smsq and the sandbox.

Message time (jobPeriod, validity, blackout periods, poll schedules, sandbox progress) is read from a
`Clock`. A `SpedUpClock` runs `speed` times faster than real time from a shared `epoch`, so the sandbox
and every smsq process given the same epoch and speed agree on "now" while a test covers hours in
seconds. Rate limits are never measured on these clocks: they always use real time (Redis TIME).

Times written by different processes are compared on one clock: a worker's `SyncedTime` follows the
database's clock (sampled now and then, see worker/runtime.py), so a host whose own clock is minutes off
neither expires nor resends anything early.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

RealTime = Callable[[], float]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...


class SystemClock:
    """Real time, read from `real` (default: this host's clock)."""

    def __init__(self, real: RealTime = time.time) -> None:
        self._real = real

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._real(), UTC)


class SyncedTime:
    """Real time as a reference clock (the database's) tells it: the host clock plus a measured offset.

    `reference()` returns the reference's UNIX time; it is sampled at first use and again every
    `resync_s`, so a call costs no round trip. The offset is the reference minus the midpoint of the
    host readings around the sample, so its error is at most half the round trip. `host` is this host's
    clock (tests pass a skewed one to show that skew does not matter).
    """

    def __init__(self, reference: RealTime, *, resync_s: float = 30.0, host: RealTime = time.time) -> None:
        self._reference = reference
        self._host = host
        self._resync_s = resync_s
        self._offset_s: float | None = None
        self._synced_at = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        mono = time.monotonic()
        with self._lock:
            if self._offset_s is None or mono - self._synced_at > self._resync_s:
                try:
                    before = self._host()
                    reference = self._reference()
                    after = self._host()
                    self._offset_s = reference - (before + after) / 2
                    self._synced_at = mono
                except Exception:
                    if self._offset_s is None:
                        raise
                    self._synced_at = mono  # reference unreachable: keep the last offset, try later
            return self._host() + self._offset_s

    @property
    def offset_s(self) -> float | None:
        return self._offset_s


class SpedUpClock:
    """Time that runs `speed` times faster than real time, starting from `epoch` (a real UNIX time)."""

    def __init__(self, speed: float = 1.0, epoch: float | None = None, real: RealTime = time.time) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._real = real
        self.epoch = real() if epoch is None else epoch

    def now(self) -> datetime:
        real = self._real()
        virtual = self.epoch + (real - self.epoch) * self.speed
        return datetime.fromtimestamp(virtual, UTC)


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


def make_clock(speed: float = 1.0, epoch: float | None = None, real: RealTime = time.time) -> Clock:
    """The clock a process should use given its settings: real time (from `real`) unless sped up."""
    if speed == 1.0 and epoch is None:
        return SystemClock(real)
    return SpedUpClock(speed, epoch, real)
