"""The local suppression list: numbers that opted out and must not be sent to again.

`suppress` adds a number (normalised to E.164, like every stored recipient) to the `Suppression`
table; the send path checks the table when it claims a job, and a suppressed recipient ends with
outcome `suppressed` instead of being submitted. `smsq optout` writes here (and, for a Sendmode
connection, also opts the number out at Sendmode).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from models.db import transaction, utc
from models.request import normalise_number
from models.tables import Suppression
from worker.errors import InvalidRequest
from worker.runtime import Runtime, get_runtime

#: The Suppression table's reason column is 200 characters wide.
REASON_MAX_CHARS = 200


@dataclass(frozen=True)
class SuppressedNumber:
    """One entry of the suppression list."""

    dst: str
    created_at: datetime
    reason: str | None


def normalise(number: str, runtime: Runtime | None = None) -> str:
    """`number` in E.164 (national numbers in SMSQ_DEFAULT_COUNTRY); InvalidRequest if it is not one."""
    rt = runtime or get_runtime()
    try:
        return normalise_number(number, rt.settings.default_country)
    except ValueError as exc:
        raise InvalidRequest("number", str(exc)) from None


def suppress(dst: str, reason: str | None = None, runtime: Runtime | None = None) -> SuppressedNumber:
    """Put `dst` on the suppression list (again: keeps the first date, updates the reason)."""
    rt = runtime or get_runtime()
    number = normalise(dst, rt)
    if reason is not None and len(reason) > REASON_MAX_CHARS:
        raise InvalidRequest("reason", f"must be at most {REASON_MAX_CHARS} characters")
    with transaction(rt.sessions) as session:
        row = session.get(Suppression, number)
        if row is None:
            row = Suppression(dst=number, created_at=rt.clock.now(), reason=reason)
        elif reason is not None:
            row.reason = reason
        session.add(row)
        entry = SuppressedNumber(row.dst, utc(row.created_at) or rt.clock.now(), row.reason)
    return entry


def list_suppressions(runtime: Runtime | None = None, *, limit: int = 1000) -> list[SuppressedNumber]:
    """The list, newest first."""
    rt = runtime or get_runtime()
    with transaction(rt.sessions) as session:
        rows = session.exec(select(Suppression).order_by(col(Suppression.created_at).desc()).limit(limit))
        return [SuppressedNumber(row.dst, utc(row.created_at) or rt.clock.now(), row.reason) for row in rows]
