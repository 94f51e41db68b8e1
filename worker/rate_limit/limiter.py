"""The fleet-wide provider rate limiter: one sliding-window log per provider connection, in Redis.

Every worker process of every host that talks to one provider connection shares one limiter, so the
connection's limit (DESIGN.md: 100 calls per 60 s by default) holds across the fleet. It is a
sliding-window *log*, not a token bucket: a bucket of capacity N refilled at N per period lets 2N-1
calls through in one period (a full bucket drained at once, then the refill), while the log
guarantees that no window of `period_s + margin_s` ever holds more than `limit_calls` granted calls.

The decision runs as one Lua script on Redis's own clock (`TIME`), so processes with skewed clocks
still agree, and check-then-take is atomic. Keys live under `smsq:limiter:{name}:` (the braces are a
Redis Cluster hash tag, keeping one limiter's keys in one slot) and expire on their own.

Two kinds of call share a budget, each with a floor the other cannot take: "send" calls may fill at
most `limit_calls - ceil(limit_calls * poll_share)` slots, so status polling keeps working while a
backlog of sends saturates the limiter; "poll" calls (polls, listings, lookups) may fill at most
`limit_calls - ceil(limit_calls * send_floor)`, so polls cannot starve sends, and while sends have a
backlog (`mark_send_demand`, set for one window by a full claim or a throttled drain) polls keep to their reserve
`ceil(limit_calls * poll_share)`: spare slots go to polls only when sends do not need them. A provider 429
`pause()`s the whole connection for its Retry-After.

The margin: the provider counts a call when it arrives, we count it when we grant it. If every arrival
follows its grant by at most D seconds, any provider window of `period_s` holds arrivals granted within
`period_s + D`; the log's window is `period_s + margin_s`, so `margin_s >= D` keeps the provider's
count within the budget. D is measured (the transport reports grant-to-wire seconds as a metric, and
bench/dispatch.py reports its maximum on a loaded host); `SMSQ_RATE_LIMIT_MARGIN_S` sets the margin.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import redis

__all__ = [
    "CallKind",
    "Grant",
    "RedisRateLimiter",
    "poll_slots",
    "send_slots",
]

CallKind = Literal["send", "poll"]

#: Key prefix of every limiter key.
KEY_PREFIX = "smsq:limiter"

#: Most entries a rebuilt window may hold: the Lua script that puts them back must stay short (Redis runs
#: one script at a time). A connection with a larger budget is held off for a window instead.
MAX_SEED = 5000

#: Extra lifetime of the log key beyond its window, so a slow script never sees it vanish mid-window.
_KEY_SLACK_MS = 1000

# KEYS[1]  the log: a ZSET of every granted call, score = Redis time in microseconds
# KEYS[2]  the pause: a string holding the Redis time (microseconds) until which all calls are refused
# KEYS[3]  this kind's own log (sends' or polls'): the same, for calls of this kind only (its share)
# KEYS[4]  a counter of every grant ever made (no expiry: grants versus provider calls, for operators)
# KEYS[5]  the send-demand flag: set while sends have a backlog; then polls keep to their reserve
# KEYS[6]  the state marker: missing means Redis lost the limiter's state (restart, flush) -> {2, 0}
# ARGV[1]  window length in microseconds (period + margin)
# ARGV[2]  how many calls of any kind the window may hold (the limit)
# ARGV[3]  how many calls of this kind the window may hold (send: limit - poll reserve; poll: limit -
#          send floor), or -1: no own cap
# ARGV[4]  1 to take a slot when one is free, 0 to only ask (peek)
# ARGV[5]  a random nonce making the ZSET member unique even for grants in the same microsecond
# ARGV[6]  expiry of the log keys in milliseconds
# ARGV[7]  the poll reserve: this kind's own cap while the send-demand flag is set (-1: not a poll)
# returns  {1, now_us} when a slot was taken (or is free, for a peek); {0, wait_us} (wait_us >= 1) when not
_ACQUIRE_LUA = """
if redis.call('EXISTS', KEYS[6]) == 0 then
  return {2, 0}
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', KEYS[2]))
if paused and paused > now_us then
  return {0, paused - now_us}
