"""Redis with Sentinel (issue 16, Done-when 2): three redis-servers and three Sentinels on loopback, the
master SIGKILLed mid-run with jobs queued and in flight; the broker and the limiter/locks both follow the
failover (`sentinel://` URLs). Then: 0 lost, 0 duplicates, the provider's window never over budget.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.chaos import Fleet
from bench.dispatch import max_in_window
from tests.conftest import SANDBOX_PASS, SANDBOX_USER, settings_env, smsq_settings, wait_until
from tests.scaling.sentinel import SentinelCluster
from worker.celery_app import create_celery_app
from worker.producer import enqueue_many
from worker.rate_limit.limiter import RedisRateLimiter
from worker.redis_client import MASTER_KEY, redis_from_url
from worker.runtime import Runtime

LIMIT, PERIOD_S = 20, 3.0


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    servers = SentinelCluster(tmp_path / "redis")
    yield servers
    servers.stop()


def test_the_limiter_rebuilds_its_window_on_the_promoted_replica(cluster: SentinelCluster) -> None:
    client = redis_from_url(cluster.url, socket_timeout=2, socket_connect_timeout=1)
    recorded: list[float] = []  # what the database recorded
    limiter = RedisRateLimiter(client, "default", 10, 30, poll_share=0.2, recent_calls=lambda: recorded)
    # Given five sends granted on the master (and recorded), replicated, and the master's identity recorded
    for _ in range(5):
        assert limiter.attempt("send").granted
    recorded[:] = [0.5, 0.4, 0.3, 0.2, 0.1]
    client.wait(2, 1000)
    assert client.get(MASTER_KEY)
    # When the master dies and a replica is promoted
    old, _ = cluster.kill_master()
    new = cluster.wait_new_master(old)
    assert new != old

    # Then the first connection to the new master drops the limiter's state marker, so the window is rebuilt
    # from the database (five sends) plus the polls' whole share (five) on top of whatever was replicated:
    # the limiter grants no more than the provider can still accept, even had the last grants been lost.
    def granted() -> Any:
        try:
            return limiter.attempt("send")
        except Exception:  # the connection to the dead master: redis-py reconnects on the next command
            return None

    grant = wait_until(granted, 20, what="a grant on the new master")
    assert grant.granted is False  # >= 5 rebuilt + 5 polls: the window is full for sends (8 slots)
    assert limiter.usage() >= 10
    assert int(client.connection_pool.get_master_address()[1]) == new
    client.close()


def test_a_failover_mid_run_loses_nothing_duplicates_nothing_and_keeps_the_budget(
    cluster: SentinelCluster, sandbox_factory: Any, postgres_url: str, tmp_path: Path
) -> None:
    box = sandbox_factory(limit_calls=LIMIT, limit_period_s=PERIOD_S)
    settings = smsq_settings(
        box, postgres_url,
        broker_url=cluster.url, redis_url=cluster.url,
        rate_limit_calls=LIMIT, rate_limit_period_s=PERIOD_S, batch_max_recipients=1,
        queued_grace_s=3.0, submit_timeout_s=4.0,
    )  # fmt: skip
    assert settings.provider_username == SANDBOX_USER and settings.provider_password.get_secret_value()
    assert SANDBOX_PASS
    rt = Runtime(settings, celery=create_celery_app(settings))
    fleet = Fleet(settings_env(settings), tmp_path)
    try:
        # Given 150 jobs (one provider call each) and two supervised workers and a beat on the Sentinel URLs
        requests = [
            {"messages": [{"text": f"Failover {i}", "recipients": [{"dst": f"+491765550{i:04d}"}]}]}
            for i in range(1000, 1150)
        ]
        handles = enqueue_many(requests, runtime=rt)
        fleet.worker(concurrency=2)
        fleet.worker(concurrency=2)
        fleet.beat()
        sends = lambda: [c for c in box.state.calls() if c.method == "POST"]  # noqa: E731
        wait_until(lambda: len(sends()) >= 40, 60, what="40 sends")
        # When the master is SIGKILLed mid-run (jobs queued, calls in flight)
        old, killed_at = cluster.kill_master()
        new = cluster.wait_new_master(old)
        promoted_s = time.monotonic() - killed_at
        # Then every job finishes
        ids = [h.id for h in handles]

        def all_final() -> bool:
            with rt.engine.connect() as conn:
                rows = conn.exec_driver_sql("SELECT state, count(*) FROM smsq_job GROUP BY state")
                states: dict[str, int] = {str(state): int(count) for state, count in rows.all()}
            return bool(states.get("finished", 0) == len(ids))

        try:
            wait_until(all_final, 120, interval_s=1, what="every job finished")
        except BaseException:
            with rt.engine.connect() as conn:
                print(
                    conn.exec_driver_sql("SELECT state, reason FROM smsq_job WHERE state <> 'finished'").all()
                )
            print(fleet.logs()[-8000:])
            raise
        # 0 lost, 0 duplicates: each recipient reached the provider exactly once
        refs: collections.Counter[str] = collections.Counter()
        for job in box.state.snapshot_jobs():
            for recipient in job.get("recipients", []):
                refs[recipient["customerRef"]] += 1
        assert len(refs) == len(ids) and set(refs.values()) == {1}, refs.most_common(3)
        # and the provider's window never held more than its budget, nor refused a call for the rate
        calls = box.state.calls()
        assert max_in_window([c.real_ts for c in calls], PERIOD_S) <= LIMIT
        assert not [c for c in calls if c.status_code == 429]
        print(
            f"\nsentinel failover: master :{old} -> :{new} in {promoted_s:.1f} s; {len(ids)} jobs, "
            f"{len(calls)} provider calls, busiest {PERIOD_S:g} s window "
            f"{max_in_window([c.real_ts for c in calls], PERIOD_S)}/{LIMIT}; restarts {dict(fleet.restarts)}"
        )
    finally:
        fleet.stop()
        rt.close()
