"""Per-process wiring: settings, database sessions, Redis, limiters, provider clients and the clock.

Everything is built lazily on first use inside the process that uses it (a Celery pool process, the
CLI, a test), never at import and never in a parent before fork. Tests build a `Runtime` from explicit
settings and pass it where the code takes one.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

import httpx
import redis
from sqlmodel import col, select

from models.clock import Clock, SyncedTime, make_clock
from models.db import SessionFactory, database_time, make_engine, make_session_factory, transaction, utc
from models.tables import Submission
from worker.errors import ConfigurationError
from worker.queues import Queue
from worker.redis_client import redis_from_url
from worker.settings import ConnectionSettings, Settings, get_settings

if TYPE_CHECKING:
    from celery import Celery
    from sqlalchemy.engine import Engine

    from worker.providers import ProviderClient
    from worker.rate_limit.limiter import RedisRateLimiter
    from worker.submit.wake import Waker

log = logging.getLogger("smsq.runtime")


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
        """Message time, on the database's clock (sampled every `clock_resync_s`), never this host's own."""
        if self._clock is not None:
            return self._clock
        offset_s = self.settings.host_clock_offset_s

        def host() -> float:
            return time.time() + offset_s

        real = SyncedTime(
            lambda: database_time(self.engine), resync_s=self.settings.clock_resync_s, host=host
        )
        return make_clock(self.settings.clock_speed, self.settings.clock_epoch, real)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> SessionFactory:
        """Sessions on a database that is migrated to this smsq's schema (ConfigurationError otherwise)."""
        from models.migrate import schema_problem  # Alembic: only processes that open the database pay

        problem = schema_problem(self.settings.database_url)
        if problem is not None:
            raise ConfigurationError(f"SMSQ_DATABASE_URL: {problem}")
        return make_session_factory(self.engine)

    @cached_property
    def redis(self) -> redis.Redis[Any]:
        # redis:// as ever; sentinel:// follows the master through a failover (worker/redis_client.py).
        return redis_from_url(self.settings.redis, socket_timeout=10, socket_connect_timeout=5)

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
                    send_floor=connection.send_floor,
                    margin_s=self.settings.rate_limit_margin_s,
                    on_wait=on_wait,
                    recent_calls=lambda: self._recent_sends(name, connection.rate_limit_period_s),
                )
            return self._limiters[name]

    def _recent_sends(self, name: str, period_s: float) -> list[float]:
        """Ages (real seconds) of this connection's provider calls the database recorded in the last window:
        what the limiter puts back after Redis lost its state. Message time may run sped up; ages do not."""
        speed = self.settings.clock_speed
        window_s = period_s + self.settings.rate_limit_margin_s
        now = self.clock.now()
        since = now - timedelta(seconds=window_s * speed)
        with transaction(self.sessions) as session:
            started = session.exec(
                select(Submission.started_at).where(
                    Submission.connection == name, col(Submission.started_at) >= since
                )
            ).all()
        return [max((now - (utc(at) or now)).total_seconds() / speed, 0.0) for at in started]

    def client(self, name: str) -> ProviderClient:
        from worker.providers import build_client
        from worker.rate_limit.transport import LimitedTransport

        limiter = self.limiter(name)
        with self._lock:
            if name not in self._clients:
                transport = LimitedTransport(self._transport or httpx.HTTPTransport(), limiter, name)
                self._clients[name] = build_client(self.connection(name), transport=transport)
            return self._clients[name]

    @cached_property
    def waker(self) -> Waker:
        """Wakes a connection's drain through the broker (at most one waiting per connection and queue)."""
        from worker.submit.wake import Waker

        return Waker(self.redis, self._publish_drain, record_ttl_s=self.settings.queued_grace_s)

    def _publish_drain(self, connection: str, queue: Queue, countdown_s: float | None) -> None:
        options: dict[str, Any] = {
            "queue": queue.value,
            "retry": True,
            "retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        }
        countdown = self._countdown(countdown_s)
        if countdown:
            options["countdown"] = countdown
        self.celery.signature("smsq.drain").apply_async(args=(connection,), **options)

    def wake(self, connection: str, *, express: bool = False, delay_s: float = 0.0) -> bool:
        """Ask for a drain of `connection`; a broker or Redis failure is logged, the release sweep retries."""
        try:
            return self.waker.wake(connection, express=express, delay_s=delay_s)
        except Exception as exc:  # the jobs are safe in the database; the sweep wakes the connection later
            log.warning(
                "could not wake connection %s, the release sweep will: %s", connection, type(exc).__name__
            )
            return False

    def publish_named(self, name: str, args: tuple[Any, ...], *, countdown_s: float | None = None) -> None:
        options: dict[str, Any] = {}
        countdown = self._countdown(countdown_s)
        if countdown:
            options["countdown"] = countdown
        self.celery.signature(name).apply_async(args=args, **options)

    def _countdown(self, countdown_s: float | None) -> float | None:
        from worker.celery_app import broker_countdown

        return broker_countdown(str(self.celery.conf.broker_url or ""), countdown_s)

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
