"""Fault knobs: make the sandbox misbehave on purpose, per credential and/or path prefix.

    fail_next  answer the next n matching calls with a 5xx, before processing (nothing is created)
    hold       block matching calls BEFORE processing until `release()`; a caller that disconnects while
               held leaves nothing behind, unless the knob is `late`: then the call is processed on
               release all the same (a request that reached the provider and is accepted after the
               caller gave up: the late arrival that a blind resend would duplicate)
    slow       process the call, then wait `seconds` before answering (the caller may time out after
               the provider accepted the job)
    drop       process the call, then close the connection without answering
    malformed  process the call, then answer its 2xx status with an unreadable body (calls answered
               with another status do not use the knob up)

A knob with `credential=None` matches every caller (also unauthenticated ones); `path_prefix=None` every
path. `n=None` keeps a knob until `clear()` (the default for slow and hold).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum


class FaultKind(StrEnum):
    FAIL_NEXT = "fail_next"
    HOLD = "hold"
    SLOW = "slow"
    DROP = "drop"
    MALFORMED = "malformed"


@dataclass
class Knob:
    kind: FaultKind
    credential: str | None = None
    path_prefix: str | None = None
    remaining: int | None = None
    status: int = 500
    seconds: float = 0.0
    late: bool = False

    def matches(self, credential: str | None, path: str) -> bool:
        if self.credential is not None and self.credential != credential:
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "credential": self.credential,
            "path_prefix": self.path_prefix,
            "remaining": self.remaining,
            "status": self.status,
            "seconds": self.seconds,
            "late": self.late,
        }


@dataclass(frozen=True)
class AfterEffects:
    """What to do with an answer that has already been produced."""

    delay_s: float = 0.0
    drop: bool = False
    malformed: bool = False


class Faults:
    """The active knobs; thread-safe."""

    def __init__(self) -> None:
        self._knobs: list[Knob] = []
        self._lock = threading.Lock()

    def add(self, knob: Knob) -> None:
        if knob.kind is FaultKind.FAIL_NEXT and not 500 <= knob.status <= 599:
            raise ValueError("fail_next answers with a 5xx status")
        if knob.remaining is not None and knob.remaining < 1:
            raise ValueError("n must be at least 1")
        if knob.seconds < 0:
            raise ValueError("seconds must be >= 0")
        with self._lock:
            self._knobs.append(knob)

    def _take(self, kind: FaultKind, credential: str | None, path: str) -> Knob | None:
        """The first matching knob of `kind`, with one use consumed (caller holds the lock)."""
        for knob in self._knobs:
            if knob.kind is kind and knob.matches(credential, path):
                if knob.remaining is not None:
                    knob.remaining -= 1
                    if knob.remaining == 0:
                        self._knobs.remove(knob)
                return knob
        return None

    def take_failure(self, credential: str | None, path: str) -> int | None:
        """The 5xx status to answer instead of processing, or None."""
        with self._lock:
            knob = self._take(FaultKind.FAIL_NEXT, credential, path)
            return None if knob is None else knob.status

    def take_hold(self, credential: str | None, path: str) -> Knob | None:
        """The hold knob that catches this arriving call (one use of a counted knob), or None."""
        with self._lock:
            for knob in self._knobs:
                if knob.kind is FaultKind.HOLD and knob.matches(credential, path):
                    if knob.remaining is None:
                        return knob
                    if knob.remaining > 0:
                        knob.remaining -= 1
                        return knob
            return None

    def holding(self, knob: Knob) -> bool:
        """Whether calls caught by `knob` must still wait (until `release()` removes it)."""
        with self._lock:
            return any(k is knob for k in self._knobs)

    def take_after_effects(self, credential: str | None, path: str, *, malformable: bool) -> AfterEffects:
        """Effects for an answer already produced; `malformed` is only used up by a 2xx (`malformable`)."""
        with self._lock:
            slow = self._take(FaultKind.SLOW, credential, path)
            drop = self._take(FaultKind.DROP, credential, path)
            malformed = None if drop or not malformable else self._take(FaultKind.MALFORMED, credential, path)
        return AfterEffects(
            delay_s=0.0 if slow is None else slow.seconds,
            drop=drop is not None,
            malformed=malformed is not None,
        )

    def release(self, path_prefix: str | None = None) -> int:
        """Remove hold knobs (all, or those with this exact path prefix); returns how many."""
        with self._lock:
            held = [
                k
                for k in self._knobs
                if k.kind is FaultKind.HOLD and (path_prefix is None or k.path_prefix == path_prefix)
            ]
            for knob in held:
                self._knobs.remove(knob)
            return len(held)

    def active(self) -> list[dict[str, object]]:
        with self._lock:
            return [k.to_dict() for k in self._knobs]

    def clear(self) -> None:
        with self._lock:
            self._knobs.clear()
