"""Helpers of the callback tests: a job with a callback, outcomes written as the send path writes them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from models.db import transaction
from models.tables import CallbackEvent, Job, Recipient
from worker.runtime import Runtime

TEXT = "Your code is 913370"


def numbers(count: int) -> list[str]:
    return [f"+4917630{index:06d}" for index in range(100, 100 + count)]


def enqueue_with(rt: Runtime, callback: Any, count: int = 1, **options: Any) -> str:
    from worker import enqueue

    request = {
        "messages": [
            {
                "text": TEXT,
                "recipients": [{"dst": n, "customerRef": f"r{i}"} for i, n in enumerate(numbers(count))],
            }
        ],
        "options": {"customerRef": "order-42", **options},
    }
    return enqueue(request, runtime=rt, callback=callback).id


def recipient_ids(rt: Runtime, job_id: str) -> list[str]:
    with transaction(rt.sessions) as session:
        rows = session.exec(
            select(Recipient.id).where(Recipient.job_id == job_id).order_by(col(Recipient.position))
        )
        return list(rows)


def write_outcome(rt: Runtime, recipient_id: str, outcome: str, final: bool, **raw: Any) -> None:
    """One UPDATE, the way the send path records an outcome (no hook of ours runs)."""
    with transaction(rt.sessions) as session:
        session.execute(
            update(Recipient)
            .where(col(Recipient.id) == recipient_id)
            .values(outcome=outcome, final=final, updated_at=rt.clock.now(), **raw)
        )


def finish_job(rt: Runtime, job_id: str, state: str = "finished") -> None:
    with transaction(rt.sessions) as session:
        session.execute(
            update(Job).where(col(Job.id) == job_id).values(state=state, finished_at=rt.clock.now())
        )


def outbox(rt: Runtime, job_id: str) -> list[CallbackEvent]:
    with transaction(rt.sessions) as session:
        return list(session.exec(select(CallbackEvent).where(CallbackEvent.job_id == job_id)))
