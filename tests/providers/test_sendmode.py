"""SendmodeClient over MockTransport: form-field JSON, the raw Authorization header, body status codes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from models.sendmode import SENDMODE_ERROR_CODES, ErrorKind, ImportData, SendmodeMessage
from worker.errors import (
    DeliveryUnknown,
    InvalidRequest,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderUnavailable,
    RetryableProviderError,
)
from worker.providers import InsufficientCredits

from .conftest import API_KEY, SENDMODE_URL

ACCEPTED = "2017-08-25T12:51:01.1808223+01:00"


def body_of(request: httpx.Request) -> dict[str, Any]:
    """The JSON body (Sendmode requires Content-Type: application/json, seed 001)."""
    assert request.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = json.loads(request.content)
    return body


def ok(**fields) -> httpx.Response:
    return httpx.Response(200, json={"status": "OK", "statusCode": 0, "acceptedDateTime": ACCEPTED, **fields})


def a_message() -> SendmodeMessage:
    return SendmodeMessage(
        messagetext="Hello World", recipients=["0870000000", "0870000001"], senderid="Sendmode"
    )


def test_send_posts_the_message_as_a_json_body_with_the_raw_key(sendmode, recorder):
    recorder.handler = lambda request: ok(
        message={
            "senderid": "Sendmode",
            "messagetext": "Hello World",
            "customerid": None,
            "scheduledate": None,
            "recipients": ["0870000000", "0870000001"],
        }
    )

    answer = sendmode.send(a_message())

    assert answer.ok and answer.status == "OK"
    assert answer.accepted_date_time is not None and answer.accepted_date_time.utcoffset() is not None
    assert answer.message is not None and answer.message.recipients == ["0870000000", "0870000001"]
    (request,) = recorder.requests
    assert (request.method, str(request.url)) == ("POST", f"{SENDMODE_URL}/send")
    assert request.headers["Authorization"] == API_KEY
    assert body_of(request)["message"] == {
        "messagetext": "Hello World",
        "recipients": ["0870000000", "0870000001"],
        "senderid": "Sendmode",
    }


def test_import_sends_importdata_and_group(sendmode, recorder):
    recorder.handler = lambda request: ok(
        group="VIP", importdata={"mobilenumber": "0870000000", "firstname": "Ann"}
    )

    answer = sendmode.import_customer(
        ImportData(mobilenumber="0870000000", firstname="Ann", dateofbirth="31/12/1990"), group="VIP"
    )

    assert answer.group == "VIP"
    assert answer.importdata is not None and answer.importdata.firstname == "Ann"
    form = body_of(recorder.requests[0])
    assert form["group"] == "VIP"
    assert form["importdata"] == {
        "mobilenumber": "0870000000",
        "firstname": "Ann",
        "dateofbirth": "31/12/1990",
    }
    assert recorder.requests[0].url.path == "/v2/import"


@pytest.mark.parametrize("group", [None, "", "  "])
def test_import_without_a_group_is_refused_before_sending(sendmode, recorder, group):
    with pytest.raises(InvalidRequest) as info:
        sendmode.import_customer(ImportData(mobilenumber="0870000000"), group)

    assert info.value.field == "group"
    assert recorder.requests == []


def test_credits_returns_an_exact_decimal_balance(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        200,
        content=b'{"status":"OK","statusCode":0,"balance":1234.10}',
        headers={"Content-Type": "application/json"},
    )

    assert sendmode.credits() == Decimal("1234.10")
    (request,) = recorder.requests
    assert (request.method, request.url.path) == ("GET", "/v2/credits")
    assert request.headers["Authorization"] == API_KEY


def test_credits_without_a_balance_is_retryable(sendmode, recorder):
    recorder.handler = lambda request: ok()

    with pytest.raises(ProviderUnavailable):
        sendmode.credits()


def test_opt_out_posts_the_message_field(sendmode, recorder):
    recorder.handler = lambda request: ok(mobilenumber="0870000000", optoutreason="asked")

    answer = sendmode.opt_out("0870000000", optoutresponse="STOP", returnedresponse="Bye")

    assert answer.ok and answer.mobilenumber == "0870000000" and answer.optoutreason == "asked"
    request = recorder.requests[0]
    assert request.url.path == "/v2/optout"
    assert body_of(request)["message"] == {
        "mobilenumber": "0870000000",
        "optoutresponse": "STOP",
        "returnedresponse": "Bye",
    }


# --- body status codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "identifier", "expected"),
    [
        (1, "INVALID_MESSAGE_LENGTH", PermanentProviderError),
        (3, "INSUFFICIENT_CREDITS", InsufficientCredits),
        (8, "SYSTEM_ERROR", ProviderUnavailable),
        (10, "INVALID_SENDER_ID", PermanentProviderError),
        (11, "INVALID_MOBILE_NUMBER", PermanentProviderError),
        (14, "INVALID_ACCESS_KEY", ProviderAuthError),
        (16, "UNAUTHORISED", ProviderAuthError),
        (18, "INVALID_PARAMETER", PermanentProviderError),
        (97, "INVALID_SCHEDULE_DATE_FORMAT", PermanentProviderError),
        (104, "CODE_EXPIRED", PermanentProviderError),
        (105, "CODE_INVALID", PermanentProviderError),
        (195, "EXPECTED_PARAMETER_MISSING", PermanentProviderError),
    ],
)
def test_a_body_status_code_maps_to_its_error_class(sendmode, recorder, code, identifier, expected):
    recorder.handler = lambda request: httpx.Response(
        200, json={"status": identifier, "statusCode": code, "error": "what went wrong"}
    )

    with pytest.raises(expected) as info:
        sendmode.send(a_message())

    assert type(info.value) is expected
    assert info.value.detail == f"{identifier} ({code}): what went wrong"
    assert info.value.status_code is None  # HTTP said 200; the code lives in the detail


def test_insufficient_credit_is_retryable_because_a_top_up_helps():
    assert issubclass(InsufficientCredits, RetryableProviderError)
    assert SENDMODE_ERROR_CODES[3].kind is ErrorKind.CREDITS


def test_an_unknown_body_code_is_permanent_with_the_body_text(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        200, json={"status": "NEW_THING", "statusCode": 4242, "error": "brand new failure"}
    )

    with pytest.raises(PermanentProviderError) as info:
        sendmode.opt_out("0870000000")

    assert type(info.value) is PermanentProviderError
    assert info.value.detail == "NEW_THING (4242): brand new failure"


def test_a_body_code_on_a_non_200_status_still_names_the_code(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        401, json={"status": "INVALID_ACCESS_KEY", "statusCode": 14, "error": "key refused"}
    )

    with pytest.raises(ProviderAuthError) as info:
        sendmode.credits()

    assert info.value.detail.startswith("INVALID_ACCESS_KEY (14)")
    assert info.value.status_code == 401


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (400, PermanentProviderError),
        (502, ProviderUnavailable),
    ],
)
def test_http_statuses_without_a_body_code(sendmode, recorder, status, expected):
    recorder.handler = lambda request: httpx.Response(status, text="nope")

    with pytest.raises(expected) as info:
        sendmode.send(a_message())

    assert info.value.status_code == status


def test_429_wins_over_any_body(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        429, headers={"Retry-After": "42"}, json={"status": "SYSTEM_ERROR", "statusCode": 8}
    )

    with pytest.raises(ProviderThrottled) as info:
        sendmode.send(a_message())

    assert info.value.retry_after_s == 42.0


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"status": "OK"}),
        httpx.Response(200, content=b""),
    ],
)
def test_send_with_an_unreadable_2xx_body_is_delivery_unknown(sendmode, recorder, response):
    recorder.handler = lambda request: response

    with pytest.raises(DeliveryUnknown):
        sendmode.send(a_message())


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (httpx.ConnectError, ProviderUnavailable),
        (httpx.ReadTimeout, DeliveryUnknown),
        (httpx.RemoteProtocolError, DeliveryUnknown),
    ],
)
def test_send_transport_faults(sendmode, recorder, fault, expected):
    def handler(request):
        raise fault("boom", request=request)

    recorder.handler = handler

    with pytest.raises(expected):
        sendmode.send(a_message())


def test_credits_read_timeout_is_retryable(sendmode, recorder):
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    recorder.handler = handler

    with pytest.raises(ProviderUnavailable):
        sendmode.credits()


def test_the_api_key_never_appears_in_errors_or_repr(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        200, json={"status": "INVALID_ACCESS_KEY", "statusCode": 14, "error": f"key {API_KEY} is not valid"}
    )

    with pytest.raises(ProviderError) as info:
        sendmode.send(a_message())

    assert API_KEY not in str(info.value) and API_KEY not in repr(info.value)
    assert API_KEY not in repr(sendmode)
