"""Countdowns as each broker can carry them."""

from __future__ import annotations

from worker.celery_app import broker_countdown

AMQP = "amqp://guest:guest@127.0.0.1:5672//"
REDIS = "redis://127.0.0.1:6379/0"


def test_rabbitmq_rounds_a_sub_second_countdown_up_to_one_second() -> None:
    assert broker_countdown(AMQP, 0.3) == 1.0
    assert broker_countdown(AMQP, 2.5) == 2.5


def test_redis_keeps_a_sub_second_countdown() -> None:
    assert broker_countdown(REDIS, 0.3) == 0.3


def test_no_countdown_means_at_once_on_every_broker() -> None:
    for url in (AMQP, REDIS):
        assert broker_countdown(url, None) is None
        assert broker_countdown(url, 0.0) is None
        assert broker_countdown(url, -1.0) is None