end
local window_us = tonumber(ARGV[1])
local function wait_for(key, allowed)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_us - window_us)
  local count = redis.call('ZCARD', key)
  if count < allowed then
    return 0
  end
  -- A slot frees when the (count - allowed + 1)-th oldest call leaves the window.
  local oldest = redis.call('ZRANGE', key, count - allowed, count - allowed, 'WITHSCORES')
  local wait_us = tonumber(oldest[2]) + window_us - now_us
  if wait_us < 1 then
    wait_us = 1
  end
  return wait_us
end
local wait_us = wait_for(KEYS[1], tonumber(ARGV[2]))
local own = tonumber(ARGV[3])
if tonumber(ARGV[7]) >= 0 and redis.call('EXISTS', KEYS[5]) == 1 then
  own = tonumber(ARGV[7])
end
if own >= 0 then
  wait_us = math.max(wait_us, wait_for(KEYS[3], own))
end
if wait_us > 0 then
  return {0, wait_us}
end
if ARGV[4] == '1' then
  redis.call('INCR', KEYS[4])
  local member = string.format('%d', now_us) .. ':' .. ARGV[5]
  redis.call('ZADD', KEYS[1], now_us, member)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  if own >= 0 then
    redis.call('ZADD', KEYS[3], now_us, member)
    redis.call('PEXPIRE', KEYS[3], ARGV[6])
  end
end
return {1, now_us}
"""

# Rebuilding a lost window. KEYS[1] the log, KEYS[2] the marker, KEYS[3] the send log; ARGV[1] log expiry
# (ms), ARGV[2] a nonce, ARGV[3..] ages (microseconds) of sends the provider may still count. Only the first
# caller seeds.
_SEED_LUA = """
if redis.call('SET', KEYS[2], '1', 'NX') == false then
  return 0
end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 3, #ARGV do
  local at = now_us - tonumber(ARGV[i])
  local member = string.format('%d', at) .. ':seed:' .. ARGV[2] .. ':' .. i
  redis.call('ZADD', KEYS[1], at, member)
  redis.call('ZADD', KEYS[3], at, member)
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return #ARGV - 2
"""

# KEYS[1]  the pause key
# ARGV[1]  pause length in microseconds
# returns  the pause end in Redis microseconds (an existing longer pause is kept)
_PAUSE_LUA = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_us = now_us + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]))
if current and current > until_us then
  until_us = current
end
local ttl_ms = math.ceil((until_us - now_us) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%d', until_us), 'PX', ttl_ms)
return until_us
"""

