"""End to end through the real send path: enqueue with a webhook, submit and poll against the sandbox over
HTTP (Retarus REST v1, magic numbers for the rows of the status table), then the callback sweep. Every
recipient's final outcome arrives once, under one id, matching `job_status`; then the job's event."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from models.clock import ManualClock
from tests.callbacks.conftest import Receiver, callback_settings
from tests.conftest import Sandbox
from worker.callbacks.outbox import event_id
from worker.callbacks.tasks import run_callbacks
from worker.runtime import Runtime

#: statusRequested -> magic suffixes (sandbox/scenarios.py): delivered, undeliverable, failed, unknown,
#: canceled, sent (KILL) with a delivery notification; accepted, failed, unknown, undeliverable without.
JOBS = {True: ["0020", "0001", "0002", "0014", "0007", "0016"], False: ["0020", "0005", "0008", "0003"]}


def test_every_final_outcome_of_the_send_path_arrives_once(
    sqlite_url: str,
    make_runtime: Callable[..., Runtime],
    sandbox_factory: Callable[..., Sandbox],
    receiver: Receiver,
    clock: ManualClock,
) -> None:
    from scheduler.poll import poll_connection
    from worker import enqueue, job_status
    from worker.submit.dispatch import submit_next

    sandbox = sandbox_factory(clock=clock, accept_s=2.0, deliver_s=3.0)
    rt = make_runtime(callback_settings(sandbox, sqlite_url))
    job_ids = []
    for dn, suffixes in JOBS.items():
        request: dict[str, Any] = {
            "messages": [
                {"text": "Row", "recipients": [{"dst": f"+49176300{i}{s}"} for i, s in enumerate(suffixes)]}
            ],
            "options": {"statusRequested": dn},
        }
        job_ids.append(enqueue(request, runtime=rt, callback={"url": receiver.url}).id)
    for _ in range(4):
        submit_next("default", rt)
    assert {job_status(j, rt)["state"] for j in job_ids} == {"submitted"}
    run_callbacks(rt)  # nothing final yet
    assert receiver.received == []
    clock.advance(10)
    for _ in range(3):
        poll_connection(rt, "default")
        clock.advance(0.001)
    for _ in range(2):
        run_callbacks(rt)
    expected: dict[str, str] = {}
    for job_id in job_ids:
        status = job_status(job_id, rt)
        assert status["state"] == "finished"
        expected[event_id(job_id, "finished", True)] = "finished"
    from sqlmodel import col, select

    from models.db import transaction
    from models.tables import Recipient

    with transaction(rt.sessions) as session:
        rows = session.exec(select(Recipient).where(col(Recipient.job_id).in_(job_ids))).all()
    assert all(row.final for row in rows)
    expected.update({event_id(row.id, row.outcome, True): row.outcome for row in rows})
    assert {"delivered", "accepted", "undeliverable", "failed", "unknown", "canceled"} <= set(
        expected.values()
    )
    assert sorted(receiver.ids()) == sorted(expected)
    assert {p["id"]: p["outcome"] for p in receiver.verified()} == expected
