"""What the broker and Flower can see of a job: ids only, never its text, numbers or credentials.

A job with a distinctive text and number is enqueued through the real producer (Redis db 13, the
sandbox with distinctive credentials) and sent by a real worker started with task events on (`-E`,
what Flower shows). Every value in the Redis database, base64 and JSON layers unpacked, and every
task event are searched for the text, the number (in any spelling) and the secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr

from models.db import transaction
from models.tables import Job
from tests.cli.support import cli_settings, env_for
from tests.conftest import ROOT, wait_until
from worker.celery_app import create_celery_app
from worker.producer import enqueue

TEXT = "Zebra canary 7731 quokka"
NUMBER = "+4917612349876"
NUMBER_SPELLINGS = (NUMBER, NUMBER[1:], "017612349876", "12349876")
USERNAME = "privacy-user"
PASSWORD = "pw-Canary-93817-secret"
API_KEY = "key-Canary-55120-secret"
SECRETS = (TEXT, *NUMBER_SPELLINGS, PASSWORD, API_KEY)


def unpack(value: Any) -> Iterator[str]:
    """Every string inside `value`, with JSON and base64 layers (kombu message bodies) opened."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        for key, item in value.items():
            yield from unpack(key)
            yield from unpack(item)
        return
    if isinstance(value, list | tuple | set):
        for item in value:
            yield from unpack(item)
        return
    if not isinstance(value, str):
        yield str(value)
        return
    yield value
    try:
        yield from unpack(json.loads(value))
    except (ValueError, TypeError):
        pass
    if len(value) >= 8:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return
        yield from unpack(decoded)


def redis_dump(client: Any) -> list[str]:
    texts: list[str] = []
    for key in client.scan_iter():
        kind = client.type(key).decode()
        if kind == "string":
            value: Any = client.get(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "set":
            value = client.smembers(key)
        elif kind == "zset":
            value = client.zrange(key, 0, -1)
        else:
            value = kind
        texts.extend(unpack(key))
        texts.extend(unpack(value))
    return texts


def leaks(texts: list[str]) -> list[str]:
    blob = "\n".join(texts)
    return [secret for secret in SECRETS if secret in blob]


class EventCapture:
    """Celery task events, as Flower receives them, captured from the broker in a thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.events: list[dict[str, Any]] = []
        self._receiver: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self.events.append})
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self, redis_client: Any) -> None:
        self._thread.start()
        wait_until(lambda: redis_client.exists("_kombu.binding.celeryev"), timeout_s=10, what="event queue")

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)


def test_the_broker_and_task_events_hold_ids_only(
    sandbox_factory, sqlite_url, redis_client, runtime_factory, spawn, tmp_path
):
    sandbox = sandbox_factory(credentials=((USERNAME, SecretStr(PASSWORD)),), api_keys=(SecretStr(API_KEY),))
    connections = tmp_path / "connections.yaml"
    connections.write_text(
        f"sendmode:\n  provider: sendmode\n  url: {sandbox.sendmode_url}\n  api_key: {API_KEY}\n"
    )
    settings = cli_settings(
        sandbox, sqlite_url, provider_username=USERNAME, provider_password=PASSWORD, provider_api_key=API_KEY,
        connections_file=str(connections),
    )  # fmt: skip
    rt = runtime_factory(settings)
    capture = EventCapture(create_celery_app(settings))
    capture.start(redis_client)
    try:
        # Given two jobs with the canary text and number, waiting in the broker
        request = {"messages": [{"text": TEXT, "recipients": [{"dst": NUMBER}]}]}
        jobs = [enqueue(request, runtime=rt).id, enqueue(request, connection="sendmode", runtime=rt).id]
        waiting = redis_dump(redis_client)
        # the dump does see the messages: one drain wake-up per connection, naming only the connection
        assert any("smsq.drain" in text and "sendmode" in text for text in waiting)

        # When a worker with task events on sends them
        worker = spawn([sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-E", "-c", "1",
                        "--loglevel=INFO", "--without-gossip", "--without-mingle"], env_for(settings), cwd=ROOT)  # fmt: skip

        def sent() -> bool:
            with transaction(rt.sessions) as session:
                return all(session.get(Job, job_id).state in ("submitted", "finished") for job_id in jobs)  # type: ignore[union-attr]

        spawn.wait_until(worker, sent)
        time.sleep(1.5)  # the task-succeeded events follow the database writes
        after = redis_dump(redis_client)
    finally:
        capture.stop()

    # Then both reached the provider, but neither the broker nor the events ever held text or number
    provider_jobs = sandbox.state.snapshot_jobs()
    assert sorted(job["api"] for job in provider_jobs) == ["rest", "sendmode"]
    assert NUMBER in json.dumps(provider_jobs)
    events = [json.dumps(event, default=str) for event in capture.events]
    task_events = [e for e in capture.events if e["type"].startswith("task-")]
    assert {e["type"] for e in task_events} >= {"task-received", "task-started", "task-succeeded"}
    assert any("sendmode" in e.get("args", "") for e in task_events)  # the events do carry the arguments
    assert leaks(waiting) == []
    assert leaks(after) == []
    assert leaks(events) == []
