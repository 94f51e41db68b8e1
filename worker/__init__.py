"""smsq's worker side: the producer API, the Celery tasks, the provider clients and the CLI.

Application code enqueues with::

    from worker import enqueue
    handle = enqueue({"messages": [{"text": "Hi", "recipients": [{"dst": "+4917612345678"}]}]})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["JobHandle", "enqueue", "enqueue_many", "job_status"]

if TYPE_CHECKING:
    from worker.producer import JobHandle, enqueue, enqueue_many
    from worker.status import job_status


def __getattr__(name: str) -> Any:
    # Imported on first use so `import worker` stays cheap and side-effect free.
    if name in ("JobHandle", "enqueue", "enqueue_many"):
        from worker import producer

        return getattr(producer, name)
    if name == "job_status":
        from worker.status import job_status

        return job_status
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
