"""The scheduler end to end: polling honours the windows, outcomes match the provider, sweeps heal losses."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlmodel import select

from models.clock import ManualClock, SpedUpClock
from models.db import transaction
from models.intervals import parse_datetime, parse_interval
from models.status import classify
from models.tables import Job, Recipient, Submission
from models.windows import normalise_blackouts
from scheduler.poll import poll_connection
from tests.conftest import settings_env, smsq_settings, wait_until
from tests.integration.test_send_path import number, one, recipient_ids, sandbox_refs
from worker.producer import enqueue, enqueue_many
from worker.status import job_status
from worker.submit.dispatch import submit_next

SPEED = 600.0  # one sandbox hour in six real seconds


def _sandbox_recipients(box) -> dict[str, dict[str, Any]]:
    return {
        r["customerRef"]: {**r, "jobId": job["jobId"]}
        for job in box.state.snapshot_jobs()
        for r in job.get("recipients", [])
        if r.get("customerRef")
    }


def test_polling_honours_windows_and_records_the_providers_final_state(
    sandbox_factory, postgres_url, runtime_factory, processes
):
    epoch = time.time()
    clock = SpedUpClock(SPEED, epoch)
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(
        box,
        postgres_url,
        clock_speed=SPEED,
        clock_epoch=epoch,
        validity_grace_s=600.0,
        long_open_refresh_s=1800.0,
        poll_max_interval_s=600.0,
    )
    rt = runtime_factory(settings, clock=clock)
    env = settings_env(settings)
    processes.worker(env, concurrency=2)
    processes.beat(env)
    now = clock.now()
    blackout = f"{(now - timedelta(minutes=10)).isoformat()}/{(now + timedelta(hours=1)).isoformat()}"
    jobs = {
        "future jobPeriod": one("+4917620000010", jobPeriod=(now + timedelta(hours=1)).isoformat()),
        "blackout in force": one("+4917620000011", blackoutPeriods=[blackout]),
        "short validity in a blackout": one("+4917620000012", validityMin=30, blackoutPeriods=[blackout]),
        "never final": one("+4917620000004", validityMin=30, statusRequested=True),
        "failures": {
            "messages": [
                {
                    "text": "Status check",
                    "recipients": [
                        {"dst": f"+491762000{suffix}"}
                        for suffix in ("0001", "0002", "0003", "0005", "0006", "0007", "0020")
                    ],
                }
            ],
            "options": {"statusRequested": True},
        },
    }
    handles = {name: enqueue(request, runtime=rt) for name, request in jobs.items()}

    def all_final():
        return all(job_status(h.id, rt)["state"] in ("finished", "expired") for h in handles.values())

    wait_until(all_final, 60, what="every job final")
    # Every recorded outcome equals what the provider's final state means
    provider = _sandbox_recipients(box)
    with transaction(rt.sessions) as session:
        rows = session.exec(select(Recipient)).all()
    assert len(rows) == 11
    for row in rows:
        theirs = provider[row.id]
        if row.dst.endswith("0004"):
            assert theirs["processStatus"] == "RUNNING"
            assert row.outcome == "unknown" and "validity" in (row.reason or "")
            continue
        assert (row.process_status, row.status) == (theirs["processStatus"], theirs.get("status"))
        assert row.outcome == classify(theirs["processStatus"], theirs.get("status")).outcome
    outcomes = {row.dst[-4:]: row.outcome for row in rows}
    assert outcomes == {
        "0010": "accepted",
        "0011": "accepted",
        "0012": "canceled",  # validity passed in a blackout before sending: the provider cancels
        "0004": "unknown",
        "0001": "undeliverable",
        "0002": "failed",
        "0003": "undeliverable",
        "0005": "failed",
        "0006": "failed",
        "0007": "canceled",
        "0020": "delivered",
    }
    # The never-final job was closed as unknown and is not polled again in the next cycles
    never = job_status(handles["never final"].id, rt)["provider_job_ids"][0]

    def polls_of_never() -> int:
        return sum(1 for c in box.state.calls() if c.job_ids == [never] and "/sms" in c.path)

    polled_before = polls_of_never()
    time.sleep(3)
    assert polls_of_never() == polled_before
    # No per-job poll before jobPeriod, inside a blackout, or after the job was seen final
    by_job = {}
    for name, request in jobs.items():
        status = job_status(handles[name].id, rt)
        for pid in status["provider_job_ids"]:
            by_job[pid] = (request.get("options", {}), box.state.job("primary", pid))
    polls = [c for c in box.state.calls() if c.method == "GET" and c.job_ids and "/sms" in c.path]
    assert polls, "the scheduler read recipient reports"
    for call in polls:
        (pid,) = call.job_ids
        options, sandbox_job = by_job[pid]
        at = call.sandbox_ts
        if options.get("jobPeriod"):
            assert at >= parse_datetime(options["jobPeriod"]), f"polled {pid} before its jobPeriod"
        for period in normalise_blackouts(parse_interval(p) for p in options.get("blackoutPeriods", [])):
            assert not period.contains(at), f"polled {pid} during its blackout"
    for pid in by_job:
        finished_text = box.state.job("primary", pid).report(clock.now()).get("finishedTs")
        if not finished_text:
            continue
        finished = parse_datetime(finished_text)
        after = [c for c in polls if c.job_ids == [pid] and c.sandbox_ts >= finished]
        assert len(after) <= 1, f"{pid} polled {len(after)} times after it was final"


def test_polling_cost_is_one_listing_per_cycle_plus_one_report_per_finished_job(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    rt = runtime_factory(smsq_settings(box, sqlite_url, long_open_refresh_s=10_000.0), clock=clock)
    rt.wake = lambda *args, **kwargs: False
    start = clock.now()
    # Given N jobs that become due at different times, so they finish over several cycles
    n = 12
    for i in range(n):
        period = (start + timedelta(seconds=20 * (i % 4))).isoformat()
        enqueue(one(number(i), text=f"Job {i}", jobPeriod=period), runtime=rt)
        while submit_next("default", rt).kind == "sent":
            pass
    cycles = 0
    while any(job_status(h, rt)["state"] != "finished" for h in _job_ids(rt)):
        clock.advance(10)
        poll_connection(rt, "default")
        cycles += 1
        assert cycles < 40
    calls = [c for c in box.state.calls() if c.method == "GET"]
    listings = [c for c in calls if c.path.rstrip("/").endswith("/jobs")]
    reports = [c for c in calls if "/sms" in c.path]
    # Then the cost is at most one listing per cycle plus one recipient-report call per job
    assert len(listings) <= cycles
    assert len(reports) == n
    assert {tuple(c.job_ids) for c in reports} == {(pid,) for pid in _provider_ids(rt)}


def _job_ids(rt) -> list[str]:
    with transaction(rt.sessions) as session:
        return list(session.exec(select(Job.id)))


def _provider_ids(rt) -> set[str | None]:
    with transaction(rt.sessions) as session:
        return set(session.exec(select(Submission.provider_job_id)))


def test_jobs_lost_by_the_broker_are_published_again_once_even_with_two_beats(
    sandbox, postgres_url, runtime_factory, processes, redis_client
):
    settings = smsq_settings(sandbox, postgres_url, queued_grace_s=2.0)
    rt = runtime_factory(settings)
    # Given 100 queued jobs whose send tasks vanish with a Redis that restarted empty
    handles = enqueue_many([one(number(i), text=f"Lost {i}") for i in range(100)], runtime=rt)
    redis_client.flushdb()
    # When a worker and (by mistake) two beats run
    env = settings_env(settings)
    processes.worker(env, concurrency=2)
    processes.beat(env)
    processes.beat(env)
    # Then after the grace period every job reaches the provider exactly once and finishes
    wait_until(lambda: all(job_status(h.id, rt)["state"] == "finished" for h in handles), 90, what="finished")
    refs = sandbox_refs(sandbox)
    assert sorted(refs) == sorted(recipient_ids(rt))
    assert set(refs.values()) == {1}


def test_long_open_jobs_are_refreshed_at_a_low_rate_so_running_shows(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(
        box, sqlite_url, long_open_refresh_s=120.0, poll_interval_s=10.0, poll_max_interval_s=10.0
    )
    rt = runtime_factory(settings, clock=clock)
    rt.wake = lambda *args, **kwargs: False
    # Given a job whose recipient is sent but never final at the provider
    # (the provider reports RUNNING only for jobs that asked for a delivery notification)
    handle = enqueue(one("+4917620000004", text="Slow", statusRequested=True), runtime=rt)
    submit_next("default", rt)
    # When ten cycles run over 100 s: only listings, the job is still open
    for _ in range(10):
        clock.advance(10)
        poll_connection(rt, "default")
    assert job_status(handle.id, rt)["recipients"][0]["outcome"] == "pending"
    assert not [c for c in box.state.calls() if "/sms" in c.path]
    # Then once it has been open for the refresh period, its recipients are read once: RUNNING shows
    for _ in range(3):
        clock.advance(10)
        poll_connection(rt, "default")
    recipient = job_status(handle.id, rt)["recipients"][0]
    assert (recipient["outcome"], recipient["process_status"]) == ("sent", "RUNNING")
    assert len([c for c in box.state.calls() if "/sms" in c.path]) == 1


def test_a_job_coalesced_with_a_slow_recipient_finishes_on_the_normal_poll_schedule(
    sandbox_factory, sqlite_url, runtime_factory, redis_client
):
    clock = ManualClock()
    box = sandbox_factory(clock=clock)
    settings = smsq_settings(
        box, sqlite_url, long_open_refresh_s=600.0, poll_interval_s=10.0, poll_max_interval_s=10.0
    )
    rt = runtime_factory(settings, clock=clock)
    rt.wake = lambda *args, **kwargs: False
    # Given two jobs coalesced into one provider job, one of them with a recipient that never finishes
    quick = enqueue(one("+4917620000111", text="Same", statusRequested=True), runtime=rt)
    slow = enqueue(one("+4917620000004", text="Same", statusRequested=True), runtime=rt)
    assert submit_next("default", rt).calls == 1
    with transaction(rt.sessions) as session:
        assert len(list(session.exec(select(Submission)))) == 1
    # When the quick recipient is final at the provider (5 s) and two poll intervals pass
    calls_before = len(box.state.calls())
    for _ in range(2):
        clock.advance(10)
        poll_connection(rt, "default")
    # Then the quick job is finished although the provider job is still open; the slow one is not
    assert job_status(quick.id, rt)["state"] == "finished"
    assert job_status(slow.id, rt)["state"] == "submitted"
    # at the cost of one listing and one recipient read per poll of the open job
    made = [c.path for c in box.state.calls()[calls_before:]]
    assert made.count("/rest/v1/jobs") == 2 and made.count("/rest/v1/sms") == 2
