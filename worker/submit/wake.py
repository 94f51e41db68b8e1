"""Wake-ups: the broker carries at most one waiting drain message per connection and queue.

The unit of work under backlog is a connection, not a job. Enqueue, the release sweep and a drain that
hands back all call `wake(connection)`: a Lua script on Redis records that a drain of that connection is
due at a given time, and only when none due as early is already waiting does a `smsq.drain` message go
to the broker. A drain clears the record when it starts, so new work arriving meanwhile wakes another.
However large the backlog, the broker holds a handful of messages per connection.

A drain that finds more work than it can do alone invites helpers: `join()` admits at most
`drain_concurrency` drains per connection at once (leases in a Redis sorted set, so a killed worker's
lease expires on its own).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import redis

from worker.queues import Queue

#: Tolerance when comparing due times: a waiting drain due this much later still counts as "as early".
_SLACK_MS = 250

# KEYS[1] the wake record; ARGV[1] delay in ms; ARGV[2] record TTL beyond the due time in ms; ARGV[3] slack ms
# returns 1 when the caller must publish a drain message (the record now says it is due then), else 0
_WAKE_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = now_ms + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current <= due + tonumber(ARGV[3]) then
  return 0
end
redis.call('SET', KEYS[1], string.format('%d', due), 'PX', tonumber(ARGV[1]) + tonumber(ARGV[2]))
return 1
"""

# KEYS[1] the drainers' leases (ZSET member -> lease end, ms); ARGV[1] member; ARGV[2] lease ms; ARGV[3] cap
_JOIN_LUA = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
return 1
"""

Publish = Callable[[str, Queue, float | None], None]


def wake_key(connection: str, queue: Queue) -> str:
    return f"smsq:wake:{{{connection}}}:{queue.value}"


def drainers_key(connection: str) -> str:
    return f"smsq:drainers:{{{connection}}}"


class Waker:
    """Publishes `smsq.drain` for a connection unless one due as early is already waiting."""

    def __init__(self, client: redis.Redis[Any], publish: Publish, *, record_ttl_s: float = 60.0) -> None:
        """`record_ttl_s`: how long a wake record outlives its due time. If its message was lost, the
        next wake (the release sweep's at the latest) publishes again after that (`SMSQ_QUEUED_GRACE_S`)."""
        self._redis = client
        self._record_ttl_ms = max(int(record_ttl_s * 1000), 1000)
        self._publish = publish
        self._wake = client.register_script(_WAKE_LUA)
        self._join = client.register_script(_JOIN_LUA)

    def wake(self, connection: str, *, express: bool = False, delay_s: float = 0.0) -> bool:
        """Make sure a drain of `connection` runs within `delay_s`; True if a message was published."""
        queue = Queue.EXPRESS if express else Queue.SEND
        delay_ms = max(int(delay_s * 1000), 0)
        if not int(
            self._wake(keys=[wake_key(connection, queue)], args=[delay_ms, self._record_ttl_ms, _SLACK_MS])
        ):
            return False
        try:
            self._publish(connection, queue, delay_s or None)
        except Exception:
            # Not published: forget the record so the next wake (or the release sweep) tries again.
            self._redis.delete(wake_key(connection, queue))
            raise
        return True

    def started(self, connection: str, queue: Queue) -> None:
        """A drain of `connection` from `queue` started: the next wake may publish again."""
        self._redis.delete(wake_key(connection, queue))

    def join(self, connection: str, *, cap: int, lease_s: float) -> str | None:
        """A lease to drain `connection` if fewer than `cap` drains hold one; None when full."""
        member = secrets.token_hex(8)
        lease_ms = max(int(lease_s * 1000), 1000)
        if int(self._join(keys=[drainers_key(connection)], args=[member, lease_ms, cap])):
            return member
        return None

    def renew(self, connection: str, member: str, *, lease_s: float) -> None:
        """Extend a running drain's lease (a killed drain's lease then lapses within `lease_s`)."""
        seconds, micros = self._redis.time()
        until_ms = int(seconds) * 1000 + int(micros) // 1000 + max(int(lease_s * 1000), 1000)
        self._redis.zadd(drainers_key(connection), {member: until_ms}, xx=True)

    def leave(self, connection: str, member: str) -> None:
        self._redis.zrem(drainers_key(connection), member)
