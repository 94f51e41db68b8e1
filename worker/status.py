"""Reading outcomes: the stable JSON shape of DESIGN.md for one job, and job listings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from models.db import transaction, utc
from models.tables import Job, Recipient, Submission
from worker.callbacks.report import callback_summary
from worker.errors import JobNotFound
from worker.runtime import Runtime, get_runtime


def _iso(value: datetime | None) -> str | None:
    aware = utc(value)
    return aware.isoformat().replace("+00:00", "Z") if aware is not None else None


def job_status(job_id: str, runtime: Runtime | None = None) -> dict[str, Any]:
    """The job and every recipient's outcome; raises JobNotFound for an unknown id."""
    rt = runtime or get_runtime()
    with transaction(rt.sessions) as session:
        job = session.get(Job, job_id)
        if job is None:
            raise JobNotFound(job_id)
        rows = list(
            session.exec(
                select(Recipient)
                .where(Recipient.job_id == job_id)
                .order_by(col(Recipient.message_index), col(Recipient.position))
            )
        )
        # A recipient's provider job is its submission's (rows accepted by earlier versions also keep a copy).
        sub_ids = {row.submission_id for row in rows if row.submission_id}
        by_sub: dict[str, str | None] = {}
        if sub_ids:
            query = select(Submission.id, Submission.provider_job_id).where(col(Submission.id).in_(sub_ids))
            by_sub = dict(session.exec(query).all())
        provider_job = {row.id: row.provider_job_id or by_sub.get(row.submission_id or "") for row in rows}
        provider_ids = sorted({pid for pid in provider_job.values() if pid})
        callbacks = callback_summary(session, job)
    return {
        "id": job.id,
        "state": job.state,
        "connection": job.connection,
        "provider": job.provider,
        "provider_job_id": provider_ids[0] if len(provider_ids) == 1 else None,
        "provider_job_ids": provider_ids,
        "created_at": _iso(job.created_at),
        "submitted_at": _iso(job.submitted_at),
        "finished_at": _iso(job.finished_at),
        "reason": job.reason,
        "qos": "EXPRESS" if job.qos_rank == 0 else "NORMAL",
        "due_at": _iso(job.due_at),
        "attempts": job.attempts,
        "callbacks": callbacks,  # None without a callback; else counts by state and failed events
        "recipients": [
            {
                "dst": row.dst,
                "outcome": row.outcome,
                "process_status": row.process_status,
                "status": row.status,
                "reason": row.reason,
                "sms_id": row.sms_id,
                "sent_ts": _iso(row.sent_ts),
                "finished_ts": _iso(row.finished_ts),
                "customer_ref": row.customer_ref,
                "provider_job_id": provider_job[row.id],
            }
            for row in rows
        ],
    }


def list_jobs(
    runtime: Runtime | None = None,
    *,
    state: str | None = None,
    connection: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Jobs, newest first, filtered by state, connection and creation time."""
    rt = runtime or get_runtime()
    # Stored times are UTC; SQLite compares them as text, so compare in UTC too.
    since = since.astimezone(UTC) if since is not None else None
    until = until.astimezone(UTC) if until is not None else None
    query = select(Job)
    if state:
        query = query.where(Job.state == state)
    if connection:
        query = query.where(Job.connection == connection)
    if since:
        query = query.where(Job.created_at >= since)
    if until:
        query = query.where(Job.created_at < until)
    with transaction(rt.sessions) as session:
        jobs = list(session.exec(query.order_by(col(Job.created_at).desc()).limit(limit)))
    return [
        {
            "id": job.id,
            "state": job.state,
            "connection": job.connection,
            "provider": job.provider,
            "recipients": job.recipient_count,
            "created_at": _iso(job.created_at),
            "finished_at": _iso(job.finished_at),
            "reason": job.reason,
        }
        for job in jobs
    ]
