"""Drains and lookups wait out a database or Redis outage of any length: their retries have no limit.

`self.retry(max_retries=None)` alone does not do that: Celery reads None there as "the task's default",
which is 3, so the fourth retry raised MaxRetriesExceededError and the message was acknowledged and dropped
(found by bench.chaos's disk-full experiment: a 10 s full disk outlasted 1 + 2 + 4 s of retries). The
tasks are run eagerly here with a use case that fails more often than that, then succeeds.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy.exc

from worker import tasks
from worker.celery_app import create_celery_app
from worker.settings import load_settings

FAILURES = 6  # more than Celery's default max_retries (3)


def _flaky(answer: str) -> Any:
    calls = {"n": 0}

    def run(*_args: Any) -> str:
        calls["n"] += 1
        if calls["n"] <= FAILURES:
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("database or disk is full"))
        return answer

    run.calls = calls  # type: ignore[attr-defined]
    return run


@pytest.fixture(autouse=True)
def _app() -> None:
    app = create_celery_app(load_settings())
    app.loader.import_default_modules()
    app.set_current()


@pytest.mark.parametrize(
    ("task_name", "use_case", "answer"),
    [("smsq.drain", "_drain", "idle"), ("smsq.resolve", "_resolve", "found")],
)
def test_a_transient_outage_longer_than_celerys_default_retries_is_waited_out(
    monkeypatch: pytest.MonkeyPatch, task_name: str, use_case: str, answer: str
) -> None:
    flaky = _flaky(answer)
    monkeypatch.setattr(tasks, use_case, flaky)
    task = {"smsq.drain": tasks.drain_task, "smsq.resolve": tasks.resolve}[task_name]
    result = task.apply(args=("default",))
    assert result.get(propagate=True) == answer
    assert flaky.calls["n"] == FAILURES + 1
