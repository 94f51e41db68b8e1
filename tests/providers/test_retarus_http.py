"""RetarusHttpClient over MockTransport: form parameters, text answers, and the password kept out of sight."""

from __future__ import annotations

import logging

import httpx
import pytest

from models.enums import Qos
from worker.errors import (
    DeliveryUnknown,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderUnavailable,
)

from .conftest import HTTP_SIMPLE_URL, PASSWORD, Handler

JOB_ID = "J.20221116-102407.583-0lajfsfmoXIZJO93PQ"


def form_of(request: httpx.Request) -> dict[str, str]:
    """The query parameters (every HTTP Simple parameter travels there; the body stays empty)."""
    assert request.content == b""
    return dict(request.url.params)


@pytest.mark.parametrize("status", [200, 201])
def test_send_puts_every_parameter_in_the_query_and_returns_the_stripped_job_id(
    http_simple, recorder, status
):
    recorder.handler = lambda request: httpx.Response(status, text=f"{JOB_ID}\r\n")

    job_id = http_simple.send(
        "+4917600000000", "Hello ü", src="retarus", bc="B1", dn=True, qos=Qos.EXPRESS, ref="r-1"
    )

    assert job_id == JOB_ID
    (request,) = recorder.requests
    assert (request.method, str(request.url.copy_with(query=None))) == ("POST", f"{HTTP_SIMPLE_URL}/sms")
    assert "Content-Type" not in request.headers
    assert form_of(request) == {
        "user": "user",
        "pass": PASSWORD,
        "dst": "+4917600000000",
        "msg": "Hello ü",
        "src": "retarus",
        "bc": "B1",
        "dn": "true",
        "qos": "express",
        "ref": "r-1",
    }


def test_send_leaves_unset_options_out(http_simple, recorder):
    recorder.handler = lambda request: httpx.Response(201, text=JOB_ID)

    http_simple.send("+4917600000000", "Hi", dn=False)

    assert set(form_of(recorder.requests[0])) == {"user", "pass", "dst", "msg", "dn"}
    assert form_of(recorder.requests[0])["dn"] == "false"


@pytest.mark.parametrize("body", ["", "   ", "<html><body>Service moved</body></html>"])
def test_send_2xx_without_a_job_id_is_delivery_unknown(http_simple, recorder, body):
    recorder.handler = lambda request: httpx.Response(201, text=body)

    with pytest.raises(DeliveryUnknown):
        http_simple.send("+4917600000000", "Hi")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, PermanentProviderError),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
    ],
)
def test_send_status_mapping(http_simple, recorder, status, expected):
    recorder.handler = lambda request: httpx.Response(status, text="refused")

    with pytest.raises(expected) as info:
        http_simple.send("+4917600000000", "Hi")

    assert info.value.status_code == status


def test_send_429_carries_retry_after(http_simple, recorder):
    recorder.handler = lambda request: httpx.Response(429, headers={"Retry-After": "3"})

    with pytest.raises(ProviderThrottled) as info:
        http_simple.send("+4917600000000", "Hi")

    assert info.value.retry_after_s == 3.0


@pytest.mark.parametrize(
    ("body", "process_status", "status"),
    [("DONE SUC_ACC", "DONE", "SUC_ACC"), ("OPEN\n", "OPEN", None), (" running  x_1 ", "RUNNING", "X_1")],
)
def test_report_reads_the_text_pair(http_simple, recorder, body, process_status, status):
    recorder.handler = lambda request: httpx.Response(200, text=body)

    report = http_simple.report(JOB_ID)

    assert (report.process_status, report.status) == (process_status, status)
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.path == "/httpsimple/v1/reports"
    assert dict(request.url.params) == {"jobid": JOB_ID, "user": "user", "pass": PASSWORD}


@pytest.mark.parametrize("body", ["", "<html><body>oops</body></html>", "DONE SUC_ACC extra"])
def test_report_with_an_unreadable_body_is_retryable(http_simple, recorder, body):
    recorder.handler = lambda request: httpx.Response(200, text=body)

    with pytest.raises(ProviderUnavailable):
        http_simple.report(JOB_ID)


def test_report_404_is_permanent(http_simple, recorder):
    recorder.handler = lambda request: httpx.Response(404, text="unknown job")

    with pytest.raises(PermanentProviderError) as info:
        http_simple.report(JOB_ID)

    assert info.value.status_code == 404


# --- the password never leaks ----------------------------------------------------------------------------


def leaky_fault(exc_type: type[httpx.TransportError]) -> Handler:
    """A transport fault whose message quotes the full URL, as some httpx errors do."""

    def handler(request):
        raise exc_type(f"failed for url '{request.url}'", request=request)

    return handler


def assert_no_password(error: BaseException) -> None:
    assert PASSWORD not in str(error)
    assert PASSWORD not in repr(error)
    assert all(PASSWORD not in str(arg) for arg in error.args)
    assert error.__cause__ is None


@pytest.mark.parametrize("fault", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
def test_a_fault_on_report_never_shows_the_password(http_simple, recorder, fault):
    recorder.handler = leaky_fault(fault)

    with pytest.raises(ProviderError) as info:
        http_simple.report(JOB_ID)

    assert_no_password(info.value)
    assert "/httpsimple/v1/reports" in str(info.value)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(400, text=f"bad request for user=user&pass={PASSWORD}"),
        httpx.Response(500, json={"message": f"echo {PASSWORD}"}),
        httpx.Response(200, text=f"DONE {PASSWORD} too many"),
    ],
)
def test_a_refusal_echoing_the_password_never_shows_it(http_simple, recorder, response):
    recorder.handler = lambda request: response

    with pytest.raises(ProviderError) as info:
        http_simple.report(JOB_ID)

    assert_no_password(info.value)


def test_a_fault_on_send_never_shows_the_password(http_simple, recorder):
    recorder.handler = leaky_fault(httpx.ReadTimeout)

    with pytest.raises(DeliveryUnknown) as info:
        http_simple.send("+4917600000000", "Hi")

    assert_no_password(info.value)


def test_httpx_request_log_masks_the_password(http_simple, recorder, caplog):
    recorder.handler = lambda request: httpx.Response(200, text="DONE SUC_ACC")

    with caplog.at_level(logging.DEBUG, logger="httpx"):
        http_simple.report(JOB_ID)

    lines = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert lines, "httpx logs each request at INFO"
    assert all(PASSWORD not in line for line in lines)
    assert any("jobid=" in line and "pass=" in line for line in lines)


def test_httpx_request_log_of_a_send_names_no_number_and_no_text(http_simple, recorder, caplog):
    recorder.handler = lambda request: httpx.Response(200, text=JOB_ID)

    with caplog.at_level(logging.DEBUG, logger="httpx"):
        http_simple.send("+4917600000042", "Your code is 4711")

    lines = [record.getMessage() for record in caplog.records if record.name == "httpx"]
    assert lines
    assert all("4917600000042" not in line and "4711" not in line for line in lines)
    assert any("dst=" in line and "msg=" in line for line in lines)


def test_the_client_repr_names_no_password(http_simple):
    assert PASSWORD not in repr(http_simple)
    assert "user" in repr(http_simple)
