"""ISO-8601 time intervals as the Retarus contract writes blackout periods: `start/end`.

Both ends must carry a UTC offset (`Z` or `+01:00`; fractions of a second allowed) and start must be
before end. `Interval.text` keeps the caller's spelling so a request serialises back to exactly what
was given.

Every timestamp parsed here is bounded (`check_timestamp`): it lies in [EARLIEST_TIMESTAMP,
LATEST_TIMESTAMP) = [1970-01-01T00:00Z, 2100-01-01T00:00Z) and its UTC offset is a whole number of
minutes within +-18:00 (the range java.time.ZoneOffset accepts). The horizon leaves thousands of years of
headroom on either side of datetime's range (years 1..9999), so converting to UTC, adding the longest
validity (2880 minutes), a blackout shift or expansion, a poll grace or a listing window can never raise
OverflowError anywhere later. ``strict=True`` also requires the contract's own spelling (extended ISO-8601:
``2030-01-01T10:00Z``, ``2030-01-01T10:00:00.683+02:00``), which is what the request schema uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

#: The earliest instant a request may name (jobPeriod, blackout ends); inclusive.
EARLIEST_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
#: The end of the horizon a request may name; exclusive. A sane horizon for SMS scheduling that keeps
#: every later datetime arithmetic (offsets, validity, blackouts, grace periods) far from year 9999.
LATEST_TIMESTAMP = datetime(2100, 1, 1, tzinfo=UTC)
#: The largest UTC offset, either way (java.time.ZoneOffset's range, so the provider can parse it).
MAX_UTC_OFFSET = timedelta(hours=18)

#: The contract's timestamp spelling: extended ISO-8601 date and time, optional seconds and fraction
#: (up to nanoseconds; Python keeps microseconds), and an offset `Z` or `+HH:MM`.
CONTRACT_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
)

_BOUNDS_RULE = "must lie between 1970-01-01T00:00Z and 2100-01-01T00:00Z"
_OFFSET_RULE = "must have a UTC offset of whole minutes between -18:00 and +18:00"
_SYNTAX_EXAMPLE = "e.g. 2030-01-01T10:00Z or 2030-01-01T10:00:00.000+01:00"
#: Longest piece of a caller's value quoted back in an error message.
_QUOTE_MAX_CHARS = 40


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


def check_timestamp(value: datetime) -> datetime:
    """`value` if it is aware, its offset is whole minutes within +-18:00 and it lies in
    [EARLIEST_TIMESTAMP, LATEST_TIMESTAMP); else ValueError naming the rule. Does no arithmetic
    that could overflow (comparisons of aware datetimes never do)."""
    try:
        offset = value.utcoffset()
    except Exception:  # a foreign tzinfo whose utcoffset misbehaves
        raise ValueError("must carry a valid UTC offset such as Z or +01:00") from None
    if offset is None:
        raise ValueError("must carry a UTC offset such as Z or +01:00")
    if abs(offset) > MAX_UTC_OFFSET or offset % timedelta(minutes=1):
        raise ValueError(_OFFSET_RULE)
    if not EARLIEST_TIMESTAMP <= value < LATEST_TIMESTAMP:
        raise ValueError(_BOUNDS_RULE)
    return value


def check_interval(interval: Interval) -> Interval:
    """`interval` if both ends pass `check_timestamp` (start < end holds by construction)."""
    check_timestamp(interval.start)
    check_timestamp(interval.end)
    return interval


def parse_datetime(text: str, *, strict: bool = False) -> datetime:
    """Parse an ISO-8601 timestamp that must carry a UTC offset and pass `check_timestamp`.

    ``strict=True`` accepts only the contract's extended spelling (`CONTRACT_TIMESTAMP`); otherwise any
    form `datetime.fromisoformat` reads. Surrounding whitespace is ignored either way.
    """
    if not isinstance(text, str):
        raise ValueError("must be an ISO-8601 timestamp string with an offset")
    value = text.strip()
    if not value:
        raise ValueError("must be an ISO-8601 timestamp with an offset, got an empty string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # UnicodeEncodeError (a lone surrogate) is a ValueError as well
        raise ValueError(
            f"must be an ISO-8601 timestamp with an offset (e.g. 2030-01-01T10:00Z), got {_quote(value)}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"must carry a UTC offset such as Z or +01:00, got {_quote(value)}")
    if strict and CONTRACT_TIMESTAMP.fullmatch(value) is None:
        raise ValueError(f"must be written as the contract does ({_SYNTAX_EXAMPLE}), got {_quote(value)}")
    return check_timestamp(parsed)


def parse_interval(text: str, *, strict: bool = False) -> Interval:
    """Parse `start/end`; raises ValueError naming the rule that was broken. `strict` as in `parse_datetime`."""
    if not isinstance(text, str) or text.count("/") != 1:
        raise ValueError(f"must be an ISO-8601 interval 'start/end', got {_quote(text)}")
    start_text, end_text = text.split("/")
    start = parse_datetime(start_text, strict=strict)
    end = parse_datetime(end_text, strict=strict)
    if not start < end:
        raise ValueError(f"interval start must be before its end, got {_quote(text)}")
    # Strict: sent to the provider exactly in the contract's spelling, so no blanks around either end.
    spelling = f"{start_text.strip()}/{end_text.strip()}" if strict else text.strip()
    return Interval(start, end, spelling)


def _quote(value: object) -> str:
    """`value` quoted for an error message: repr (so control characters and lone surrogates appear
    escaped and the message stays valid UTF-8), cut to a bounded length."""
    if not isinstance(value, str):
        return f"a {type(value).__name__}"
    if len(value) > _QUOTE_MAX_CHARS:
        return repr(value[:_QUOTE_MAX_CHARS]) + "..."
    return repr(value)
