"""ISO-8601 time intervals as the Retarus contract writes blackout periods: `start/end`.

Both ends must carry a UTC offset (`Z` or `+01:00`; fractions of a second allowed) and start must be
before end. `Interval.text` keeps the caller's spelling so a request serialises back to exactly what
was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, order=True)
class Interval:
    """A half-open interval [start, end) of aware datetimes."""

    start: datetime
    end: datetime
    text: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("interval ends must be timezone-aware")
        if not self.start < self.end:
            raise ValueError("interval start must be before its end")

    def __str__(self) -> str:
        return self.text or f"{self.start.isoformat()}/{self.end.isoformat()}"

    def contains(self, when: datetime) -> bool:
        return self.start <= when < self.end


def parse_datetime(text: str) -> datetime:
    """Parse an ISO-8601 timestamp that must carry a UTC offset."""
    value = text.strip()
    if not value:
        raise ValueError("must be an ISO-8601 timestamp with an offset, got an empty string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"must be an ISO-8601 timestamp with an offset (e.g. 2030-01-01T10:00Z), got {value!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"must carry a UTC offset such as Z or +01:00, got {value!r}")
    return parsed


def parse_interval(text: str) -> Interval:
    """Parse `start/end`; raises ValueError naming the rule that was broken."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise ValueError(f"must be an ISO-8601 interval 'start/end', got {text!r}")
    start_text, end_text = text.split("/")
    start = parse_datetime(start_text)
    end = parse_datetime(end_text)
    if not start < end:
        raise ValueError(f"interval start must be before its end, got {text!r}")
    return Interval(start, end, text.strip())
