"""Fixtures of the callback tests: Redis db 6, a real receiving HTTP server on a loopback port, a migrated
database and smsq settings with a callback secret."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import redis

from models.clock import ManualClock
from tests.conftest import Sandbox, redis_db_for_session, smsq_settings
from worker.callbacks.signing import SIGNATURE_HEADER, SignatureError, verify
from worker.runtime import Runtime
from worker.settings import Settings

REDIS_DB = 6
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
SECRET = "whsec-test-0123456789"
START = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Received:
    event_id: str
    signature: str
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A real HTTP server recording every POST. `status` is what it answers; `hold` makes it wait."""

    url: str
    status: int = 200
    received: list[Received] = field(default_factory=list)
    hold: threading.Event | None = None  # requests wait until it is set (None: answer at once)
    delay_s: float = 0.0  # each request takes this long
    arrived: threading.Event = field(default_factory=threading.Event)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        return [item.event_id for item in self.received]

    def verified(self, secret: str = SECRET) -> list[dict[str, Any]]:
        """Every received payload, each checked with the documented verification (raises if one fails)."""
        out = []
        for item in self.received:
            verify(secret, item.signature, item.body)
            out.append(item.payload)
        return out


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.in_flight += 1
                receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
            receiver.arrived.set()
            try:
                if receiver.hold is not None:
                    receiver.hold.wait(30)
                time.sleep(receiver.delay_s)
                status = receiver.status
                if status < 300:
                    with receiver.lock:
                        receiver.received.append(
                            Received(self.headers["Smsq-Event-Id"], self.headers[SIGNATURE_HEADER], body)
                        )
                self.send_response(status)
                self.send_header("Content-Length", "13")
                self.end_headers()
                self.wfile.write(b"secret-answer")  # never read by smsq, never logged
            finally:
                with receiver.lock:
                    receiver.in_flight -= 1

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver_factory() -> Iterator[Callable[[], Receiver]]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> Receiver:
        receiver = Receiver(url="")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        server.daemon_threads = True
        host, port = server.server_address[:2]
        receiver.url = f"http://127.0.0.1:{port}/hooks/sms"
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver(receiver_factory: Callable[[], Receiver]) -> Receiver:
    return receiver_factory()


@pytest.fixture(scope="session")
def callbacks_redis() -> Iterator[str]:
    yield from redis_db_for_session(REDIS_URL)


@pytest.fixture
def clean_redis(callbacks_redis: str) -> Iterator[redis.Redis[Any]]:
    client: redis.Redis[Any] = redis.Redis.from_url(callbacks_redis)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def callback_settings(sandbox: Sandbox, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_url": REDIS_URL,
        "callback_secret": SECRET,
        "callback_timeout_s": 2.0,
        "callback_retry_period_s": 60.0,
        "callback_backoff_max_s": 8.0,
    }
    values.update(overrides)
    return smsq_settings(sandbox, database_url, **values)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def make_runtime(clean_redis: redis.Redis[Any], clock: ManualClock) -> Iterator[Callable[..., Runtime]]:
    """Runtimes on the ManualClock (closed at the end); the last one is the process runtime."""
    from worker.celery_app import create_celery_app
    from worker.runtime import set_runtime

    made: list[Runtime] = []

    def make(settings: Settings, *, manual: bool = True) -> Runtime:
        rt = Runtime(settings, clock=clock if manual else None, celery=create_celery_app(settings))
        made.append(rt)
        set_runtime(rt)
        return rt

    yield make
    set_runtime(None)
    for rt in made:
        rt.close()


def assert_signature_refused(secret: str, header: str, body: bytes, **kwargs: Any) -> None:
    with pytest.raises(SignatureError):
        verify(secret, header, body, **kwargs)
