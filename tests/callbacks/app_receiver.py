"""The application side of the task form in the tests: its own Celery app, task name and queue, run as a
real worker process. Each event it receives is pushed to a Redis list."""

from __future__ import annotations

import json
import os
from typing import Any

import redis
from celery import Celery

BROKER = os.environ.get("APP_BROKER_URL", "redis://127.0.0.1:6379/6")
RECEIVED_KEY = "app:received"

app = Celery("app", broker=BROKER, set_as_current=False)
app.conf.update(task_serializer="json", accept_content=["json"], task_ignore_result=True)


@app.task(name="app.sms_outcome")  # type: ignore[untyped-decorator]
def sms_outcome(event: dict[str, Any]) -> None:
    client = redis.Redis.from_url(BROKER)
    client.rpush(RECEIVED_KEY, json.dumps(event))
    client.close()
