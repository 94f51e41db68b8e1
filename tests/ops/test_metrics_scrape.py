"""A sandbox run with compose's worker, beat and metrics commands and settings, then both scraped.

The worker runs as in docker-compose.yml (prefork, 4 processes, SMSQ_METRICS_PORT and
PROMETHEUS_MULTIPROC_DIR from its environment there); after jobs were delivered, refused (undeliverable),
throttled (429), retried (500) and lost on the way back (the connection dropped after the provider
accepted, so the call was looked up), every histogram and counter an SRE expects is on the worker's
/metrics, and the open-work gauges on the metrics service's.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import col, select

from models.db import transaction
from models.tables import Job
from tests.cli.support import cli_settings, env_for, free_port
from tests.conftest import redis_db_for_session, wait_until
from tests.ops.test_compose import SERVICES, command, localise
from worker.producer import enqueue

OPS_REDIS_URL = "redis://127.0.0.1:6379/15"

WORKER_HISTOGRAMS = ["smsq_provider_request_seconds", "smsq_enqueue_to_submitted_seconds",
                     "smsq_submitted_to_final_seconds", "smsq_limiter_wait_seconds",
                     "smsq_limiter_grant_to_wire_seconds"]  # fmt: skip
WORKER_COUNTERS = ["smsq_provider_calls_total", "smsq_recipient_outcomes_total", "smsq_recipients_submitted_total",
                   "smsq_provider_throttled_total", "smsq_send_retries_total", "smsq_lookups_total",
                   "smsq_drain_runs_total"]  # fmt: skip
SERVICE_GAUGES = ["smsq_jobs", "smsq_open_recipients", "smsq_backlog_age_seconds", "smsq_submitting_age_seconds",
                  "smsq_broker_queue_length", "smsq_connection_paused", "smsq_beat_last_sweep_timestamp_seconds",
                  "smsq_connection_limit_calls", "smsq_database_up"]  # fmt: skip


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    yield from redis_db_for_session(OPS_REDIS_URL)


def _scrape(port: int) -> str | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.text if answer.status_code == 200 else None


def test_worker_and_metrics_service_expose_every_histogram_counter_and_gauge_after_a_sandbox_run(
    runtime_factory, sandbox, sqlite_url, redis_client, spawn, tmp_path
):
    settings = cli_settings(sandbox, sqlite_url, broker_url=OPS_REDIS_URL, send_max_retries=1,
                            retry_backoff_max_s=1.0)  # fmt: skip
    rt = runtime_factory(settings)
    worker_env = SERVICES["worker"]["environment"]
    worker_port = free_port()
    multiproc = tmp_path / "multiproc"
    multiproc.mkdir()
    env = env_for(settings)
    assert {"SMSQ_METRICS_PORT", "PROMETHEUS_MULTIPROC_DIR"} <= set(worker_env)
    worker_argv, _ = localise(command("worker"), tmp_path)
    worker = spawn(worker_argv, {**env, "SMSQ_METRICS_PORT": str(worker_port),
                                 "PROMETHEUS_MULTIPROC_DIR": str(multiproc)})  # fmt: skip
    beat_argv, _ = localise(command("beat"), tmp_path)
    spawn(beat_argv, env)
    metrics_argv, metrics_port = localise(command("metrics"), tmp_path)
    metrics = spawn(metrics_argv, env)
    spawn.wait_for_log(worker, "ready.")

    # The first send call is accepted, then its connection is dropped: the call is looked up and found.
    sandbox.state.drop(1, None, "/rest/v1/jobs")
    ids = [
        enqueue({"messages": [{"text": "hi", "recipients": [{"dst": dst}]}], "options": {"src": src}}, runtime=rt).id
        for dst, src in [("+4917612340011", "A"), ("+4917612340012", "B"), ("+4917612340001", "C"),
                         ("+4917612340500", "D"), ("+4917612340429", "E")]
    ]  # fmt: skip

    def final() -> bool:
        with transaction(rt.sessions) as session:
            states = {job.id: job.state for job in session.exec(select(Job).where(col(Job.id).in_(ids[:4])))}
        return (
            all(state in ("finished", "failed", "rejected") for state in states.values()) and len(states) == 4
        )

    wait_until(final, timeout_s=45, what="the delivered, undeliverable and failed jobs to be final")

    def worker_text() -> str | None:
        text = _scrape(worker_port)
        return text if text and all(f"{name}_count" in text for name in WORKER_HISTOGRAMS) and \
            "smsq_lookups_total{" in text and "smsq_provider_throttled_total{" in text else None  # fmt: skip

    text = wait_until(worker_text, timeout_s=20, what="the worker's metrics")
    for name in WORKER_HISTOGRAMS:
        assert f"# TYPE {name} histogram" in text and f"{name}_bucket{{" in text, name
    for name in WORKER_COUNTERS:
        assert f"# TYPE {name} counter" in text and f"{name}{{" in text, name
    assert 'smsq_provider_calls_total{code="201",connection="default",operation="send_job"}' in text
    assert 'smsq_provider_calls_total{code="429",connection="default",operation="send_job"}' in text
    assert 'smsq_recipient_outcomes_total{connection="default",outcome="undeliverable"}' in text
    assert 'smsq_lookups_total{connection="default",result="found"}' in text
    assert "4917612340" not in text and "sandbox-pass" not in text  # no number, no secret

    service = wait_until(lambda: _scrape(metrics_port), timeout_s=20, what="the metrics service")
    for name in SERVICE_GAUGES:
        assert f"# TYPE {name} gauge" in service, name
    assert 'smsq_jobs{connection="default",state="queued"}' in service
    assert 'smsq_connection_limit_calls{connection="default"} 100.0' in service
    assert metrics.poll() is None
