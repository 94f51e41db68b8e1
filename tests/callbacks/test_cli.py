"""`smsq send --callback-url URL | --callback-task NAME@QUEUE [--callback-events all]`."""

from __future__ import annotations

import json

from models.db import make_engine, make_session_factory, transaction
from models.tables import Job
from tests.callbacks.conftest import callback_settings
from tests.cli.support import run_smsq
from tests.conftest import Sandbox, settings_env

NO_PROVIDER = Sandbox("http://127.0.0.1:9", None)


def test_send_stores_the_callback_and_refuses_a_bad_one(sqlite_url: str, clean_redis: object) -> None:
    env = settings_env(callback_settings(NO_PROVIDER, sqlite_url))
    base = ["send", "--to", "+4917612345678", "--text", "Hi", "--json"]
    sent = run_smsq(
        [*base, "--callback-task", "app.sms_outcome@app.outcomes", "--callback-events", "all"], env
    )
    assert sent.returncode == 0, sent.stderr
    refused = run_smsq([*base, "--callback-url", "http://app.example.com/hooks"], env)
    assert refused.returncode == 2 and "callback.url" in refused.stderr and "https" in refused.stderr
    engine = make_engine(sqlite_url)
    with transaction(make_session_factory(engine)) as session:
        job = session.get(Job, json.loads(sent.stdout)["id"])
        assert job is not None
        assert job.callback == {"task": "app.sms_outcome", "queue": "app.outcomes", "events": "all"}
    engine.dispose()
