"""Health checks for containers: `python -m worker.metrics.health worker|beat|metrics|redis`.

Exit 0 when healthy, 1 with one line on stderr when not. docker-compose.yml and the Dockerfile's
HEALTHCHECK run these; each is cheap and reads only the SMSQ_ environment.

- `worker [NODE]`: this host's Celery worker (`celery@<hostname>`, or NODE) answers a ping within 5 s.
- `beat`: beat published a sweep recently (its heartbeat in Redis, `worker.metrics.heartbeat`).
- `metrics [PORT]`: the local /metrics endpoint answers 200 (PORT: SMSQ_METRICS_PORT, else 9464).
- `redis`: the Redis of the limiter and locks answers PING (the image's default check).
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from typing import Any

import redis

from worker.metrics.heartbeat import last_sweeps, redis_now_s, silent_after_s
from worker.settings import Settings, get_settings

PING_TIMEOUT_S = 5.0


def _redis(settings: Settings) -> redis.Redis[Any]:
    return redis.Redis.from_url(settings.redis, socket_connect_timeout=5, socket_timeout=5)


def beat_intervals(settings: Settings) -> list[float]:
    return [settings.release_interval_s, settings.poll_interval_s, settings.reconcile_interval_s]


def check_beat(settings: Settings) -> str | None:
    """None when beat published a sweep within its silence allowance, else what is wrong."""
    client = _redis(settings)
    sweeps = last_sweeps(client)
    if not sweeps:
        return "beat has never published a sweep on this Redis"
    age_s = redis_now_s(client) - max(sweeps.values())
    allowed_s = silent_after_s(beat_intervals(settings))
    if age_s > allowed_s:
        return f"beat published its last sweep {age_s:.0f} s ago (allowed: {allowed_s:.0f} s)"
    return None


def check_worker(
    settings: Settings, node: str | None = None, *, timeout_s: float = PING_TIMEOUT_S
) -> str | None:
    """None when the worker `node` (default: `celery@<this host>`, Celery's default name) answers a ping."""
    from worker.celery_app import create_celery_app

    node = node or f"celery@{socket.gethostname()}"
    app = create_celery_app(settings)
    try:
        replies = app.control.ping(destination=[node], timeout=timeout_s)
    finally:
        app.close()
    if not any(node in reply for reply in replies or []):
        return f"{node} did not answer a ping within {timeout_s:g} s"
    return None


def check_metrics(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            status = int(answer.status)
    except OSError as exc:
        return f"/metrics on port {port}: {type(exc).__name__}: {exc}"
    return None if status == 200 else f"/metrics on port {port} answered {status}"


def check_redis(settings: Settings) -> str | None:
    try:
        _redis(settings).ping()
    except redis.RedisError as exc:
        return f"Redis: {type(exc).__name__}"
    return None


def main(argv: list[str]) -> int:
    what = argv[0] if argv else "redis"
    settings = get_settings()
    if what == "worker":
        problem = check_worker(settings, argv[1] if len(argv) > 1 else None)
    elif what == "beat":
        problem = check_beat(settings)
    elif what == "metrics":
        port = int(argv[1]) if len(argv) > 1 else (settings.metrics_port or 9464)
        problem = check_metrics(port)
    elif what == "redis":
        problem = check_redis(settings)
    else:
        sys.stderr.write("usage: python -m worker.metrics.health worker [NODE]|beat|metrics [PORT]|redis\n")
        return 2
    if problem is not None:
        sys.stderr.write(f"unhealthy: {problem}\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
