"""Per-process wiring: settings, database sessions, Redis, limiters, provider clients and the clock.

Everything is built lazily on first use inside the process that uses it (a Celery pool process, the
CLI, a test), never at import and never in a parent before fork. Tests build a `Runtime` from explicit
settings and pass it where the code takes one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
import redis

from models.clock import Clock, make_clock
from models.db import SessionFactory, make_engine, make_session_factory
from worker.queues import Queue
from worker.settings import ConnectionSettings, Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine

    from worker.providers import ProviderClient
    from worker.rate_limit.limiter import RedisRateLimiter

log = logging.getLogger("smsq.runtime")


@dataclass(frozen=True)
class SendTask:
    """One `smsq.send` message to publish: only the job id travels, the queue follows its qos."""

    job_id: str
    express: bool = False
    countdown_s: float | None = None


class Runtime:
    """The process's resources, opened on first use and closed by `close()`."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock | None = None,
        celery: Celery | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._celery = celery
        self._transport = transport  # the provider clients' network (tests inject httpx.MockTransport)
        self._lock = threading.Lock()
        self._limiters: dict[str, RedisRateLimiter] = {}
        self._clients: dict[str, ProviderClient] = {}

    @cached_property
    def clock(self) -> Clock:
        return self._clock or make_clock(self.settings.clock_speed, self.settings.clock_epoch)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> SessionFactory:
        return make_session_factory(self.engine)

    @cached_property
    def redis(self) -> redis.Redis[Any]:
        return redis.Redis.from_url(self.settings.redis, socket_timeout=10, socket_connect_timeout=5)

    @cached_property
    def connections(self) -> dict[str, ConnectionSettings]:
        return self.settings.connections()

    @property
    def celery(self) -> Celery:
        if self._celery is None:
            # Imported here: only processes that publish pay for Celery's start-up.
            from worker.celery_app import create_celery_app

            self._celery = create_celery_app(self.settings)
        return self._celery

    def connection(self, name: str) -> ConnectionSettings:
        from worker.errors import ConfigurationError

        try:
            return self.connections[name]
        except KeyError:
            raise ConfigurationError(
                f"unknown connection {name!r}; configured: {', '.join(sorted(self.connections))}"
            ) from None

    def limiter(self, name: str) -> RedisRateLimiter:
        from worker.metrics.counters import LIMITER_WAITS
        from worker.rate_limit.limiter import RedisRateLimiter

        with self._lock:
            if name not in self._limiters:
                connection = self.connection(name)

                def on_wait(kind: str, wait_s: float) -> None:
                    LIMITER_WAITS.labels(connection=name, kind=kind).inc()

                self._limiters[name] = RedisRateLimiter(
                    self.redis,
                    name,
                    connection.rate_limit_calls,
                    connection.rate_limit_period_s,
                    poll_share=connection.poll_share,
                    on_wait=on_wait,
                )
            return self._limiters[name]

    def client(self, name: str) -> ProviderClient:
        from worker.providers import build_client
        from worker.rate_limit.transport import LimitedTransport

        limiter = self.limiter(name)
        with self._lock:
            if name not in self._clients:
                transport = LimitedTransport(self._transport or httpx.HTTPTransport(), limiter, name)
                self._clients[name] = build_client(self.connection(name), transport=transport)
            return self._clients[name]

    def publish(self, tasks: Iterable[SendTask]) -> int:
        """Publish send tasks over one broker connection, in one pipeline; returns how many were published.

        Raises the broker's error if it is down: callers keep the jobs in the database for the sweep.
        """
        batch: Sequence[SendTask] = list(tasks)
        if not batch:
            return 0
        app = self.celery
        send = app.signature("smsq.send")
        # kombu's publish batch sends every message in one Redis pipeline when the context exits.
        with app.producer_or_acquire() as producer, producer.batch(max_size=max(len(batch), 1)):
            for task in batch:
                options: dict[str, Any] = {
                    "queue": (Queue.EXPRESS if task.express else Queue.SEND).value,
                    "producer": producer,
                    "retry": True,
                    "retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
                }
                if task.countdown_s:
                    options["countdown"] = task.countdown_s
                send.apply_async(args=(task.job_id,), **options)
        return len(batch)

    def publish_named(self, name: str, args: tuple[Any, ...], *, countdown_s: float | None = None) -> None:
        options: dict[str, Any] = {}
        if countdown_s:
            options["countdown"] = countdown_s
        self.celery.signature(name).apply_async(args=args, **options)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self._limiters.clear()
        if "engine" in self.__dict__:
            self.engine.dispose()
        if "redis" in self.__dict__:
            self.redis.close()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process-wide runtime (built from the environment on first use)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime(get_settings())
        return _runtime


def set_runtime(runtime: Runtime | None) -> None:
    """Install a runtime (tests, the demo); `None` closes and forgets the current one."""
    global _runtime
    with _runtime_lock:
        if _runtime is not None and _runtime is not runtime:
            _runtime.close()
        _runtime = runtime


def reset_runtime() -> None:
    set_runtime(None)
