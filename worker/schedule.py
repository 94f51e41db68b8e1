"""The beat schedule, built from settings: one task per concern.

Exactly one beat process is expected. Two at once are harmless: every sweep takes a short Redis lock
per concern and connection, and each sweep is idempotent (conditional updates, re-reads).
"""

from __future__ import annotations

from typing import Any

from worker.queues import Queue
from worker.settings import Settings

#: The tasks beat publishes. They send no task events (see `create_celery_app`): Flower would show little
#: else, and their health is beat's heartbeat in Redis.
SWEEP_TASKS = ("smsq.release", "smsq.poll", "smsq.reconcile", "smsq.retention")


def build_beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat entries; every message expires after one interval so a stopped worker does not pile them up."""

    def entry(task: str, interval_s: float, queue: Queue) -> dict[str, Any]:
        return {
            "task": task,
            "schedule": interval_s,
            "options": {"queue": queue.value, "expires": interval_s},
        }

    return {
        "smsq-release": entry("smsq.release", settings.release_interval_s, Queue.SWEEP),
        "smsq-poll": entry("smsq.poll", settings.poll_interval_s, Queue.POLL),
        "smsq-reconcile": entry("smsq.reconcile", settings.reconcile_interval_s, Queue.SWEEP),
        "smsq-callbacks": entry("smsq.callbacks", settings.callback_interval_s, Queue.CALLBACK),
        "smsq-retention": entry("smsq.retention", settings.retention_interval_s, Queue.SWEEP),
    }
