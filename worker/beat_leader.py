"""A standby beat: two (or more) beats may run; one leads, the others stand by and take over when it dies.

`LeaderScheduler` is beat's scheduler (`beat_scheduler` in worker/celery_app.py). Before each tick it holds
or renews a lease in Redis (`smsq:beat:leader`: a token with a time to live, `SMSQ_BEAT_LEASE_S`); only the
beat that holds it publishes the schedule, and it ticks at least three times per lease so the lease never
lapses while it lives. A standby checks four times per lease; when the leader stops renewing (killed,
host gone, cut off from Redis) the key expires and the first standby to set it leads, at most one lease
plus a quarter after the leader's last renewal. A leader that cannot renew (Redis unreachable, the key
taken) stops publishing at once. A beat stopped cleanly hands the lease back, so a standby leads within a
quarter lease.

Leases on a wall of clocks are never perfect: a leader that stalls longer than its lease between renewing
and publishing may publish once more after a standby took over. That is harmless by design: every sweep
takes its own Redis lock per concern and connection and is idempotent (scheduler/tasks.py). The lease keeps
the normal case to one publisher, so the sweeps are not run twice for nothing.
"""

from __future__ import annotations

import logging
import secrets
import socket
from typing import Any

import redis

from worker.metrics.heartbeat import RecordingScheduler
from worker.redis_client import redis_from_url

log = logging.getLogger("smsq.beat")

#: The lease: holds the leading beat's token, expires unless renewed.
LEADER_KEY = "smsq:beat:leader"

# KEYS[1] the lease; ARGV[1] our token, ARGV[2] the lease in ms. 1: we lead (renewed or taken), 0: another does.
_HOLD_LUA = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS[1] the lease; ARGV[1] our token: give it back only if it is still ours.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class LeaderLease:
    """One beat's hold on the lease (usable on its own: tests, other singletons)."""

    def __init__(self, client: redis.Redis[Any], lease_s: float, *, key: str = LEADER_KEY) -> None:
        self.client = client
        self.lease_s = lease_s
        self.key = key
        self.token = f"{socket.gethostname()}:{secrets.token_hex(6)}"
        self.leading = False
        self._hold = client.register_script(_HOLD_LUA)
        self._release = client.register_script(_RELEASE_LUA)

    def hold(self) -> bool:
        """Take or renew the lease; False (and no longer leading) when another holds it or Redis fails."""
        try:
            leading = bool(self._hold(keys=[self.key], args=[self.token, int(self.lease_s * 1000)]))
        except redis.RedisError as exc:
            if self.leading:
                log.warning("beat: lease not renewed (%s): standing by", type(exc).__name__)
            leading = False
        if leading and not self.leading:
            log.warning("beat: leading (lease %s, token %s)", self.key, self.token)
        elif self.leading and not leading:
            log.warning("beat: lost the lease, standing by (token %s)", self.token)
        self.leading = leading
        return leading

    def release(self) -> None:
        if not self.leading:
            return
        self.leading = False
        try:
            self._release(keys=[self.key], args=[self.token])
            log.warning("beat: lease handed back (token %s)", self.token)
        except redis.RedisError as exc:  # it expires on its own
            log.warning("beat: lease not handed back (%s)", type(exc).__name__)

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value


class LeaderScheduler(RecordingScheduler):
    """Celery's persistent scheduler (with the Redis heartbeat) that publishes only while it leads."""

    _lease: LeaderLease | None = None

    def _leader(self) -> LeaderLease:
        if self._lease is None:
            from worker.settings import get_settings

            settings = get_settings()
            client = redis_from_url(settings.redis, socket_connect_timeout=5, socket_timeout=5)
            self._smsq_redis = client  # the heartbeat writes through the same (sentinel-aware) client
            self._lease = LeaderLease(client, settings.beat_lease_s)
            log.warning("beat: standing by until it holds the lease (token %s)", self._lease.token)
        return self._lease

    def tick(self, *args: Any, **kwargs: Any) -> float:
        lease = self._leader()
        if not lease.hold():
            return lease.lease_s / 4
        interval = float(super().tick(*args, **kwargs))
        return min(interval, lease.lease_s / 3)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._lease is not None:
                self._lease.release()
