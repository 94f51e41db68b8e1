"""Every error smsq raises survives pickle and Celery's JSON exception round trip, secrets excluded."""

from __future__ import annotations

import inspect
import pickle

import pytest
from celery import Celery

import worker.errors
from worker.errors import ProviderError, ProviderThrottled
from worker.providers import InsufficientCredits

EXAMPLE_ARGS: dict[type[BaseException], tuple[object, ...]] = {
    worker.errors.InvalidRequest: ("options.billcode", "at most 70 characters"),
    worker.errors.JobNotFound: ("8d0c5a0e-0000-4000-8000-000000000000",),
    worker.errors.RateLimitExceeded: (1.25,),
    ProviderThrottled: ("retarus", 17.0, "throttled on POST /jobs"),
}


def every_error_class() -> list[type[BaseException]]:
    classes = [
        cls
        for _, cls in inspect.getmembers(worker.errors, inspect.isclass)
        if issubclass(cls, BaseException) and cls.__module__ == worker.errors.__name__
    ]
    return [*classes, InsufficientCredits]


def example(cls: type[BaseException]) -> BaseException:
    if cls in EXAMPLE_ARGS:
        return cls(*EXAMPLE_ARGS[cls])
    if issubclass(cls, ProviderError):
        return cls("sendmode", "INVALID_MOBILE_NUMBER (11): bad number", 422)
    parameters = list(inspect.signature(cls.__init__).parameters)[1:]
    if parameters and parameters[0] not in ("args", "kwargs"):
        return cls(*(f"{name}-value" for name in parameters))  # a class added later: one text per argument
    return cls("something is wrong")


def state(exc: BaseException) -> dict[str, object]:
    return {
        "args": exc.args,
        "str": str(exc),
        **{k: v for k, v in vars(exc).items() if not k.startswith("_")},
    }


def test_the_tree_has_all_the_expected_classes():
    names = {cls.__name__ for cls in every_error_class()}
    assert {"SmsError", "ProviderError", "DeliveryUnknown", "DuplicateJob", "InsufficientCredits"} <= names


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda cls: cls.__name__)
def test_pickle_round_trip_keeps_type_and_attributes(cls):
    original = example(cls)
    restored = pickle.loads(pickle.dumps(original))
    assert type(restored) is cls
    assert state(restored) == state(original)


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda cls: cls.__name__)
def test_celery_json_round_trip_keeps_type_and_attributes(cls):
    app = Celery(set_as_current=False)
    original = example(cls)
    stored = app.backend.prepare_exception(original, serializer="json")
    restored = app.backend.exception_to_python(stored)
    assert type(restored) is cls
    assert state(restored) == state(original)
    app.close()


def test_throttled_keeps_retry_after_through_json():
    app = Celery(set_as_current=False)
    restored = app.backend.exception_to_python(
        app.backend.prepare_exception(ProviderThrottled("retarus", 2.5), serializer="json")
    )
    assert isinstance(restored, ProviderThrottled)
    assert restored.retry_after_s == 2.5 and restored.status_code == 429
    app.close()
