"""What `smsq status` shows about a job's callbacks: counts by state and every failed event."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.tables import CallbackEvent, CallbackState, Job

#: Failed events listed in full (the counts are always complete).
MAX_LISTED = 20


def callback_summary(session: Session, job: Job) -> dict[str, Any] | None:
    """None when the job has no callback; else its target kind, counts by state and failed events."""
    if job.callback is None:
        return None
    counts = dict(
        session.exec(
            select(CallbackEvent.state, func.count())
            .where(col(CallbackEvent.job_id) == job.id)
            .group_by(col(CallbackEvent.state))
        ).all()
    )
    failed = session.exec(
        select(CallbackEvent)
        .where(col(CallbackEvent.job_id) == job.id, col(CallbackEvent.state) == CallbackState.FAILED)
        .order_by(col(CallbackEvent.created_at))
        .limit(MAX_LISTED)
    ).all()
    states = (CallbackState.PENDING, CallbackState.DELIVERED, CallbackState.FAILED)
    summary = ", ".join(f"{counts.get(state, 0)} {state}" for state in states)
    return {
        "kind": "webhook" if "url" in job.callback else "task",
        "events": job.callback.get("events", "final"),
        "pending": counts.get(CallbackState.PENDING, 0),
        "delivered": counts.get(CallbackState.DELIVERED, 0),
        "failed": counts.get(CallbackState.FAILED, 0),
        "summary": summary,
        "failures": [
            {
                "id": event.id,
                "recipient_id": event.recipient_id,
                "outcome": event.payload.get("outcome"),
                "attempts": event.attempts,
                "error": event.last_error,
            }
            for event in failed
        ],
    }
