"""Beat's heartbeat in Redis: when did beat last publish each sweep.

`RecordingScheduler` is Celery's own persistent scheduler (the `--schedule` file still works) that, after
publishing a beat entry, writes Redis's clock into the hash `smsq:beat:last_sweep` (entry -> UNIX
seconds). `smsq doctor`, the metrics service (`smsq_beat_last_sweep_timestamp_seconds`) and the
compose health check of the beat service read it, so a stopped beat is seen from anywhere. Redis's
clock, not the host's, is written and compared, so skewed hosts agree.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.beat import PersistentScheduler

log = logging.getLogger("smsq.beat")

#: The hash of beat entry name -> UNIX seconds (Redis time) of its last publication.
BEAT_KEY = "smsq:beat:last_sweep"
#: Entries older than this are forgotten with the key (beat rewrites it every few seconds).
BEAT_KEY_TTL_S = 7 * 24 * 3600


def redis_now_s(client: redis.Redis[Any]) -> float:
    seconds, micros = client.time()
    return float(seconds) + float(micros) / 1_000_000


def record_sweep(client: redis.Redis[Any], entry: str) -> None:
    """Note that beat published `entry` now (Redis's clock)."""
    client.hset(BEAT_KEY, entry, f"{redis_now_s(client):.3f}")
    client.expire(BEAT_KEY, BEAT_KEY_TTL_S)


def last_sweeps(client: redis.Redis[Any]) -> dict[str, float]:
    """Entry name -> UNIX seconds of beat's last publication of it (empty: beat never ran here)."""
    raw = client.hgetall(BEAT_KEY)
    return {
        (key.decode() if isinstance(key, bytes) else str(key)): float(value) for key, value in raw.items()
    }


def silent_after_s(intervals_s: list[float]) -> float:
    """How long beat may publish nothing before it counts as stopped: three of its shortest intervals,
    and never less than 30 s (a restart, a slow start)."""
    return max(3 * min(intervals_s, default=10.0), 30.0)


class RecordingScheduler(PersistentScheduler):  # type: ignore[misc]
    """Celery's persistent scheduler that also records each publication in Redis (see module doc)."""

    _smsq_redis: redis.Redis[Any] | None = None

    def apply_entry(self, entry: Any, producer: Any = None) -> None:
        super().apply_entry(entry, producer=producer)
        try:
            if self._smsq_redis is None:
                from worker.settings import get_settings

                self._smsq_redis = redis.Redis.from_url(
                    get_settings().redis, socket_connect_timeout=5, socket_timeout=5
                )
            record_sweep(self._smsq_redis, entry.name)
        except Exception as exc:  # the heartbeat must never stop beat itself
            log.warning("beat heartbeat not recorded: %s", type(exc).__name__)
