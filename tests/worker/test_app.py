"""Contract of the Celery app: every beat entry names a registered task, every route a declared queue."""

from __future__ import annotations

from worker.celery_app import create_celery_app
from worker.queues import TASK_ROUTES, Queue
from worker.settings import load_settings


def make_app(**overrides):
    app = create_celery_app(load_settings(**overrides))
    app.loader.import_default_modules()
    return app


def test_every_beat_entry_names_a_registered_task_on_a_known_queue():
    app = make_app(
        poll_interval_s=7, release_interval_s=3, reconcile_interval_s=11, callback_interval_s=2, retention_interval_s=13
    )
    schedule = app.conf.beat_schedule
    assert {entry["task"] for entry in schedule.values()} == {
        "smsq.release",
        "smsq.poll",
        "smsq.reconcile",
        "smsq.callbacks",
        "smsq.retention",
    }
    for entry in schedule.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["queue"] in {q.value for q in Queue}
    assert {name: entry["schedule"] for name, entry in schedule.items()} == {
        "smsq-release": 3,
        "smsq-poll": 7,
        "smsq-reconcile": 11,
        "smsq-callbacks": 2,
        "smsq-retention": 13,
    }


def test_every_route_names_a_registered_task_and_a_declared_queue():
    app = make_app()
    declared = {queue.name for queue in app.conf.task_queues}
    assert declared == {q.value for q in Queue}
    for task, route in TASK_ROUTES.items():
        assert task in app.tasks
        assert route["queue"] in declared


def test_celery_settings_make_redelivery_safe_and_carry_json_only():
    app = make_app(visibility_timeout_s=1800, retry_backoff_max_s=120)
    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_ignore_result is True
    assert conf.task_acks_late is True and conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options == {"visibility_timeout": 1800}
