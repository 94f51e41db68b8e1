"""The shared HTTP boundary: Retry-After parsing and secret redaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.errors import PermanentProviderError, ProviderThrottled
from worker.providers.base import parse_retry_after, provider_message, raise_for_status, redact

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        ("1.5", 1.5),
        ("Tue, 01 Jan 2030 12:00:30 GMT", 30.0),
        ("Tue, 01 Jan 2030 13:00:00 +0100", 0.0),  # the same instant as NOW
        ("Tue, 01 Jan 2030 11:00:00 GMT", 0.0),  # in the past: go now
        ("-5", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_parse_retry_after_reads_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, now=NOW) == expected


@given(st.integers(min_value=0, max_value=86_400 * 30))
def test_an_http_date_gives_the_seconds_until_it(seconds):
    when = NOW + timedelta(seconds=seconds)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(header, now=NOW) == float(seconds)


def test_raise_for_status_uses_the_injected_now_for_dates():
    request = httpx.Request("POST", "https://p.test/jobs")
    response = httpx.Response(429, headers={"Retry-After": "Tue, 01 Jan 2030 12:01:00 GMT"}, request=request)

    with pytest.raises(ProviderThrottled) as info:
        raise_for_status(response, "retarus", now=NOW)

    assert info.value.retry_after_s == 60.0


def test_raise_for_status_is_quiet_on_2xx():
    response = httpx.Response(204, request=httpx.Request("GET", "https://p.test/x"))
    raise_for_status(response, "retarus")


def test_an_error_names_the_path_but_not_the_query():
    request = httpx.Request("GET", "https://p.test/reports", params={"jobid": "J.1", "pass": "hunter2"})
    response = httpx.Response(418, text="teapot", request=request)

    with pytest.raises(PermanentProviderError) as info:
        raise_for_status(response, "retarus_http")

    assert "GET https://p.test/reports: teapot" in info.value.detail
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"code": 400, "message": "Invalid blackout"}, "Invalid blackout"),
        ({"status": "INVALID_PARAMETER", "statusCode": 18, "error": "bad type"}, "bad type"),
        ({"unexpected": True}, '{"unexpected":true}'),
    ],
)
def test_provider_message_reads_known_body_shapes(body, expected):
    response = httpx.Response(400, json=body)
    assert provider_message(response) == expected


def test_provider_message_cuts_raw_text_to_200_characters():
    response = httpx.Response(400, text="x" * 1000)
    assert provider_message(response) == "x" * 200


def test_provider_message_falls_back_to_the_reason_phrase():
    assert provider_message(httpx.Response(503)) == "Service Unavailable"


def test_redact_masks_queries_and_secret_values():
    text = "failed for url 'https://h.test/reports?jobid=1&pass=abc' with key s3cr3t"
    assert redact(text, ["s3cr3t"]) == "failed for url 'https://h.test/reports?***' with key ***"
