"""The broker the tests run against: Redis (default) or RabbitMQ (`SMSQ_TEST_BROKER=amqp`).

With RabbitMQ the broker's queues live there and Redis keeps only the limiter, locks and wake-up records, so
the tests' Redis client (`redis_client`) is wrapped: `llen(<smsq queue>)` reads the RabbitMQ queue's depth
and `flushdb()` empties the smsq queues too ("the broker lost its messages" means the same on both).
`SMSQ_TEST_AMQP_URL` names the RabbitMQ server (default guest@127.0.0.1:5672, vhost /).
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import redis
from kombu import Connection  # type: ignore[attr-defined]

from worker.queues import Queue

VARIABLE = "SMSQ_TEST_BROKER"
AMQP_VARIABLE = "SMSQ_TEST_AMQP_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
#: Queues Celery's native delayed delivery declares (countdowns on quorum queues): emptied with the rest.
DELAYED_QUEUES = tuple(f"celery_delayed_{level}" for level in range(28))


def kind() -> str:
    """ "redis" or "amqp"."""
    value = (os.environ.get(VARIABLE) or "redis").lower()
    if value not in ("redis", "amqp"):
        raise ValueError(f"{VARIABLE}: expected redis or amqp, not {value!r}")
    return value


def amqp_url() -> str:
    return os.environ.get(AMQP_VARIABLE) or DEFAULT_AMQP_URL


def queue_depth(name: str, url: str | None = None) -> int:
    """Messages ready in the RabbitMQ queue `name` (0 when it does not exist yet)."""
    with Connection(url or amqp_url()) as conn:
        try:
            _, count, _ = conn.default_channel.queue_declare(name, passive=True)
        except conn.channel_errors:
            return 0
        return int(count)


def purge(url: str | None = None) -> None:
    """Empty smsq's queues (and the delayed-delivery queues) on RabbitMQ; missing queues are skipped."""
    with Connection(url or amqp_url()) as conn:
        for name in (*(queue.value for queue in Queue), *DELAYED_QUEUES):
            channel = conn.channel()
            with contextlib.suppress(*conn.channel_errors):
                channel.queue_purge(name)
            with contextlib.suppress(Exception):
                channel.close()


class BrokerRedis(redis.Redis):  # type: ignore[type-arg]
    """The tests' Redis client when RabbitMQ is the broker (see module doc)."""

    _queues = frozenset(queue.value for queue in Queue)

    def llen(self, name: Any) -> Any:
        if (name.decode() if isinstance(name, bytes) else str(name)) in self._queues:
            return queue_depth(str(name))
        return super().llen(name)

    def flushdb(self, *args: Any, **kwargs: Any) -> Any:
        purge()
        return super().flushdb(*args, **kwargs)


def redis_client_for(url: str) -> redis.Redis[Any]:
    """The tests' Redis client: plain with the Redis broker, `BrokerRedis` with RabbitMQ."""
    if kind() == "amqp":
        client: redis.Redis[Any] = BrokerRedis.from_url(url)
        return client
    return redis.Redis.from_url(url)


def overrides(redis_url: str) -> dict[str, Any]:
    """Settings for `smsq_settings`: the broker, and Redis for the limiter and locks."""
    if kind() == "amqp":
        return {"broker_url": amqp_url(), "redis_url": redis_url}
    return {"broker_url": redis_url}