# KEYS[1]  the log
# ARGV[1]  window length in microseconds
# returns  the number of calls granted in the current window
_USAGE_LUA = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], '(' .. string.format('%d', now_us - tonumber(ARGV[1])), '+inf')
"""


def send_slots(limit_calls: int, poll_share: float) -> int:
    """Slots per window that "send" calls may use: the limit less ceil(limit * poll_share).

    Sends always keep at least one slot: with a limit of 1 nothing can be reserved without starving
    sends for good.
    """
    reserved = math.ceil(limit_calls * poll_share)
    return max(1, limit_calls - reserved)


def poll_slots(limit_calls: int, send_floor: float) -> int:
    """Slots per window that "poll" calls may use: the limit less ceil(limit * send_floor), at least one."""
    reserved = math.ceil(limit_calls * send_floor)
    return max(1, limit_calls - reserved)


class Grant(NamedTuple):
    """The outcome of one attempt: granted, or refused with `wait_s` > 0 until a slot may free."""

    granted: bool
    wait_s: float
    redis_time_us: int | None  # Redis time of the grant (None when refused)
    #: Seconds this attempt spent rebuilding a lost window before the round trip that decided it:
    #: not part of the delay between grant and wire (the grant came after it).
    recovery_s: float = 0.0


class RedisRateLimiter:
    """At most `limit_calls` calls in any window of `period_s + margin_s`, across every process.

    `margin_s` widens the window a little so network jitter between us and the provider cannot make
    the provider see more calls in its own window than we granted in ours.
    """

    def __init__(
        self,
        redis: redis.Redis[Any],
        name: str,
        limit_calls: int,
        period_s: float,
        *,
        poll_share: float = 0.1,
        send_floor: float = 0.5,
        margin_s: float = 0.25,
        on_wait: Callable[[str, float], None] | None = None,
        recent_calls: Callable[[], list[float]] | None = None,
    ) -> None:
        """`recent_calls`: ages in seconds of the calls the provider may still count, read from a record that
        outlives Redis (the database's submissions); used to rebuild the window after Redis lost it."""
        if limit_calls < 1:
            raise ValueError(f"limit_calls must be >= 1, got {limit_calls}")
        if period_s <= 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        if not 0 <= poll_share < 1:
            raise ValueError(f"poll_share must be in [0, 1), got {poll_share}")
        if not 0 <= send_floor < 1:
            raise ValueError(f"send_floor must be in [0, 1), got {send_floor}")
        if margin_s < 0:
            raise ValueError(f"margin_s must be >= 0, got {margin_s}")
        if not name:
            raise ValueError("name must not be empty")
        self.name = name
        self.limit_calls = limit_calls
        self.period_s = period_s
        self.margin_s = margin_s
        self.poll_share = poll_share
        self.send_floor = send_floor
        self.on_wait = on_wait
        self.recent_calls = recent_calls
        self._redis = redis
        self._slots: dict[CallKind, int] = {
            "send": send_slots(limit_calls, poll_share),
            "poll": poll_slots(limit_calls, send_floor),
        }
        self._window_us = round((period_s + margin_s) * 1_000_000)
        self._ttl_ms = math.ceil(self._window_us / 1000) + _KEY_SLACK_MS
        self.log_key = f"{KEY_PREFIX}:{{{name}}}:log"
        self.pause_key = f"{KEY_PREFIX}:{{{name}}}:paused_until"
        self.poll_log_key = f"{KEY_PREFIX}:{{{name}}}:poll_log"
        self.send_log_key = f"{KEY_PREFIX}:{{{name}}}:send_log"
        self.granted_key = f"{KEY_PREFIX}:{{{name}}}:granted_total"
        self.demand_key = f"{KEY_PREFIX}:{{{name}}}:send_demand"
        self.marker_key = f"{KEY_PREFIX}:{{{name}}}:state"
        self._seed_script = redis.register_script(_SEED_LUA)
        self._acquire_script = redis.register_script(_ACQUIRE_LUA)
        self._pause_script = redis.register_script(_PAUSE_LUA)
        self._usage_script = redis.register_script(_USAGE_LUA)

    def __repr__(self) -> str:
        return (
            f"RedisRateLimiter(name={self.name!r}, limit_calls={self.limit_calls}, period_s={self.period_s}, "
            f"send_slots={self._slots['send']})"
        )

    def slots(self, kind: CallKind) -> int:
        """How many calls of `kind` one window may hold."""
        return self._slots[kind]

    def attempt(self, kind: CallKind = "send") -> Grant:
        """Try to take one slot, reporting the Redis time of the grant (for tests and metrics)."""
        return self._run(kind, take=True)

    def try_acquire(self, kind: CallKind = "send") -> float:
        """Take a slot and return 0.0, or return the seconds (> 0) until one may free."""
        return self.attempt(kind).wait_s

    def peek(self, kind: CallKind = "send") -> float:
        """Seconds until a slot of `kind` may be free (0.0: free now), without taking one."""
        return self._run(kind, take=False).wait_s

    def _run(self, kind: CallKind, *, take: bool) -> Grant:
        if kind not in self._slots:
            raise ValueError(f"kind must be 'send' or 'poll', got {kind!r}")
        # Every call counts in the whole log (at most limit_calls) and in its own kind's log (its share).
        if kind == "send":
            own_log, own, reserve = self.send_log_key, self._slots["send"], -1
        else:
            own_log, own, reserve = (
                self.poll_log_key,
                self._slots["poll"],
                self.limit_calls - self._slots["send"],
            )
        keys = [self.log_key, self.pause_key, own_log, self.granted_key, self.demand_key, self.marker_key]
        args = [
            self._window_us,
            self.limit_calls,
            own,
            1 if take else 0,
            secrets.token_hex(8),
            self._ttl_ms,
            reserve,
        ]
        started_s = time.perf_counter()
        granted, value = self._acquire_script(keys=keys, args=args)
        if int(granted) == 2:
            self.recover()
            outcome = self._run(kind, take=take)
            return outcome._replace(recovery_s=outcome.recovery_s + time.perf_counter() - started_s)
        if int(granted) == 1:
            return Grant(True, 0.0, int(value))
        return Grant(False, max(int(value), 1) / 1_000_000, None)

    def pause(self, seconds: float) -> None:
        """Refuse every call on this connection for `seconds` (a provider 429's Retry-After).

        An already running longer pause is kept.
        """
        if seconds <= 0:
            return
        self._pause_script(keys=[self.pause_key], args=[math.ceil(seconds * 1_000_000)])

    def usage(self) -> int:
        """Calls granted in the current window."""
        return int(self._usage_script(keys=[self.log_key], args=[self._window_us]))

    def recover(self) -> int:
        """Redis lost this limiter's state (restarted empty, flushed): before granting anything, rebuild the
        window from `recent_calls` (the sends the database recorded) plus the polls' whole share, so the
        limiter grants no more than the provider can still accept. Without that record it holds every call off until a whole window has
        passed since Redis started (`INFO uptime_in_seconds`). Returns the number of calls put back."""
        recorded: list[float] | None = None
        if self.recent_calls is not None:
            try:
                recorded = self.recent_calls()
            except Exception:  # the record is unreadable (database down): hold off instead, the safe way
                recorded = None
        if recorded is not None and len(recorded) + self._slots["poll"] <= MAX_SEED:
            window_s = self._window_us / 1_000_000
            ages = [age for age in recorded if 0 <= age < window_s]
            # Polls are not recorded anywhere that outlives Redis: when the window saw sends (an active
            # connection), count polls as if they had used their whole share just now (the safe side; it
            # costs at most one window). A window without sends (idle, or a fresh install) adds none. Not
            # capped by the sends: older sends leave the window long before polls made just now would.
            if ages:
                ages += [0.0] * self._slots["poll"]
            args = [self._ttl_ms, secrets.token_hex(4), *(round(age * 1_000_000) for age in ages)]
            return int(self._seed_script(keys=[self.log_key, self.marker_key, self.send_log_key], args=args))
        # No usable record (none, unreadable, or too large to put back in one short script): hold every call
        # off until a whole window has passed since Redis started.
        uptime_s = float(self._redis.info("server").get("uptime_in_seconds", 0))
        hold_s = self._window_us / 1_000_000 - uptime_s
        if self._redis.set(self.marker_key, 1, nx=True) and hold_s > 0:
            self.pause(hold_s)
        return 0

    def mark_send_demand(self) -> None:
        """Sends have a backlog: for one window, polls keep to their reserve (`poll_share`) instead of
        taking up to `limit - send_floor`, so a saturated send path gets its whole share."""
        self._redis.set(self.demand_key, 1, px=max(int(self._window_us / 1000), 1))

    def granted_total(self) -> int:
        """Every slot this limiter ever granted (all processes); compare with the provider's call count."""
        return int(self._redis.get(self.granted_key) or 0)

    def reset(self) -> None:
        """Forget every granted call and any pause (for tests and operators)."""
        self._redis.delete(
            self.log_key,
            self.pause_key,
            self.poll_log_key,
            self.granted_key,
            self.demand_key,
            self.marker_key,
        )
