"""A small, fast run of bench/dispatch.py against real worker processes and the sandbox over HTTP.

It asserts the properties issue 10 asks of dispatch, not timings (CI hosts are slow and shared):

- a backlog goes out in few, full provider calls, each recipient exactly once, no 429;
- at one recipient per call, saturated and with a CPU-burning neighbour, the provider never sees more
  than the budget in any of its windows, every limiter grant becomes a provider call, and the broker
  carries a bounded number of messages per call.

Redis: db 15 above `SMSQ_TEST_REDIS_URL` (the benchmark's own db 12 stays free for `python -m
bench.dispatch`); SQLite files in the test's temporary directory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

import bench.dispatch as dispatch
import bench.throughput as throughput
from tests import redis_dbs

pytestmark = pytest.mark.integration

#: The Redis db offset this test uses and flushes (see tests/redis_dbs.py).
BENCH_TEST_DB = redis_dbs.BENCH_TEST
SHAPE = dispatch.FleetShape(2, 4, "threads")


@pytest.fixture
def bench_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = redis_dbs.url_for(BENCH_TEST_DB)
    client: redis.Redis[Any] = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not answering at {redis_dbs.server()}")
    monkeypatch.setattr(dispatch, "REDIS_URL", url)
    monkeypatch.setattr(throughput, "REDIS_URL", url)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def test_window_arithmetic() -> None:
    assert dispatch.max_in_window([0.0, 1.0, 2.0, 6.0, 6.5], 6.0) == 4  # (0.5, 6.5]
    assert dispatch.max_in_window([0.0, 6.0], 6.0) == 1  # the sandbox's window is (t - period, t]
    assert dispatch.per_window([0.0, 5.9, 6.0, 13.0], 0.0, 6.0, 2) == [2, 1]
    jobs = [
        {"jobId": "J.1", "recipients": [{"customerRef": "a"}, {"customerRef": "b"}]},
        {"jobId": "J.2", "recipients": [{"customerRef": "a"}]},
    ]
    assert dispatch.duplicates(jobs) == 1
    assert dispatch.recipients_by_job(jobs) == {"J.1": 2, "J.2": 1}


def test_backlog_and_saturation(bench_redis: str, tmp_path: Path) -> None:
    dbs = dispatch.Databases("SQLite", tmp_path)
    try:
        # A backlog: 6,000 single-recipient jobs queued with no worker running, then workers and beat.
        jobs = 6000
        sandbox = dispatch.SandboxProcess(dispatch.BACKLOG_LIMIT, tmp_path)
        try:
            url = dbs.create("template")
            fill = dispatch.dispatch_settings(url, sandbox.rest_url, dispatch.BACKLOG_LIMIT)
            dispatch.enqueue_backlog(url, jobs, fill)
            run = dispatch.run_backlog(
                "smsq",
                dbs,
                "template",
                jobs,
                sandbox,
                tmp_path,
                batch_max_recipients=dispatch.CALL_MAX_RECIPIENTS,
                cap_s=40.0,
                shape=SHAPE,
            )
        finally:
            sandbox.stop()
        assert run.completed, f"{run.jobs_left_queued} jobs still queued"
        assert run.recipients == jobs  # every recipient reached the provider ...
        assert run.duplicates == 0  # ... exactly once
        assert run.throttled_429 == 0
        assert len(run.sends) <= math.ceil(jobs / dispatch.CALL_MAX_RECIPIENTS) + 2  # coalesced
        assert run.max_calls_in_window <= dispatch.BACKLOG_LIMIT.calls
        assert run.granted == run.provider_calls  # no slot taken without a call

        # Saturated at one recipient per call, with a CPU-burning neighbour, over two provider windows.
        limit = dispatch.Limit(20, 4.0)
        sandbox = dispatch.SandboxProcess(limit, tmp_path)
        try:
            sat = dispatch.run_saturation("sat", dbs, 300, 2, sandbox, tmp_path, burn=1, shape=SHAPE)
        finally:
            sandbox.stop()
        assert sat.throttled_429 == 0
        assert sat.duplicates == 0
        assert sat.max_calls_in_window <= sat.budget  # the limit holds at the provider
        assert sat.max_sends_in_window <= sat.send_slots
        assert sat.grants_without_call <= max(1, sat.granted // 100)  # <= 1 % of grants unused
        assert sat.provider_sends >= sat.send_slots  # it did saturate (a full window at least)
        assert sat.messages_per_call <= 5  # broker traffic bounded per provider call
        assert sat.task_runs_per_call <= 5
    finally:
        dbs.close()
