"""Thin beat tasks. Each takes no arguments, runs its sweep under a Redis lock, and logs counts only.

The lock is redis-py's `Lock` (a token with an expiry, released only by its holder): a second beat or a
slow sweep finds it held and skips the round instead of running the same sweep twice at once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import redis
from celery import shared_task

from scheduler.poll import poll_connection
from scheduler.retention import retention_sweep
from scheduler.sweeps import reconcile, release
from worker.runtime import get_runtime

log = logging.getLogger("smsq.scheduler")


@contextlib.contextmanager
def sweep_lock(client: redis.Redis[Any], name: str, ttl_s: float) -> Iterator[bool]:
    """Yields True when this process holds the lock `name` (released on exit), False when another does."""
    lock = client.lock(f"smsq:lock:{name}", timeout=max(ttl_s, 1.0), blocking=False)
    held = lock.acquire()
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(redis.exceptions.LockError):  # expired meanwhile: nothing to release
                lock.release()


@shared_task(name="smsq.release", ignore_result=True)
def release_task() -> dict[str, Any]:
    rt = get_runtime()
    with sweep_lock(rt.redis, "release", rt.settings.release_interval_s * 4) as held:
        if not held:
            return {"skipped": True}
        report = release(rt)
    return report.__dict__


@shared_task(name="smsq.reconcile", ignore_result=True)
def reconcile_task() -> dict[str, Any]:
    rt = get_runtime()
    with sweep_lock(rt.redis, "reconcile", max(rt.settings.reconcile_interval_s * 4, 60)) as held:
        if not held:
            return {"skipped": True}
        report = reconcile(rt)
    return report.__dict__


@shared_task(name="smsq.poll", ignore_result=True)
def poll_task() -> dict[str, Any]:
    rt = get_runtime()
    results: dict[str, Any] = {}
    for name in rt.connections:
        with sweep_lock(rt.redis, f"poll:{name}", max(rt.settings.poll_interval_s * 4, 30)) as held:
            if held:
                results[name] = poll_connection(rt, name).__dict__
    return results


@shared_task(name="smsq.retention", ignore_result=True)
def retention_task() -> dict[str, Any]:
    """Delete final jobs past `SMSQ_RETENTION_DAYS` in bounded batches (scheduler/retention.py)."""
    rt = get_runtime()
    if rt.settings.retention_days <= 0:
        return {"disabled": True}
    with sweep_lock(rt.redis, "retention", max(rt.settings.retention_interval_s * 4, 600)) as held:
        if not held:
            return {"skipped": True}
        report = retention_sweep(rt)
    return report.as_dict()
