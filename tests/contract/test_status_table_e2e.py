"""Every row of the status table (PROVIDERS.md 1.6) driven through smsq end to end: `enqueue`, one
submission round, polling, all over real HTTP against the sandbox (Retarus REST v1), on one ManualClock
shared by smsq and the sandbox. Each test asserts the raw processStatus/status smsq stored and the
normalised outcome. Uses its own Redis db (base+7, tests/redis_dbs.py) and a SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from models.clock import ManualClock
from models.migrate import upgrade
from sandbox.app import create_app
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from sandbox.server import serve_in_thread
from tests import redis_dbs

REDIS_URL = redis_dbs.url_for(redis_dbs.CONTRACT)
START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)

pytestmark = pytest.mark.contract

#: (number suffix, statusRequested, validityMin, seconds after submission, processStatus, status, outcome)
#: Non-final rows are read while the sandbox holds them: a long accept_s keeps OPEN <empty>, a long
#: deliver_s lets the validity end while RUNNING (TIMEOUT). TIMING: suffix/row -> (accept_s, deliver_s).
ROWS = [
    ("0020", False, 0, 600, "OPEN", None, "pending"),  # OPEN <empty>: before the first attempt
    ("0017", False, 0, 600, "OPEN", "CON_ERR", "pending"),  # OPEN <any>: retry state
    ("0020", False, 0, 10, "DONE", "SUC_ACC", "accepted"),
    ("0020", True, 0, 10, "DONE", "SUC_FIN", "delivered"),
    ("0001", False, 0, 10, "DONE", "INVALID_DST", "undeliverable"),
    ("0003", False, 0, 10, "DONE", "BLOCKED", "undeliverable"),
    ("0021", True, 5, 900, "DONE", "TIMEOUT", "expired"),  # validity (5 min) ends while RUNNING
    ("0005", False, 0, 10, "DONE", "CON_ERR", "failed"),
    ("0002", True, 0, 10, "DONE", "FAILED_FIN", "failed"),
    ("0006", False, 0, 10, "DONE", "NOT_ACC_FIN", "failed"),
    ("0008", False, 0, 10, "DONE", "SEND_ERR", "unknown"),
    ("0014", True, 0, 10, "DONE", "STATUS_ERR", "unknown"),
    ("0015", False, 0, 10, "CANCELED", None, "canceled"),
    ("0007", False, 0, 10, "CANCELED", "NOT_ACC_REC", "canceled"),
    ("0004", True, 0, 600, "RUNNING", None, "sent"),
    ("0016", True, 0, 10, "KILL", None, "sent"),
]


TIMING = {("OPEN", None): (3600.0, 3.0), ("DONE", "TIMEOUT"): (2.0, 3600.0)}


@pytest.fixture
def smsq(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Any, ManualClock]]:
    from worker.runtime import Runtime
    from worker.settings import load_settings

    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not answering on {redis_dbs.server()}")
    client.flushdb()
    clock = ManualClock(START)
    params = request.node.callspec.params
    accept_s, deliver_s = TIMING.get((params["process_status"], params["status"]), (2.0, 3.0))
    app = create_app(SandboxConfig(accept_s=accept_s, deliver_s=deliver_s), clock=clock)
    database_url = f"sqlite:///{tmp_path / 'smsq.db'}"
    upgrade(database_url)
    with serve_in_thread(app) as url:
        settings = load_settings(
            broker_url=REDIS_URL,
            database_url=database_url,
            provider="retarus",
            provider_url=f"{url}/rest/v1",
            provider_username=DEFAULT_USERNAME,
            provider_password=DEFAULT_PASSWORD,
            provider_api_key=DEFAULT_API_KEY,
        )
        rt = Runtime(settings, clock=clock)
        try:
            yield rt, clock
        finally:
            rt.close()
            client.flushdb()
            client.close()


@pytest.mark.parametrize(
    ("suffix", "dn", "validity", "after_s", "process_status", "status", "outcome"),
    ROWS,
    ids=[f"{r[4]} {r[5] or 'empty'}" for r in ROWS],
)
def test_each_status_row_is_stored_raw_and_normalised(
    smsq: tuple[Any, ManualClock], suffix, dn, validity, after_s, process_status, status, outcome
) -> None:
    from scheduler.poll import poll_connection
    from worker import enqueue, job_status
    from worker.submit.dispatch import submit_next

    rt, clock = smsq
    options: dict[str, Any] = {"statusRequested": dn}
    if validity:
        options["validityMin"] = validity
    handle = enqueue(
        {"messages": [{"text": "Row", "recipients": [{"dst": f"+491763000{suffix}"}]}], "options": options},
        runtime=rt,
    )
    submit_next("default", rt)
    assert job_status(handle.id, rt)["state"] == "submitted"
    clock.advance(after_s)
    for _ in range(3):  # a cycle may only schedule the next poll; a few cycles at the same moment
        poll_connection(rt, "default")
        clock.advance(0.001)
    [row] = job_status(handle.id, rt)["recipients"]
    assert (row["process_status"], row["status"] or None, row["outcome"]) == (process_status, status, outcome)
