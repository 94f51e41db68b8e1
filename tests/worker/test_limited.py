"""The limiter sits in the provider clients' transport: every request takes a slot; a 429 pauses the connection."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import REDIS_URL, SANDBOX_KEY, SANDBOX_PASS, SANDBOX_USER
from worker.errors import ProviderThrottled, RateLimitExceeded
from worker.rate_limit.transport import call_kind
from worker.settings import load_settings


def runtime(runtime_factory, handler, **overrides):
    settings = load_settings(
        broker_url=REDIS_URL,
        database_url="sqlite://",
        provider_url="https://retarus.test/rest/v1",
        provider_username=SANDBOX_USER,
        provider_password=SANDBOX_PASS,
        provider_api_key=SANDBOX_KEY,
        **overrides,
    )
    return runtime_factory(settings, transport=httpx.MockTransport(handler))


def test_a_429_pauses_the_whole_connection_for_its_retry_after(runtime_factory, redis_client):
    rt = runtime(runtime_factory, lambda request: httpx.Response(429, headers={"Retry-After": "7"}))
    with pytest.raises(ProviderThrottled) as info:
        rt.client("default").version()
    assert info.value.retry_after_s == 7
    wait_s = rt.limiter("default").try_acquire("send")
    assert 6 < wait_s <= 7
    assert 6 < rt.limiter("default").try_acquire("poll") <= 7


def test_every_request_takes_a_slot_and_none_is_made_without_one(runtime_factory, redis_client):
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(200, json={"buildNumber": 1})

    # A wide margin: a grant goes stale only after 1 s, so a loaded host cannot cost this test a slot.
    rt = runtime(
        runtime_factory,
        handler,
        rate_limit_calls=3,
        rate_limit_period_s=30,
        rate_limit_margin_s=2.0,
        send_floor=0.0,
    )
    client = rt.client("default")
    with call_kind("poll"):
        for _ in range(3):
            client.version()
        with pytest.raises(RateLimitExceeded):
            client.version()
    assert len(seen) == 3
    assert rt.limiter("default").usage() == 3
