"""The fleet-wide provider rate limiter (`limiter`) and the httpx transport that takes its slots (`transport`)."""

from worker.rate_limit.limiter import CallKind, RedisRateLimiter, send_slots

__all__ = ["CallKind", "RedisRateLimiter", "send_slots"]
