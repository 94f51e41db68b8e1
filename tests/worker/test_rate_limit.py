"""Tests of worker.rate_limit.limiter.RedisRateLimiter against a real Redis (db base+11, flushed before and after)."""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import redis

from tests import redis_dbs
from worker.errors import RateLimitExceeded
from worker.rate_limit.limiter import CallKind, Grant, RedisRateLimiter, send_slots
from worker.rate_limit.transport import MAX_WAIT_S, LimitedTransport, call_kind

REDIS_URL = redis_dbs.url_for(redis_dbs.RATE_LIMIT)

if TYPE_CHECKING:
    Redis = redis.Redis[Any]
else:
    Redis = redis.Redis


@pytest.fixture
def r() -> Iterator[Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Redis on {redis_dbs.server()}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def hammer(name: str, limit: int, period_s: float, run_for_s: float, seed: int) -> list[int]:
    """Take slots of random kinds as fast as the limiter allows; return the Redis times of the grants."""
    rng = random.Random(seed)
    client = redis.Redis.from_url(REDIS_URL)
    limiter = RedisRateLimiter(client, name, limit, period_s)
    granted_us: list[int] = []
    until = time.monotonic() + run_for_s
    while (left := until - time.monotonic()) > 0:
        kind: CallKind = rng.choice(["send", "send", "poll"])
        grant = limiter.attempt(kind)
        if grant.granted:
            assert grant.redis_time_us is not None
            granted_us.append(grant.redis_time_us)
        else:
            # Wake a little early or late at random, so contenders race for each freed slot.
            time.sleep(min(grant.wait_s * rng.uniform(0.5, 1.1), left))
    client.close()
    return granted_us


def max_in_any_window(times_us: list[int], window_us: int) -> int:
    """The largest number of times in any half-open window [t, t + window_us) starting at a time."""
    times = sorted(times_us)
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + window_us:
            j += 1
        best = max(best, j - i)
    return best


def test_send_slots_reserve_a_share_for_polls() -> None:
    assert send_slots(100, 0.2) == 80
    assert send_slots(10, 0.25) == 7  # ceil(2.5) = 3 reserved
    assert send_slots(10, 0.0) == 10
    assert send_slots(2, 0.9) == 1  # sends always keep one slot
    assert send_slots(1, 0.2) == 1


def test_invalid_configuration_is_refused(r: Redis) -> None:
    with pytest.raises(ValueError, match="limit_calls"):
        RedisRateLimiter(r, "x", 0, 1.0)
    with pytest.raises(ValueError, match="period_s"):
        RedisRateLimiter(r, "x", 1, 0)
    with pytest.raises(ValueError, match="poll_share"):
        RedisRateLimiter(r, "x", 10, 1.0, poll_share=1.0)
    with pytest.raises(ValueError, match="kind"):
        RedisRateLimiter(r, "x", 10, 1.0).try_acquire("status")  # type: ignore[arg-type]


def test_no_window_ever_holds_more_than_the_limit_across_threads_and_processes(r: Redis) -> None:
    # Given 4 processes and 3 threads sharing one limiter of 20 calls per second for about 3 s
    limit, period_s, run_for_s = 20, 1.0, 3.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pending = [
            pool.apply_async(hammer, ("fleet", limit, period_s, run_for_s + 1.0, seed)) for seed in range(4)
        ]
        thread_results: list[list[int]] = [[] for _ in range(3)]

        def run(index: int) -> None:
            thread_results[index] = hammer("fleet", limit, period_s, run_for_s, 100 + index)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        process_results = [p.get(timeout=30) for p in pending]

    grants = [t for result in thread_results + process_results for t in result]
    # Then no window of period_s holds more than the limit (nor one of period + margin, the real window)
    assert max_in_any_window(grants, int(period_s * 1_000_000)) <= limit
    assert max_in_any_window(grants, int((period_s + 0.05) * 1_000_000)) <= limit
    # And the limiter was really saturated and shared: full windows, grants in processes and threads
    assert max_in_any_window(grants, int(period_s * 1_000_000)) == limit
    assert len(grants) >= 3 * limit
    assert any(process_results) and any(thread_results)  # shared by processes and threads alike
    # And every grant still inside the log's window has its own entry (members unique across processes)
    log = r.zrange("smsq:limiter:{fleet}:log", 0, -1, withscores=True)
    assert log
    oldest_us = min(score for _, score in log)
    assert sum(t >= oldest_us for t in grants) == len(log)


def test_a_full_burst_is_not_followed_by_a_refill_within_the_period(r: Redis) -> None:
    # A token bucket of capacity N refilled at N per period lets 2N - 1 calls through in one period.
    limit, period_s = 10, 0.5
    limiter = RedisRateLimiter(r, "burst", limit, period_s, poll_share=0.0, margin_s=0.05)
    burst = [limiter.attempt() for _ in range(limit)]
    assert all(g.granted for g in burst)
    first_us = min(g.redis_time_us or 0 for g in burst)

    refused = limiter.attempt()
    assert not refused.granted and 0 < refused.wait_s <= period_s + 0.05

    later: list[int] = []
    until = time.monotonic() + 1.2
    while time.monotonic() < until:
        grant = limiter.attempt()
        if grant.granted:
            assert grant.redis_time_us is not None
            later.append(grant.redis_time_us)
        else:
            time.sleep(min(grant.wait_s, 0.02))
    assert later, "slots must free once the window has passed"
    assert min(later) - first_us >= (period_s + 0.05) * 1_000_000
    all_grants = [g.redis_time_us or 0 for g in burst] + later
    assert max_in_any_window(all_grants, int(period_s * 1_000_000)) == limit


def test_sends_saturate_below_the_limit_while_polls_still_get_slots(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "share", 10, 5.0, poll_share=0.2, send_floor=0.0)
    assert [limiter.try_acquire("send") for _ in range(8)] == [0.0] * 8
    send_wait = limiter.try_acquire("send")
    assert send_wait > 0
    assert limiter.try_acquire("poll") == 0.0
    assert limiter.try_acquire("poll") == 0.0
    assert limiter.try_acquire("poll") > 0
    assert limiter.try_acquire("send") > 0
    assert limiter.usage() == 10


def test_polls_count_against_the_budget_of_sends(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "polls-first", 10, 5.0, poll_share=0.2, send_floor=0.0)
    for _ in range(5):
        assert limiter.try_acquire("poll") == 0.0
    granted_sends = sum(limiter.try_acquire("send") == 0.0 for _ in range(10))
    assert granted_sends == 5  # one budget: 5 polls leave 5 of the 10 slots (sends alone could have 8)


def test_limiters_with_one_name_share_a_budget_and_other_names_do_not(r: Redis) -> None:
    a = RedisRateLimiter(r, "acct-1", 3, 5.0, poll_share=0)
    b = RedisRateLimiter(redis.Redis.from_url(REDIS_URL), "acct-1", 3, 5.0, poll_share=0)
    other = RedisRateLimiter(r, "acct-2", 3, 5.0, poll_share=0)
    assert [a.try_acquire(), b.try_acquire(), a.try_acquire()] == [0.0, 0.0, 0.0]
    assert b.try_acquire() > 0
    assert other.try_acquire() == 0.0


def test_pause_refuses_every_kind_until_it_ends(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "paused", 100, 60.0)
    limiter.pause(0.3)
    send_wait, poll_wait = limiter.try_acquire("send"), limiter.try_acquire("poll")
    assert 0.2 < send_wait <= 0.3 and 0.2 < poll_wait <= 0.3
    limiter.pause(0.05)  # a shorter pause does not cut a longer one short
    assert limiter.try_acquire("poll") > 0.1
    assert limiter.usage() == 0
    time.sleep(limiter.try_acquire("send") + 0.01)
    assert limiter.try_acquire("send") == 0.0
    assert r.exists(limiter.pause_key) == 0  # the pause key expired by itself


def _transport(limiter: RedisRateLimiter, naps: list[float] | None = None, **kw: Any) -> LimitedTransport:
    """The production wait loop: the transport every provider request goes through."""
    inner = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    sleep = naps.append if naps is not None else time.sleep
    return LimitedTransport(inner, limiter, "test", sleep=sleep, **kw)


def _get(transport: LimitedTransport, kind: CallKind = "send") -> httpx.Response:
    with call_kind(kind):
        return transport.handle_request(httpx.Request("GET", "https://provider.test/x"))


def test_a_request_never_waits_longer_than_the_max_wait_in_total(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "patience", 1, 0.3, margin_s=0.0, poll_share=0.0)
    assert limiter.try_acquire() == 0.0
    naps: list[float] = []
    # A fake sleep does not let time pass, so the limiter keeps refusing.
    with pytest.raises(RateLimitExceeded):
        _get(_transport(limiter, naps))
    assert naps and all(nap > 0 for nap in naps)
    assert sum(naps) <= MAX_WAIT_S


def test_a_request_gives_up_at_once_when_no_slot_frees_in_time(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "hopeless", 1, 10.0, poll_share=0.0)
    assert limiter.try_acquire() == 0.0
    naps: list[float] = []
    with pytest.raises(RateLimitExceeded) as info:
        _get(_transport(limiter, naps))
    assert naps == [] and info.value.wait_s > 9


def test_a_request_sleeps_until_a_slot_frees_and_reports_the_wait(r: Redis) -> None:
    waits: list[tuple[str, float]] = []
    limiter = RedisRateLimiter(r, "waiter", 2, 0.3, poll_share=0.5, on_wait=lambda k, s: waits.append((k, s)))
    assert limiter.try_acquire("send") == 0.0
    started = time.monotonic()
    assert _get(_transport(limiter)).status_code == 200
    elapsed = time.monotonic() - started
    assert 0.25 < elapsed < 0.9
    assert waits and waits[0][0] == "send" and sum(s for _, s in waits) <= 1.0
    assert limiter.usage() == 1  # the first call has left the window; the one just made is in it


def test_the_wait_loop_does_not_busy_loop_on_tiny_waits(r: Redis) -> None:
    class AlwaysAlmostFree(RedisRateLimiter):
        def attempt(self, kind: CallKind = "send") -> Grant:
            return Grant(False, 1e-7, None)

    limiter = AlwaysAlmostFree(r, "tiny", 1, 1.0)
    naps: list[float] = []
    with pytest.raises(RateLimitExceeded):
        _get(_transport(limiter, naps))
    assert all(nap >= 0.001 for nap in naps) and sum(naps) <= MAX_WAIT_S + 1e-9
    assert len(naps) <= 1001


def test_a_grant_that_went_stale_before_the_request_is_not_used(r: Redis) -> None:
    # The thread is descheduled between asking and getting the grant for longer than half the margin:
    # that grant may no longer be inside the provider's window as we counted it, so another is taken.
    limiter = RedisRateLimiter(r, "stale", 10, 60.0, margin_s=0.2, poll_share=0.0)
    ticks = iter([0.0, 0.5, 1.0, 1.01])  # first grant took 0.5 s (stale), the second 0.01 s
    _get(_transport(limiter, monotonic=lambda: next(ticks)))
    assert limiter.usage() == 2


def test_rebuilding_a_lost_window_does_not_make_the_grant_after_it_stale(r: Redis) -> None:
    # The first call after Redis restarted rebuilds the window (database read, Redis writes) before it is
    # granted; on a loaded host that took longer than half the margin, and the grant was thrown away as
    # stale although it came after the rebuild: one slot of the window wasted per process (CI failure).
    class SlowToRebuild(RedisRateLimiter):
        def recover(self) -> int:
            time.sleep(0.3)
            return super().recover()

    limiter = SlowToRebuild(r, "rebuilt", 10, 60.0, margin_s=0.2, poll_share=0.0, recent_calls=list)
    r.delete(limiter.marker_key)
    _get(_transport(limiter))
    assert limiter.usage() == 1


def test_polls_cannot_starve_sends_below_their_floor(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "floor", 10, 5.0, poll_share=0.2, send_floor=0.5)
    assert limiter.slots("send") == 8 and limiter.slots("poll") == 5
    assert [limiter.try_acquire("poll") for _ in range(5)] == [0.0] * 5
    assert limiter.try_acquire("poll") > 0  # polls have used their share
    assert [limiter.try_acquire("send") for _ in range(3)] == [0.0] * 3  # sends still get theirs
    assert limiter.usage() == 8


def test_peek_says_when_a_slot_frees_without_taking_one(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "peek", 2, 5.0, poll_share=0.0)
    assert limiter.peek("send") == 0.0 and limiter.usage() == 0
    limiter.try_acquire("send")
    limiter.try_acquire("send")
    assert 4.5 < limiter.peek("send") <= 5.25
    assert limiter.usage() == 2


def test_members_are_unique_under_concurrency(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "unique", 10_000, 30.0)
    counts = [0] * 8

    def fire(index: int) -> None:
        own = RedisRateLimiter(redis.Redis.from_url(REDIS_URL), "unique", 10_000, 30.0)
        counts[index] = sum(own.try_acquire(random.choice(["send", "poll"])) == 0.0 for _ in range(100))

    threads = [threading.Thread(target=fire, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 800
    assert r.zcard(limiter.log_key) == 800 == limiter.usage()


def test_keys_expire_and_reset_removes_them(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "tidy", 5, 2.0)
    limiter.try_acquire()
    limiter.pause(1.0)
    assert limiter.log_key == "smsq:limiter:{tidy}:log"
    assert 0 < r.pttl(limiter.log_key) <= 2250 + 1000
    assert 0 < r.pttl(limiter.pause_key) <= 1001
    limiter.reset()
    assert r.exists(limiter.log_key, limiter.pause_key) == 0
    assert limiter.usage() == 0 and limiter.try_acquire() == 0.0


def test_while_sends_have_a_backlog_polls_keep_to_their_reserve(r: Redis) -> None:
    limiter = RedisRateLimiter(r, "demand", 10, 5.0, poll_share=0.2, send_floor=0.5)
    # Without a send backlog polls may use up to limit - send floor (5)
    assert [limiter.try_acquire("poll") for _ in range(3)] == [0.0] * 3
    limiter.reset()
    # With one, they keep to their reserve (2), and the rest of the send share stays free for sends
    limiter.mark_send_demand()
    assert [limiter.try_acquire("poll") == 0.0 for _ in range(3)] == [True, True, False]
    assert [limiter.try_acquire("send") for _ in range(8)] == [0.0] * 8
    assert limiter.usage() == 10


def test_a_lost_window_is_rebuilt_from_the_recorded_calls_before_anything_is_granted(r: Redis) -> None:
    # Given a saturated window the provider still counts, then Redis restarted empty (its keys are gone)
    recorded: list[float] = []  # the database's submissions of the last window (none on a fresh install)
    limiter = RedisRateLimiter(r, "lost", 10, 5.0, poll_share=0.2, recent_calls=lambda: recorded)
    assert [limiter.try_acquire("send") for _ in range(8)] == [0.0] * 8
    r.flushdb()
    recorded.extend([0.5] * 7)  # 7 of those 8 calls were recorded as submissions, 0.5 s ago
    # When a worker asks again, the limiter first puts the recorded calls back into its window
    grants = [limiter.try_acquire("send") == 0.0 for _ in range(3)]
    # Then it grants only what the provider can still accept: the 7 recorded sends and the polls' whole
    # share (5: polls are recorded nowhere) are counted, so nothing is granted in this window
    assert grants == [False, False, False]
    assert limiter.usage() == 12


def test_polls_of_a_lost_window_stay_counted_when_older_sends_leave_it(r: Redis) -> None:
    # Given a full window (10 recorded sends: 9 about to leave it, 1 just made) when Redis lost it
    recorded = [0.95] * 9 + [0.0]
    limiter = RedisRateLimiter(
        r, "aging", 10, 1.0, margin_s=0.0, poll_share=0.2, recent_calls=lambda: recorded
    )
    r.delete(limiter.marker_key)
    assert limiter.try_acquire("send") > 0  # rebuilt: full
    time.sleep(0.2)  # the 9 older sends have left the window
    granted = sum(limiter.try_acquire("send") == 0.0 for _ in range(10))
    # Polls made just before the restart (up to their share, 5) may still be in the provider's window with
    # the last send: at most 10 - 1 - 5 may go now (bench.chaos's burst overshot by the polls it forgot)
    assert granted <= 4


def test_without_a_record_a_lost_window_holds_calls_off_until_redis_has_been_up_a_window(r: Redis) -> None:
    # A window 600 s longer than this Redis has been up: as if it had restarted 600 s before a window ends
    uptime_s = float(r.info("server")["uptime_in_seconds"])
    limiter = RedisRateLimiter(r, "held", 10, uptime_s + 600.0, margin_s=0.25)
    r.delete(limiter.marker_key)
    wait_s = limiter.try_acquire("send")
    assert 595 < wait_s <= 601.5  # held off until Redis has been up a whole window
    assert limiter.usage() == 0


def test_a_budget_too_large_to_rebuild_quickly_is_held_off_instead(r: Redis) -> None:
    # Putting 500,000 entries back would block Redis for seconds: the limiter holds off instead.
    uptime_s = float(r.info("server")["uptime_in_seconds"])
    limiter = RedisRateLimiter(r, "huge", 1_000_000, uptime_s + 60.0, recent_calls=lambda: [0.5] * 10)
    r.delete(limiter.marker_key)
    started = time.monotonic()
    assert limiter.try_acquire("send") > 55
    assert time.monotonic() - started < 1.0 and limiter.usage() == 0
