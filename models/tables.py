"""The database tables: jobs, their recipients, and the provider calls (submissions) that carry them.

One `Job` is what a producer enqueued (its request JSON, options and windows). Each recipient has one
`Recipient` row whose id is also the recipient-level customerRef sent to the provider, which is how a
provider recipient maps back to its row. A `Submission` is one provider call: under backlog one Retarus
job (one submission) carries the recipients of many compatible jobs. Submissions are what gets polled.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, String, Text, text
from sqlmodel import Field, SQLModel

from models.enums import JobState, Outcome


def new_id() -> str:
    return str(uuid.uuid4())


def _dt(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=DateTime(timezone=True), nullable=nullable, index=index)


class SubmissionState:
    """States of one provider call (plain strings: stored in `smsq_submission.state`)."""

    IN_FLIGHT = "in_flight"  # committed before the call; the call may or may not have reached the provider
    ACCEPTED = "accepted"  # the provider returned its job id; being polled
    FINISHED = "finished"  # every recipient final
    ABSENT = "absent"  # proven never received by the provider: its recipients may be sent again
    FAILED = "failed"  # refused, or known not to have left; its recipients went back to their job
    UNKNOWN = "unknown"  # may have reached the provider, cannot be looked up: never resent

    OPEN = (IN_FLIGHT, ACCEPTED)


_QUEUED = text("state = 'queued'")
_CLAIMED = text("claim_token IS NOT NULL")


def _partial(name: str, *columns: str, where: str | None, include: tuple[str, ...] = ()) -> Index:
    """An index holding only the rows a sweep or gauge asks for (migration 0004; INCLUDE is PostgreSQL only).

    The queries name the states as literals (`models.db.fixed`) so a generic plan can use it too."""
    options: dict[str, Any] = {"postgresql_include": list(include)} if include else {}
    if where is not None:
        options["postgresql_where"] = options["sqlite_where"] = text(where)
    return Index(name, *columns, **options)


_OPEN_STATES_SQL = "state IN ('scheduled', 'queued', 'submitting', 'submitted')"


class Job(SQLModel, table=True):
    __tablename__ = "smsq_job"
    __table_args__ = (
        Index("ix_smsq_job_claim", "connection", "state", "due_at"),
        Index("ix_smsq_job_state_updated", "state", "updated_at"),
        # Partial indexes: a job leaving `queued` (or its claim) costs them nothing on PostgreSQL.
        Index("ix_smsq_job_claim_token", "claim_token", postgresql_where=_CLAIMED, sqlite_where=_CLAIMED),
        Index(
            "ix_smsq_job_head",
            "connection",
            "qos_rank",
            "created_at",
            postgresql_where=_QUEUED,
            sqlite_where=_QUEUED,
        ),
        Index(
            "ix_smsq_job_batch",
            "connection",
            "options_key",
            "created_at",
            postgresql_where=_QUEUED,
            sqlite_where=_QUEUED,
        ),
        # Shaped like the sweeps, gauges and listings (migration 0004): only the rows in the state asked
        # for, ordered by the time the query compares, so history and far-future jobs cost them nothing.
        _partial("ix_smsq_job_scheduled_due", "due_at", where="state = 'scheduled'"),
        _partial(
            "ix_smsq_job_unsent_expires",
            "expires_at",
            where="state IN ('scheduled', 'queued') AND expires_at IS NOT NULL",
        ),
        _partial(
            "ix_smsq_job_queued_due", "connection", "due_at", where="state = 'queued'", include=("qos_rank",)
        ),
        _partial("ix_smsq_job_submitting_claimed", "claimed_at", where="state = 'submitting'"),
        _partial("ix_smsq_job_submitting_updated", "connection", "updated_at", where="state = 'submitting'"),
        _partial("ix_smsq_job_open", "id", where=_OPEN_STATES_SQL, include=("state", "connection")),
        _partial(  # migration 0005: the callback sweep's terminal jobs still to close
            "ix_smsq_job_callback_closable",
            "id",
            where="callback_open AND state IN ('canceled', 'expired', 'failed', 'finished', 'rejected')",
        ),
        _partial("ix_smsq_job_created", "created_at", where=None),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    connection: str = Field(max_length=64)
    provider: str = Field(max_length=16)
    state: str = Field(default=JobState.QUEUED, max_length=16)
    qos_rank: int = 1  # 0 express, 1 normal: claim order
    request: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    options_key: str = Field(max_length=64)  # jobs with equal keys may share one provider call
    solo: bool = False  # refused once inside a shared call: goes alone from now on
    idempotency_key: str | None = Field(default=None, max_length=200, unique=True)
    recipient_count: int = 0
    parts: int = 0  # SMS parts of the whole job (credits)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    updated_at: datetime = Field(sa_type=DateTime(timezone=True))
    due_at: datetime = Field(sa_type=DateTime(timezone=True))
    expires_at: datetime | None = _dt()
    published_at: datetime | None = _dt()
    claimed_at: datetime | None = _dt()
    claim_token: str | None = Field(default=None, max_length=36)
    submitted_at: datetime | None = _dt()
    finished_at: datetime | None = _dt()
    attempts: int = 0
    reason: str | None = Field(default=None, sa_column=Column(Text))
    #: Where outcome events go (worker/callbacks/spec.py: a webhook URL or a task name and queue, and
    #: which events), resolved at enqueue from the job's own or its connection's default; None: none.
    callback: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    #: True while the callback sweep still has to look at this job (cleared once its final event is noted).
    callback_open: bool = False  # indexed only where closable (ix_smsq_job_callback_closable, 0005)


class Recipient(SQLModel, table=True):
    __tablename__ = "smsq_recipient"
    __table_args__ = (
        Index("ix_smsq_recipient_job", "job_id", "final"),
        _partial("ix_smsq_recipient_open", "job_id", where="NOT final", include=("outcome",)),
        # exactly `worker.callbacks.outbox._changed()`: the recipients the callback sweep still has to note
        # (migration 0005: recipients of jobs without a callback keep notified_outcome NULL, so never here)
        _partial(
            "ix_smsq_recipient_to_note",
            "job_id",
            "id",
            where="notified_outcome IS NOT NULL AND (outcome <> notified_outcome"
            " OR (final IS true AND notified_final IS false))",
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    job_id: str = Field(foreign_key="smsq_job.id", max_length=36)
    message_index: int = 0
    position: int = 0
    dst: str = Field(max_length=32)
    customer_ref: str | None = Field(default=None, max_length=64)  # the producer's own, kept locally
    blackouts: list[str] | None = Field(default=None, sa_column=Column(JSON))
    due_at: datetime | None = _dt()  # locally enforced windows (HTTP Simple, Sendmode)
    submission_id: str | None = Field(default=None, max_length=36, index=True)
    #: Written by earlier versions only: the provider's job id is the submission's (`submission_id`).
    provider_job_id: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    sms_id: str | None = Field(default=None, max_length=64)
    process_status: str | None = Field(default=None, max_length=16)
    status: str | None = Field(default=None, max_length=32)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    sent_ts: datetime | None = _dt()
    finished_ts: datetime | None = _dt()
    outcome: str = Field(default=Outcome.PENDING, max_length=16)
    final: bool = False
    updated_at: datetime | None = _dt()
    #: The outcome (and finality) last written to the callback outbox; the sweep notes any difference.
    #: Stored 'pending' for a job with a callback, NULL (never noted) for one without.
    notified_outcome: str | None = Field(default=None, max_length=16)
    notified_final: bool = False


class Submission(SQLModel, table=True):
    __tablename__ = "smsq_submission"
    __table_args__ = (
        Index("ix_smsq_submission_poll", "connection", "state", "next_poll_at"),
        Index("ix_smsq_submission_state_started", "state", "started_at"),
        _partial(
            "ix_smsq_submission_in_flight_ids", "started_at", where="state = 'in_flight'", include=("id",)
        ),
        _partial("ix_smsq_submission_accepted_due", "connection", "next_poll_at", where="state = 'accepted'"),
        _partial(
            "ix_smsq_submission_accepted_started", "connection", "started_at", where="state = 'accepted'"
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    connection: str = Field(max_length=64)
    provider: str = Field(max_length=16)
    state: str = Field(default=SubmissionState.IN_FLIGHT, max_length=16)
    #: Written by earlier versions only: the provider's job id is the submission's (`submission_id`).
    provider_job_id: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    recipient_count: int = 0
    started_at: datetime = Field(sa_type=DateTime(timezone=True))
    completed_at: datetime | None = _dt()
    finished_at: datetime | None = _dt()
    not_before: datetime | None = _dt()  # jobPeriod: never polled before it
    blackouts: list[str] | None = Field(default=None, sa_column=Column(JSON))  # job-level periods
    poll_deadline: datetime | None = _dt()  # validity + grace: reconciled once then closed
    next_poll_at: datetime | None = _dt()
    poll_attempt: int = 0
    last_refresh_at: datetime | None = _dt()
    reason: str | None = Field(default=None, sa_column=Column(Text))
    #: Retarus: the exact request body sent, so a resend after "absent" is byte-for-byte the original
    #: (with duplicateDetection, a late original is then refused by the provider).
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    resend_of: str | None = Field(default=None, max_length=36)  # the absent submission this one resends
    conflict: str | None = Field(default=None, sa_column=Column(Text))  # a late answer after resolution


class GaugeDelta(SQLModel, table=True):
    """Changes of the open-work gauges, appended by triggers on PostgreSQL (migration 0005): one row per
    (gauge, state or outcome, connection) and statement; the gauge is the sum, compacted periodically
    (`worker.metrics.open_counts`). Unused on SQLite, where the gauges count directly."""

    __tablename__ = "smsq_gauge_delta"

    id: int | None = Field(default=None, primary_key=True)
    gauge: str = Field(max_length=16)  # "jobs" (label: job state) or "recipients" (label: outcome)
    label: str = Field(max_length=16)
    connection: str = Field(max_length=64)
    n: int = Field(sa_type=BigInteger)


class Suppression(SQLModel, table=True):
    """Numbers that opted out: later sends skip them (outcome `suppressed`)."""

    __tablename__ = "smsq_suppression"

    dst: str = Field(primary_key=True, max_length=32)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    reason: str | None = Field(default=None, max_length=200)


class CallbackState:
    """States of one outbox event (plain strings: stored in `smsq_callback.state`)."""

    PENDING = "pending"  # written with the outcome it reports; sent (again) at `next_attempt_at`
    DELIVERED = "delivered"  # the receiver answered 2xx, or the task message was accepted by the broker
    FAILED = "failed"  # still refused or unreachable when its retry period ended


class CallbackEvent(SQLModel, table=True):
    """The callback outbox: one row per event, written in the transaction that notes the outcome.

    The id is stable (uuid5 of recipient or job, outcome and finality), so a receiver deduplicates on it.
    """

    __tablename__ = "smsq_callback"
    __table_args__ = (
        Index("ix_smsq_callback_due", "state", "next_attempt_at"),
        Index("ix_smsq_callback_job", "job_id", "state"),
    )

    id: str = Field(primary_key=True, max_length=36)
    job_id: str = Field(max_length=36)
    recipient_id: str | None = Field(default=None, max_length=36)
    connection: str = Field(max_length=64)
    kind: str = Field(max_length=8)  # "webhook" or "task"
    receiver: str = Field(max_length=255)  # the concurrency key: scheme://host:port, or task:queue
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    state: str = Field(default=CallbackState.PENDING, max_length=16)
    attempts: int = 0
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    next_attempt_at: datetime = Field(sa_type=DateTime(timezone=True))
    give_up_at: datetime = Field(sa_type=DateTime(timezone=True))
    completed_at: datetime | None = _dt()
    last_error: str | None = Field(default=None, max_length=200)  # "HTTP 503", "ConnectTimeout": never a body
