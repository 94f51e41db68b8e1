"""Retention: delete final jobs older than a cutoff, with everything that only they still need.

A job is purgeable when it is final (`TERMINAL_JOB_STATES`), it became final and was last changed before
the cutoff, the callback sweep is done with it (`callback_open` false and no `pending` outbox event), and
none of its recipients sits in a provider call that is still open. A batch selects up to `batch` such jobs
(on PostgreSQL `FOR UPDATE SKIP LOCKED`, so a second purge at the same time takes other jobs) and, in the
same transaction, optionally exports them, then deletes their delivered/failed callback events, their
recipients, the jobs, and every submission they used that has no recipient left (a submission may carry
recipients of several jobs: it goes with the last of them). Each batch commits on its own, so a long purge
never holds a long transaction and a crash loses at most one batch of work, never consistency.

Closed submissions whose recipients all moved elsewhere (an `absent` call that was sent again) are removed
by `purge_orphan_submissions` once they started before the cutoff.

Times come from the caller (the database's clock: `rt.clock.now()`), never this host's clock. Both the
beat sweep (`scheduler/retention.py`) and `smsq purge` (`worker/cli/purge.py`) run this module.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col

from models.db import SessionFactory, one_of, transaction, utc
from models.enums import TERMINAL_JOB_STATES
from models.tables import CallbackEvent, CallbackState, Job, Recipient, Submission, SubmissionState

TERMINAL = sorted(state.value for state in TERMINAL_JOB_STATES)
CLOSED_SUBMISSIONS = sorted(
    {SubmissionState.FINISHED, SubmissionState.ABSENT, SubmissionState.FAILED, SubmissionState.UNKNOWN}
)
DEFAULT_BATCH = 1000

#: The job fields an export carries (the stable `smsq status --json` names), then its recipients'.
JOB_FIELDS = (
    "id",
    "state",
    "connection",
    "provider",
    "created_at",
    "submitted_at",
    "finished_at",
    "reason",
)
RECIPIENT_FIELDS = (
    "dst",
    "outcome",
    "process_status",
    "status",
    "reason",
    "sms_id",
    "provider_job_id",
    "sent_ts",
    "finished_ts",
)


@dataclass
class PurgeReport:
    """What one purge run removed (or, with dry_run, would remove)."""

    jobs: int = 0
    recipients: int = 0
    submissions: int = 0
    callbacks: int = 0
    batches: int = 0
    exported: int = 0  # jobs written to the export before their delete
    more: bool = False  # the batch bound stopped the run while purgeable jobs were left

    def add(self, other: PurgeReport) -> None:
        for name in ("jobs", "recipients", "submissions", "callbacks", "batches", "exported"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def purgeable(cutoff: datetime) -> list[Any]:
    """SQL conditions of a job that may be deleted (see the module doc)."""
    pending_event = exists().where(
        col(CallbackEvent.job_id) == col(Job.id), col(CallbackEvent.state) == CallbackState.PENDING
    )
    in_open_call = exists().where(
        col(Recipient.job_id) == col(Job.id),
        col(Recipient.submission_id) == col(Submission.id),
        col(Submission.state).in_(list(SubmissionState.OPEN)),
    )
    return [
        col(Job.state).in_(TERMINAL),
        col(Job.updated_at) < cutoff,  # the indexed bound (ix_smsq_job_state_updated)
        or_(col(Job.finished_at).is_(None), col(Job.finished_at) < cutoff),
        col(Job.callback_open).is_(False),
        ~pending_event,
        ~in_open_call,
    ]


def count_purgeable(sessions: SessionFactory, cutoff: datetime) -> PurgeReport:
    """What a purge at `cutoff` would delete now (jobs and recipients), deleting nothing."""
    with transaction(sessions) as session:
        ids = select(col(Job.id)).where(*purgeable(cutoff)).subquery()
        jobs = session.execute(select(func.count()).select_from(ids)).scalar_one()
        recipients = session.execute(
            select(func.count()).select_from(Recipient).where(col(Recipient.job_id).in_(select(ids.c.id)))
        ).scalar_one()
    return PurgeReport(jobs=int(jobs), recipients=int(recipients))


class Exporter:
    """Writes purged jobs to a file before their delete: JSON lines (one job with its recipients per line)
    or CSV (one row per recipient, the job's fields repeated). The file is flushed and fsynced before the
    batch's delete commits, so an exported job may be exported again after a crash, never lost unexported.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = "csv" if path.suffix.lower() == ".csv" else "jsonl"
        self._handle: IO[str] = path.open("a", encoding="utf-8", newline="")
        self._csv: Any = None
        if self.kind == "csv":
            self._csv = csv.writer(self._handle)
            if path.stat().st_size == 0:
                self._csv.writerow([*JOB_FIELDS, *(f"recipient_{name}" for name in RECIPIENT_FIELDS)])

    def write(self, jobs: Sequence[dict[str, Any]], recipients: dict[str, list[dict[str, Any]]]) -> None:
        for job in jobs:
            rows = recipients.get(job["id"], [])
            if self._csv is not None:
                head = [_plain(job[name]) for name in JOB_FIELDS]
                for row in rows or [dict.fromkeys(RECIPIENT_FIELDS)]:
                    self._csv.writerow([*head, *(_plain(row[name]) for name in RECIPIENT_FIELDS)])
            else:
                line = {**{name: _plain(job[name]) for name in JOB_FIELDS}}
                line["recipients"] = [{name: _plain(row[name]) for name in RECIPIENT_FIELDS} for row in rows]
                self._handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = utc(value)
        return aware.isoformat().replace("+00:00", "Z") if aware is not None else None
    return value


def _export_batch(session: Session, exporter: Exporter, ids: list[str]) -> None:
    job_rows = session.execute(
        select(*(getattr(Job, name) for name in JOB_FIELDS)).where(one_of(session, col(Job.id), ids))
    ).mappings()
    recipient_rows = session.execute(
        select(col(Recipient.job_id), *(getattr(Recipient, name) for name in RECIPIENT_FIELDS))
        .where(one_of(session, col(Recipient.job_id), ids))
        .order_by(col(Recipient.job_id), col(Recipient.message_index), col(Recipient.position))
    ).mappings()
    by_job: dict[str, list[dict[str, Any]]] = {}
    for row in recipient_rows:
        by_job.setdefault(row["job_id"], []).append(dict(row))
    exporter.write([dict(row) for row in job_rows], by_job)


def _deleted(session: Session, statement: Any) -> int:
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return int(result.rowcount or 0)


def purge_batch(
    session: Session, cutoff: datetime, batch: int, exporter: Exporter | None = None
) -> PurgeReport:
    """Delete up to `batch` purgeable jobs and what only they needed, inside the caller's transaction."""
    chosen = select(col(Job.id)).where(*purgeable(cutoff)).order_by(col(Job.updated_at)).limit(batch)
    if session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(of=Job, skip_locked=True)
    ids = list(session.execute(chosen).scalars())
    report = PurgeReport()
    if not ids:
        return report
    if exporter is not None:
        _export_batch(session, exporter, ids)
        report.exported = len(ids)
    used = session.execute(
        select(col(Recipient.submission_id))
        .where(one_of(session, col(Recipient.job_id), ids), col(Recipient.submission_id).is_not(None))
        .distinct()
    )
    submission_ids = [value for value in used.scalars() if value is not None]
    report.callbacks = _deleted(
        session,
        delete(CallbackEvent).where(
            one_of(session, col(CallbackEvent.job_id), ids), col(CallbackEvent.state) != CallbackState.PENDING
        ),
    )
    report.recipients = _deleted(
        session, delete(Recipient).where(one_of(session, col(Recipient.job_id), ids))
    )
    report.jobs = _deleted(
        session, delete(Job).where(one_of(session, col(Job.id), ids), col(Job.state).in_(TERMINAL))
    )
    if submission_ids:
        report.submissions = _deleted(
            session,
            delete(Submission).where(
                one_of(session, col(Submission.id), submission_ids),
                col(Submission.state).in_(CLOSED_SUBMISSIONS),
                ~exists().where(col(Recipient.submission_id) == col(Submission.id)),
            ),
        )
    report.batches = 1
    return report


def purge_orphan_submissions(session: Session, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` closed submissions started before `cutoff` that no recipient points to."""
    orphans = (
        select(col(Submission.id))
        .where(
            col(Submission.state).in_(CLOSED_SUBMISSIONS),
            col(Submission.started_at) < cutoff,
            ~exists().where(col(Recipient.submission_id) == col(Submission.id)),
        )
        .limit(batch)
    )
    ids = list(session.execute(orphans).scalars())
    if not ids:
        return 0
    return _deleted(
        session,
        delete(Submission).where(
            one_of(session, col(Submission.id), ids),
            ~exists().where(col(Recipient.submission_id) == col(Submission.id)),
        ),
    )


def purge(
    sessions: SessionFactory,
    cutoff: datetime,
    *,
    batch: int = DEFAULT_BATCH,
    max_batches: int | None = None,
    export: Path | None = None,
    on_batch: Callable[[PurgeReport], None] | None = None,
) -> PurgeReport:
    """Purge final jobs older than `cutoff` in batches of `batch` jobs, each batch its own transaction,
    at most `max_batches` of them (None: until none is left); then closed orphan submissions."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    total = PurgeReport()
    exporter = Exporter(export) if export is not None else None
    try:
        while True:
            if max_batches is not None and total.batches >= max_batches:
                total.more = True  # the last batch was full: more may be waiting for the next run
                break
            with transaction(sessions) as session:
                report = purge_batch(session, cutoff, batch, exporter)
            total.add(report)
            if report.batches and on_batch is not None:
                on_batch(report)
            if report.jobs < batch:  # fewer than a full batch: none left
                break
    finally:
        if exporter is not None:
            exporter.close()
    if not total.more:
        with transaction(sessions) as session:
            total.submissions += purge_orphan_submissions(session, cutoff, batch)
    return total
