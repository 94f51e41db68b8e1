"""The Celery application: `celery -A worker.app worker|beat|flower`. This module is the composition root.

The app is built on first access to `worker.app.app` (Celery's `-A` does that), from the process's
settings. A bad setting then prints one line naming the variable and exits with status 1, instead of a
traceback. Each pool process gets a `Runtime` bound to this app after the fork and closes it on exit.
Task arguments are ids only: message text, numbers and secrets never reach the broker or Flower.
"""

from __future__ import annotations

import gc
import logging
import sys
from typing import TYPE_CHECKING, Any

from celery.signals import (
    beat_init,
    task_postrun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
)

from models.migrate import schema_problem
from worker.celery_app import create_celery_app
from worker.errors import ConfigurationError
from worker.memory import release_freed_memory
from worker.metrics.server import serve_worker_metrics
from worker.runtime import Runtime, set_runtime
from worker.settings import get_settings

if TYPE_CHECKING:
    from celery import Celery


_app: Celery | None = None


def _fail(exc: ConfigurationError) -> None:
    sys.stderr.write(f"smsq: {exc}\n")
    raise SystemExit(1) from None


def _build() -> Celery:
    global _app
    if _app is None:
        try:
            settings = get_settings()
            settings.connections()  # a worker or beat without usable provider settings must not start
        except ConfigurationError as exc:
            _fail(exc)
        _app = create_celery_app(settings)
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _build()
    raise AttributeError(f"module 'worker.app' has no attribute {name!r}")


@worker_init.connect
@beat_init.connect
def _check_connections(**_: Any) -> None:
    # Provider settings and the database's schema: a worker or beat that cannot work says why and stops.
    try:
        settings = get_settings()
        settings.connections()
        problem = schema_problem(settings.database_url)
        if problem is not None:
            raise ConfigurationError(f"SMSQ_DATABASE_URL: {problem}")
    except ConfigurationError as exc:
        _fail(exc)


@worker_init.connect
@beat_init.connect
def _quiet_request_log(**_: Any) -> None:
    # httpx logs every request at INFO: one line per provider call, thousands a minute on a busy worker, and
    # ~4 % of a sending worker's CPU. `smsq_provider_calls_total` counts them; errors still log at WARNING.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    # SMSQ_METRICS_PORT set: this worker serves Prometheus metrics (see docs/operations.md).
    serve_worker_metrics(get_settings())


@worker_process_init.connect
def _open_runtime(**_: Any) -> None:
    # Each pool process builds its own clients and connections after the fork, publishing through this app.
    set_runtime(Runtime(get_settings(), celery=_build()))
    _freeze_startup_objects()


@worker_ready.connect
def _freeze_startup_objects(**_: Any) -> None:
    # What is alive once a worker is up (modules, the app, the runtime: ~150,000 objects) lives as long as
    # the process. Moved out of the collector's generations, the full collections a send round's thousands
    # of rows trigger no longer walk it: CPU per 3,000-recipient call fell from 0.23 s to 0.10 s.
    gc.freeze()


@worker_process_shutdown.connect
def _close_runtime(**_: Any) -> None:
    set_runtime(None)


#: Tasks that hold thousands of rows at once (a provider call's batch, a poll's reports).
_BATCH_TASKS = frozenset({"smsq.drain", "smsq.poll"})


@task_postrun.connect
def _return_freed_memory(sender: Any = None, **_: Any) -> None:
    # A finished batch's memory goes back to the OS, so the worker's size does not keep its busiest moment.
    if getattr(sender, "name", None) in _BATCH_TASKS:
        release_freed_memory()
