"""A receiver that is down: events wait in the database, are retried with backoff and delivered when it is
back; one that stays down ends `failed` after SMSQ_CALLBACK_RETRY_PERIOD_S, shown by `smsq status` and
counted in `smsq_callback_events_total{result="failed"}`."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable

from prometheus_client import REGISTRY

from models.clock import ManualClock
from tests.callbacks.conftest import Receiver, callback_settings
from tests.callbacks.support import enqueue_with, finish_job, outbox, recipient_ids, write_outcome
from tests.cli.support import run_smsq
from tests.conftest import Sandbox, settings_env
from worker.runtime import Runtime

NO_PROVIDER = Sandbox("http://127.0.0.1:9", None)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/down"


def test_a_receiver_down_for_a_while_gets_every_event_when_back(
    sqlite_url: str, make_runtime: Callable[..., Runtime], receiver: Receiver, clock: ManualClock
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url))
    job_id = enqueue_with(rt, {"url": receiver.url}, count=3)
    for rid in recipient_ids(rt, job_id):
        write_outcome(rt, rid, "delivered", True)
    finish_job(rt, job_id)
    receiver.status = 503
    first = run_callbacks_report(rt)
    assert first["retried"] == 4 and receiver.received == []
    # Not due before its backoff: nothing is sent again at the same moment
    assert run_callbacks_report(rt)["retried"] == 0
    for _ in range(3):  # still down: backoff grows, still pending
        clock.advance(10)
        assert run_callbacks_report(rt)["retried"] == 4
    events = outbox(rt, job_id)
    assert {(e.state, e.attempts, e.last_error) for e in events} == {("pending", 4, "HTTP 503")}
    receiver.status = 200
    clock.advance(10)
    assert run_callbacks_report(rt)["delivered"] == 4
    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    receiver.verified()


def test_a_receiver_that_stays_down_ends_failed_visible_in_status_and_metrics(
    sqlite_url: str, make_runtime: Callable[..., Runtime], clock: ManualClock
) -> None:
    settings = callback_settings(NO_PROVIDER, sqlite_url, callback_retry_period_s=60, callback_timeout_s=0.5)
    rt = make_runtime(settings)
    job_id = enqueue_with(rt, {"url": closed_port_url()}, count=2)
    for rid in recipient_ids(rt, job_id):
        write_outcome(rt, rid, "undeliverable", True)
    finish_job(rt, job_id)
    before = (
        REGISTRY.get_sample_value(
            "smsq_callback_events_total", {"connection": "default", "kind": "webhook", "result": "failed"}
        )
        or 0.0
    )
    for _ in range(30):  # seven-second steps: the 60 s period ends after about nine
        run_callbacks_report(rt)
        if all(e.state == "failed" for e in outbox(rt, job_id)):
            break
        clock.advance(7)
    events = outbox(rt, job_id)
    assert {e.state for e in events} == {"failed"} and {e.last_error for e in events} == {"ConnectError"}
    # every attempt happened within the retry period, the last one at its end
    assert all(
        e.completed_at is not None and (e.completed_at - e.created_at).total_seconds() <= 67 for e in events
    )
    assert min(e.attempts for e in events) >= 4
    after = REGISTRY.get_sample_value(
        "smsq_callback_events_total", {"connection": "default", "kind": "webhook", "result": "failed"}
    )
    assert after == before + 3
    shown = run_smsq(["status", job_id, "--json"], settings_env(settings))
    assert shown.returncode == 0, shown.stderr
    callbacks = json.loads(shown.stdout)["callbacks"]
    assert (callbacks["failed"], callbacks["pending"], callbacks["delivered"]) == (3, 0, 0)
    assert {f["error"] for f in callbacks["failures"]} == {"ConnectError"}
    text = run_smsq(["status", job_id], settings_env(settings))
    assert "0 pending, 0 delivered, 3 failed" in text.stdout


def run_callbacks_report(rt: Runtime) -> dict[str, int]:
    from worker.callbacks.tasks import run_callbacks

    return run_callbacks(rt)
