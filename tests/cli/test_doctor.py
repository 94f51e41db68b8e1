"""`smsq doctor` knows the fleet: real worker and beat processes, Redis db 14, the sandbox over HTTP.

One row per check: redis, database, workers (and each worker with the smsq queues it consumes), each
queue (length, consumers), beat (its last published sweep, kept in Redis), each connection's backlog,
settings, poll budget and provider. Exit 1 when a row fails; warnings exit 0.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from typer.testing import CliRunner

from models.clock import ManualClock
from tests import redis_dbs
from tests.cli.support import cli_settings, connections_file, env_for, free_port
from tests.conftest import redis_db_for_session, wait_until
from worker.cli.doctor import poll_budget_check
from worker.cli.main import app
from worker.metrics.heartbeat import BEAT_KEY, last_sweeps
from worker.queues import Queue
from worker.settings import ConnectionSettings, load_settings

#: This module's Redis db (14: kept apart from the areas other engineers' tests use).
DOCTOR_REDIS_URL = redis_dbs.url_for(redis_dbs.DOCTOR)

runner = CliRunner()
QUEUES = sorted(queue.value for queue in Queue)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from redis_db_for_session(DOCTOR_REDIS_URL)


def doctor() -> tuple[int, dict[str, dict[str, str]]]:
    result = runner.invoke(app, ["doctor", "--json"])
    report = json.loads(result.stdout)
    assert report["ok"] is (result.exit_code == 0)
    return result.exit_code, {check["check"]: check for check in report["checks"]}


def statuses(rows: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: row["status"] for name, row in rows.items()}


def test_doctor_sees_workers_their_queues_and_beat_then_each_failure(
    runtime_factory, sandbox, sqlite_url, redis_client, processes, tmp_path
):
    settings = cli_settings(
        sandbox, sqlite_url, broker_url=DOCTOR_REDIS_URL, poll_interval_s=10.0,
        connections_file=str(connections_file(tmp_path, sandbox)),
    )  # fmt: skip
    rt = runtime_factory(settings)
    env = env_for(settings)
    processes.worker(env, name="doc")
    beat = processes.beat(env)
    wait_until(lambda: last_sweeps(redis_client), timeout_s=20, what="beat's first sweep")

    code, rows = doctor()

    assert code == 0, rows
    node = next(name for name in rows if name.startswith("worker doc"))
    assert statuses(rows) | {node: rows[node]["status"]} == {
        "redis": "ok", "database": "ok", "workers": "ok", node: "ok",
        "beat": "ok", "backlog default": "ok", "backlog http-simple": "ok", "backlog sendmode": "ok",
        "connection default": "ok", "poll budget default": "ok", "provider default": "ok",
        "connection http-simple": "ok", "poll budget http-simple": "ok", "provider http-simple": "skip",
        "connection sendmode": "ok", "poll budget sendmode": "ok", "provider sendmode": "ok",
    } | {f"queue {queue}": "ok" for queue in QUEUES}  # fmt: skip
    assert rows[node]["detail"].startswith("consumes " + ", ".join(QUEUES))
    assert "worker(s) consume it" in rows["queue smsq.send"]["detail"]
    assert "last sweep published" in rows["beat"]["detail"]
    assert "sandbox-pass" not in json.dumps(rows) and "sandbox-key" not in json.dumps(rows)

    # Beat stops: its heartbeat in Redis goes stale (written back 10 minutes, as if it stopped then).
    processes.kill(beat)
    stale = time.time() - 600
    redis_client.delete(BEAT_KEY)
    redis_client.hset(BEAT_KEY, "smsq-release", f"{stale:.3f}")
    code, rows = doctor()
    assert code == 1
    assert rows["beat"]["status"] == "fail" and "beat has stopped" in rows["beat"]["detail"]

    # The worker answers but stops consuming (what a broker fault can leave behind).
    hostname = node.removeprefix("worker ")
    for queue in QUEUES:
        rt.celery.control.cancel_consumer(queue, destination=[hostname], reply=True, timeout=5)
    code, rows = doctor()
    assert code == 1
    assert rows[node] == {"check": node, "status": "fail",
                          "detail": "answers but consumes no smsq queue: it stopped consuming"}  # fmt: skip
    assert (
        rows["queue smsq.send"]["status"] == "fail"
        and "no worker consumes it" in rows["queue smsq.send"]["detail"]
    )

    # The worker is gone.
    processes.stop_all()
    code, rows = doctor()
    assert code == 1
    assert rows["workers"]["status"] == "fail" and rows["workers"]["detail"].startswith("no worker answered")
    assert not any(name.startswith("worker ") for name in rows)


def test_with_redis_down_the_provider_is_skipped_with_a_reason_and_the_backlog_age_shows(
    runtime_factory, sandbox, sqlite_url, redis_client
):
    from worker.producer import enqueue

    dead = f"redis://127.0.0.1:{free_port()}/0"
    clock = ManualClock()
    rt = runtime_factory(
        cli_settings(sandbox, sqlite_url, broker_url=dead, poll_interval_s=10.0), clock=clock
    )
    enqueue({"messages": [{"text": "hi", "recipients": [{"dst": "+4917612340001"}]}]}, runtime=rt)
    clock.advance(300)  # the job waits for 5 minutes: no broker, no worker

    code, rows = doctor()

    assert code == 1
    assert rows["redis"]["status"] == "fail"
    assert rows["workers"] == {
        "check": "workers",
        "status": "skip",
        "detail": "not checked: the broker is down",
    }
    assert rows["beat"]["status"] == "skip"
    assert rows["provider default"]["status"] == "skip"
    assert "Redis is down" in rows["provider default"]["detail"]
    assert rows["backlog default"] == {"check": "backlog default", "status": "warn",
                                       "detail": "1 due job(s) queued, the oldest for 300 s"}  # fmt: skip
    assert rows["database"]["status"] == "ok"


@pytest.mark.parametrize(
    ("provider", "interval_s", "status", "words"),
    [
        ("retarus", 10.0, "ok", "polling needs at least 6.5 calls per 60 s; the poll share keeps 10, polls may use at most 50"),
        ("retarus", 5.0, "warn", "12.5 calls per 60 s; the poll share keeps 10"),
        ("retarus", 1.0, "warn", "polls cannot keep up"),
        ("retarus_http", 6.0, "ok", "polling needs at least 10.0 calls per 60 s"),
        ("retarus_http", 5.0, "warn", "polls fall behind; raise SMSQ_POLL_INTERVAL_S or SMSQ_POLL_SHARE"),
        ("sendmode", 0.1, "ok", "Sendmode has no status API"),
    ],
)  # fmt: skip
def test_the_poll_budget_row_warns_when_the_intervals_spend_more_than_the_poll_share(
    provider, interval_s, status, words
):
    settings = load_settings(poll_interval_s=interval_s, long_open_refresh_s=120.0)
    conn = ConnectionSettings(
        name="c", provider=provider, urls="http://127.0.0.1:1/x", username="u", password="p", api_key="k"
    )

    check = poll_budget_check(settings, conn)

    assert (check.check, check.status) == ("poll budget c", status)
    assert words in check.detail


def test_worker_health_check_and_a_warning_alone_keeps_exit_code_0(
    runtime_factory, sandbox, sqlite_url, redis_client, processes
):
    from worker.metrics.health import check_worker

    settings = cli_settings(sandbox, sqlite_url, broker_url=DOCTOR_REDIS_URL, poll_interval_s=5.0)
    runtime_factory(settings)
    node = f"health0@{socket.gethostname()}"  # the name processes.worker gives its first worker
    assert check_worker(settings, node, timeout_s=0.5) == f"{node} did not answer a ping within 0.5 s"
    processes.worker(env_for(settings), name="health")
    assert check_worker(settings, node) is None
    redis_client.hset(BEAT_KEY, "smsq-release", f"{_redis_time(redis_client):.3f}")

    code, rows = doctor()

    assert rows["poll budget default"]["status"] == "warn"
    assert {row["status"] for row in rows.values()} <= {"ok", "warn", "skip"}
    assert code == 0


def _redis_time(client: redis.Redis[Any]) -> float:
    seconds, micros = client.time()
    return float(seconds + micros / 1e6)
