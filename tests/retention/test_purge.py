"""The purge on SQLite and PostgreSQL: only final jobs past the cutoff go, in batches, with what only they
needed; open jobs, recent ones, jobs with pending callbacks or in open provider calls stay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from models.db import SessionFactory, database_time, make_engine, make_session_factory, transaction
from models.tables import CallbackEvent, CallbackState, Job, Recipient, Submission, SubmissionState
from tests.retention.support import Seeder, counts, existing
from worker.retention import PurgeReport, count_purgeable, purge

DAY = timedelta(days=1)
OLD, RECENT = 40 * DAY, 1 * DAY
CUTOFF_AGE = 30 * DAY


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def seeder(engine: Engine) -> Seeder:
    now = datetime.fromtimestamp(database_time(engine), UTC)  # the database's clock, as rt.clock gives it
    return Seeder(make_session_factory(engine), now)


def fill(seed: Seeder) -> dict[str, str]:
    """Final and open jobs of several ages; returns the submissions by role."""
    shared_old = seed.submission(OLD)  # carries two old final jobs: goes with them
    shared_mixed = seed.submission(OLD)  # carries an old and a recent final job: stays
    open_call = seed.submission(OLD, SubmissionState.ACCEPTED)  # still polled
    orphan = seed.submission(OLD, SubmissionState.ABSENT)  # its recipients were sent again elsewhere
    orphan_in_flight = seed.submission(OLD, SubmissionState.IN_FLIGHT)
    for state in ("finished", "expired", "rejected", "failed", "canceled"):
        seed.job("old_final", OLD, state)
    seed.job("old_final", OLD, submission=shared_old)
    seed.job("old_final", 90 * DAY, submission=shared_old, callback_state=CallbackState.DELIVERED)
    seed.job("old_final", 35 * DAY, submission=shared_mixed, callback_state=CallbackState.FAILED)
    seed.job("recent_final", RECENT, submission=shared_mixed)
    seed.job("recent_final", 29 * DAY)
    for state in ("scheduled", "queued", "submitting"):
        seed.job("old_open", OLD, state)
    seed.job("old_open", OLD, "submitted", submission=open_call)
    seed.job("held", OLD, callback_state=CallbackState.PENDING)  # its event is not delivered yet
    seed.job("held", OLD, callback_open=True)  # the callback sweep has not noted it yet
    seed.job("held", OLD, "canceled", submission=open_call)  # a recipient is in an open call
    return {
        "gone": shared_old,
        "mixed": shared_mixed,
        "open": open_call,
        "orphan": orphan,
        "orphan_in_flight": orphan_in_flight,
    }


def test_only_old_final_jobs_go_in_batches_with_what_only_they_needed(seeder: Seeder) -> None:
    subs = fill(seeder)
    sessions: SessionFactory = seeder.sessions
    cutoff = seeder.now - CUTOFF_AGE
    old_final = seeder.made["old_final"]
    kept = [*seeder.made["recent_final"], *seeder.made["old_open"], *seeder.made["held"]]

    dry = count_purgeable(sessions, cutoff)
    assert (dry.jobs, dry.recipients) == (len(old_final), 2 * len(old_final))
    assert existing(sessions, Job, old_final) == set(old_final)  # the dry run deleted nothing

    batches: list[PurgeReport] = []
    report = purge(sessions, cutoff, batch=3, on_batch=batches.append)

    assert report.jobs == len(old_final) == 8
    assert report.batches == 3 and [b.jobs for b in batches] == [3, 3, 2]  # oldest first, 3 per transaction
    assert report.recipients == 16 and report.callbacks == 2 and not report.more
    assert existing(sessions, Job, old_final) == set()
    assert existing(sessions, Job, kept) == set(kept)
    assert existing(sessions, Submission, list(subs.values())) == {
        subs["mixed"],
        subs["open"],
        subs["orphan_in_flight"],
    }
    assert report.submissions == 2  # the shared old one and the absent orphan
    with transaction(sessions) as session:
        left = counts(session)
        pending = session.execute(
            select(func.count())
            .select_from(CallbackEvent)
            .where(col(CallbackEvent.state) == CallbackState.PENDING)
        ).scalar_one()
        strays = session.execute(
            select(func.count()).select_from(Recipient).where(col(Recipient.job_id).not_in(kept))
        ).scalar_one()
    assert left == {"smsq_job": 9, "smsq_recipient": 18, "smsq_submission": 3, "smsq_callback": 1}
    assert pending == 1 and strays == 0

    again = purge(sessions, cutoff, batch=3)  # idempotent: nothing more to do
    assert (again.jobs, again.batches, again.submissions) == (0, 0, 0)


def test_a_run_stops_after_its_batch_bound_and_the_next_run_continues(seeder: Seeder) -> None:
    for _ in range(7):
        seeder.job("old_final", OLD, recipients=1)
    cutoff = seeder.now - CUTOFF_AGE
    first = purge(seeder.sessions, cutoff, batch=2, max_batches=2)
    assert (first.jobs, first.batches, first.more) == (4, 2, True)
    second = purge(seeder.sessions, cutoff, batch=2, max_batches=2)
    assert (second.jobs, second.more) == (3, False)
    assert existing(seeder.sessions, Job, seeder.made["old_final"]) == set()


def test_the_export_holds_every_purged_job_before_its_delete(seeder: Seeder, tmp_path: Path) -> None:
    for _ in range(3):
        seeder.job("old_final", OLD)
    seeder.job("recent_final", RECENT)
    cutoff = seeder.now - CUTOFF_AGE
    jsonl, csv_file = tmp_path / "purged.jsonl", tmp_path / "purged.csv"
    purge(seeder.sessions, cutoff, batch=2, export=jsonl)
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(seeder.made["old_final"])
    assert all(len(line["recipients"]) == 2 and line["state"] == "finished" for line in lines)
    assert lines[0]["finished_at"].endswith("Z") and lines[0]["recipients"][0]["dst"].startswith("+49")

    seeder.job("old_final_2", OLD)
    purge(seeder.sessions, cutoff, export=csv_file)
    rows = csv_file.read_text().splitlines()
    assert rows[0].startswith("id,state,connection") and len(rows) == 3  # header + one row per recipient
    assert existing(seeder.sessions, Job, seeder.made["recent_final"]) == set(seeder.made["recent_final"])
