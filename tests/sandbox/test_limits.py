"""The sandbox's own per-credential rate limit: a sliding window over real time."""

from __future__ import annotations

import json
from typing import Any

from sandbox.limiter import SlidingWindowLimiter, retry_after_header
from tests.sandbox.support import AUTH_SIMPLE, KEY, OTHER_KEY, OTHER_PASSWORD, OTHER_USER, Sim, one_sms

#: GET /jobs needs jobIdsOnly=true (seed 000).
IDS = {"jobIdsOnly": "true"}


def test_the_101st_call_within_60_seconds_is_429_for_that_credential_only(sim: Sim) -> None:
    client = sim.retarus()
    statuses = [client.get("/jobs", params=IDS).status_code for _ in range(100)]
    assert statuses == [200] * 100

    refused = client.post("/jobs", json=one_sms())

    assert refused.status_code == 429
    assert refused.json()["code"] == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert sim.state.jobs() == []
    assert sim.retarus(OTHER_USER, OTHER_PASSWORD).post("/jobs", json=one_sms()).status_code == 201
    assert sim.client(base_url=sim.url).get("/rest/v1/version").status_code == 200  # never limited
    last = sim.state.calls(credential="sandbox-user")[-1]
    assert (last.status_code, last.fault) == (429, "rate_limited")


def test_a_smaller_configured_limit_applies_per_credential_across_apis(start_sim: Any) -> None:
    sim = start_sim(limit_calls=3, limit_period_s=60.0)
    rest, simple = sim.retarus(), sim.simple()

    assert rest.get("/jobs", params=IDS).status_code == 200
    assert simple.post("/sms", data={**AUTH_SIMPLE, "dst": "+4917600000000", "msg": "x"}).status_code == 201
    assert rest.get("/jobs", params=IDS).status_code == 200
    refused = simple.post("/sms", data={**AUTH_SIMPLE, "dst": "+4917600000000", "msg": "x"})

    assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()


def test_sendmode_is_limited_per_key_with_http_429(start_sim: Any) -> None:
    sim = start_sim(limit_calls=2)
    message = {"message": json.dumps({"messagetext": "x", "recipients": ["0870000000"]})}
    client = sim.sendmode()

    assert [client.post("/send", data=message).status_code for _ in range(2)] == [200, 200]
    refused = client.get("/credits")

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["status"] == "TOO_MANY_REQUESTS"
    assert sim.sendmode(OTHER_KEY).get("/credits").json()["status"] == "OK"
    assert sim.sendmode(KEY).get("/credits").status_code == 429


def test_sliding_window_frees_a_slot_period_after_the_oldest_call() -> None:
    now = [0.0]
    limiter = SlidingWindowLimiter(2, 10.0, monotonic=lambda: now[0])

    assert limiter.try_acquire("a") == 0.0
    now[0] = 4.0
    assert limiter.try_acquire("a") == 0.0
    now[0] = 6.0
    assert limiter.try_acquire("a") == 4.0  # the call at t=0 leaves the window at t=10
    now[0] = 9.5
    assert limiter.try_acquire("a") == 0.5  # refused calls did not count
    assert limiter.try_acquire("b") == 0.0
    now[0] = 10.0
    assert limiter.try_acquire("a") == 0.0
    assert limiter.try_acquire("a") == 4.0  # now the t=4 call is the oldest


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after_header(s) for s in (1e-9, 0.5, 1.0, 1.01, 59.2)] == ["1", "1", "1", "2", "60"]
