"""The sweep notes every change once, with a stable id; delivery is signed and at least once.

Outcomes are written here the way the send path writes them (plain UPDATEs), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from models.clock import ManualClock
from tests.callbacks.conftest import Receiver, callback_settings
from tests.callbacks.support import (
    TEXT,
    enqueue_with,
    finish_job,
    numbers,
    outbox,
    recipient_ids,
    write_outcome,
)
from tests.conftest import Sandbox
from worker.callbacks.outbox import event_id, note_outcomes
from worker.callbacks.tasks import run_callbacks
from worker.runtime import Runtime

NO_PROVIDER = Sandbox("http://127.0.0.1:9", None)
FINAL = ["delivered", "accepted", "undeliverable", "failed", "expired", "canceled", "suppressed", "unknown"]
PAYLOAD_KEYS = {
    "id",
    "type",
    "job_id",
    "recipient_id",
    "customer_ref",
    "outcome",
    "final",
    "provider_status",
    "reason",
    "at",
}


def test_every_final_outcome_gives_exactly_one_event_id_delivered_signed(
    database_url: str, make_runtime: Callable[..., Runtime], receiver: Receiver, clock: ManualClock
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, database_url))
    job_id = enqueue_with(rt, {"url": receiver.url}, count=len(FINAL))
    ids = recipient_ids(rt, job_id)
    # Given every final outcome written, and the send path writing the same outcome again later
    for rid, outcome in zip(ids, FINAL, strict=True):
        write_outcome(rt, rid, outcome, True, process_status="DONE", status="X")
    note_outcomes(rt)
    for rid, outcome in zip(ids, FINAL, strict=True):
        write_outcome(rt, rid, outcome, True, process_status="DONE", status="X")
    finish_job(rt, job_id)
    # When the sweep and delivery run several times
    for _ in range(3):
        run_callbacks(rt)
        clock.advance(1)
    # Then one event per recipient and one for the job, each delivered once, signed, ids and states only
    expected = {event_id(rid, outcome, True): outcome for rid, outcome in zip(ids, FINAL, strict=True)}
    expected[event_id(job_id, "finished", True)] = "finished"
    assert sorted(receiver.ids()) == sorted(expected)
    payloads = receiver.verified()
    assert {p["id"]: p["outcome"] for p in payloads} == expected
    for item in receiver.received:
        assert set(item.payload) == PAYLOAD_KEYS and item.event_id == item.payload["id"]
        assert TEXT.encode() not in item.body and not any(n[1:].encode() in item.body for n in numbers(8))
    first = next(p for p in payloads if p["recipient_id"] == ids[0])
    assert first["customer_ref"] == "r0" and first["provider_status"] == "DONE X" and first["final"] is True
    assert next(p for p in payloads if p["type"] == "job")["customer_ref"] == "order-42"
    assert {event.state for event in outbox(rt, job_id)} == {"delivered"}


@pytest.mark.parametrize("events", ["final", "all"])
def test_intermediate_outcomes_only_when_asked(
    sqlite_url: str, make_runtime: Callable[..., Runtime], receiver: Receiver, events: str
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url))
    job_id = enqueue_with(rt, {"url": receiver.url, "events": events})
    [rid] = recipient_ids(rt, job_id)
    run_callbacks(rt)  # pending: nothing to say
    write_outcome(rt, rid, "sent", False, process_status="RUNNING")
    run_callbacks(rt)
    write_outcome(rt, rid, "delivered", True, process_status="DONE", status="SUC_FIN")
    run_callbacks(rt)
    finish_job(rt, job_id)
    run_callbacks(rt)
    got = [(p["type"], p["outcome"], p["final"]) for p in receiver.verified()]
    progress = [("recipient", "sent", False)] if events == "all" else []
    assert got == [*progress, ("recipient", "delivered", True), ("job", "finished", True)]


def test_a_job_without_callback_writes_no_event_and_false_opts_out_of_the_default(
    sqlite_url: str, make_runtime: Callable[..., Runtime], receiver: Receiver
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url, callback_url=receiver.url))
    with_default = enqueue_with(rt, None)
    opted_out = enqueue_with(rt, False)
    for job_id in (with_default, opted_out):
        [rid] = recipient_ids(rt, job_id)
        write_outcome(rt, rid, "failed", True)
        finish_job(rt, job_id, "finished")
    run_callbacks(rt)
    assert {p["job_id"] for p in receiver.verified()} == {with_default}
    assert outbox(rt, opted_out) == []


def test_concurrency_per_receiver_is_bounded(
    sqlite_url: str, make_runtime: Callable[..., Runtime], receiver: Receiver
) -> None:
    rt = make_runtime(callback_settings(NO_PROVIDER, sqlite_url, callback_concurrency=2))
    receiver.delay_s = 0.05
    job_id = enqueue_with(rt, {"url": receiver.url}, count=12)
    for rid in recipient_ids(rt, job_id):
        write_outcome(rt, rid, "delivered", True)
    report: dict[str, Any] = run_callbacks(rt)
    assert report["delivered"] == 12 and receiver.max_in_flight == 2
