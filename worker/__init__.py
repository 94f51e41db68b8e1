"""smsq's worker side: the producer API, the Celery tasks, the provider clients and the CLI.

Application code enqueues with::

    from worker import enqueue
    handle = enqueue({"messages": [{"text": "Hi", "recipients": [{"dst": "+4917612345678"}]}]})
"""

from __future__ import annotations

import importlib.util
import os
from typing import TYPE_CHECKING, Any


def _check_models_package() -> None:
    """smsq installs a top-level `models` package beside `worker`; an application's own `models` package
    earlier on sys.path would shadow it and fail later with a puzzling `No module named 'models.enums'`."""
    spec = importlib.util.find_spec("models")
    ours = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    origin = spec.origin if spec is not None else None
    if origin is None or os.path.dirname(os.path.dirname(os.path.abspath(origin))) != ours:
        found = origin or "nowhere"
        raise ImportError(
            f"smsq's 'worker' needs smsq's own top-level 'models' package (in {ours}), but 'models' "
            f"resolves to {found}: another package named 'models' shadows it. Rename that package, or run "
            "smsq in its own environment and enqueue by task name (see the README, 'Where things are')."
        )


_check_models_package()

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
