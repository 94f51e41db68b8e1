"""RetarusClient over MockTransport: what goes on the wire, how every answer and fault is mapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from models.retarus import JobRequest, Message, Options, Recipient
from worker.errors import (
    DeliveryUnknown,
    DuplicateJob,
    PermanentProviderError,
    ProviderAuthError,
    ProviderThrottled,
    ProviderUnavailable,
)
from worker.providers import RetarusClient
from worker.providers.retarus import listing_windows

from .conftest import PASSWORD, RETARUS_PRIMARY, RETARUS_SECONDARY, Handler, Recorder

JOB_ID = "J.20221116-102407.583-0lajfsfmoXIZJO93PQ"
REPORT = {
    "jobId": JOB_ID,
    "src": "retarus",
    "encoding": "standard",
    "billcode": "Campaign123",
    "statusRequested": True,
    "flash": False,
    "validityMin": 2880,
    "customerRef": None,
    "qos": "EXPRESS",
    "receiptTs": "2022-09-01T10:25:00.000Z",
    "finishedTs": "2022-09-01T10:26:00.000+02:00",
    "recipientIds": ["S.20220928-125820.022-0l8likueyRB3CT8FTG"],
    "somethingNew": 1,
}


def a_job() -> JobRequest:
    return JobRequest(
        messages=[Message(text="Hello", recipients=[Recipient(dst="+4917600000000", customer_ref="r-1")])],
        options=Options(src="retarus", duplicate_detection=True),
    )


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


# --- send -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201])
def test_send_posts_the_contract_json_to_the_primary_and_returns_the_job_id(retarus, recorder, status):
    recorder.handler = lambda request: json_response(status, {"jobId": JOB_ID})

    assert retarus.send_job(a_job()) == JOB_ID

    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == f"{RETARUS_PRIMARY}/jobs"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Authorization"].startswith("Basic ")
    assert json.loads(request.content) == {
        "messages": [{"text": "Hello", "recipients": [{"dst": "+4917600000000", "customerRef": "r-1"}]}],
        "options": {"src": "retarus", "duplicateDetection": True},
    }


def test_send_409_is_a_duplicate_job(retarus, recorder):
    recorder.handler = lambda request: json_response(409, {"code": 409, "message": "Duplicate job"})

    with pytest.raises(DuplicateJob) as info:
        retarus.send_job(a_job())

    assert info.value.status_code == 409
    assert "Duplicate job" in info.value.detail


@pytest.mark.parametrize(
    ("status", "body", "expected_text"),
    [
        (400, {"code": 400, "message": "Invalid blackout period syntax"}, "Invalid blackout period syntax"),
        (422, {"code": 422, "message": "Invalid characters in text"}, "Invalid characters in text"),
        (400, "plain words " * 40, "plain words"),
    ],
)
def test_send_400_and_422_are_permanent_with_the_providers_message(
    retarus, recorder, status, body, expected_text
):
    def handler(request):
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return json_response(status, body)

    recorder.handler = handler

    with pytest.raises(PermanentProviderError) as info:
        retarus.send_job(a_job())

    assert type(info.value) is PermanentProviderError
    assert info.value.status_code == status
    assert expected_text in info.value.detail
    assert len(info.value.detail) < 300  # raw text is cut to 200 characters


@pytest.mark.parametrize("status", [401, 403])
def test_send_401_and_403_are_auth_errors(retarus, recorder, status):
    recorder.handler = lambda request: json_response(status, {"code": status, "message": "Unauthorized"})

    with pytest.raises(ProviderAuthError) as info:
        retarus.send_job(a_job())

    assert info.value.status_code == status


@pytest.mark.parametrize("status", [500, 502, 503])
def test_send_5xx_is_provider_unavailable(retarus, recorder, status):
    recorder.handler = lambda request: httpx.Response(status, text="upstream trouble")

    with pytest.raises(ProviderUnavailable) as info:
        retarus.send_job(a_job())

    assert info.value.status_code == status


def test_send_429_with_delta_seconds_carries_retry_after(retarus, recorder):
    recorder.handler = lambda request: httpx.Response(429, headers={"Retry-After": "17"})

    with pytest.raises(ProviderThrottled) as info:
        retarus.send_job(a_job())

    assert info.value.retry_after_s == 17.0
    assert info.value.status_code == 429


def test_send_429_with_an_http_date_carries_the_seconds_until_then(retarus, recorder):
    when = datetime.now(UTC) + timedelta(seconds=120)
    header = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    recorder.handler = lambda request: httpx.Response(429, headers={"Retry-After": header})

    with pytest.raises(ProviderThrottled) as info:
        retarus.send_job(a_job())

    assert info.value.retry_after_s is not None
    assert 110 <= info.value.retry_after_s <= 120


def test_send_429_without_retry_after_has_none(retarus, recorder):
    recorder.handler = lambda request: httpx.Response(429)

    with pytest.raises(ProviderThrottled) as info:
        retarus.send_job(a_job())

    assert info.value.retry_after_s is None


def raise_(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request):
        raise exc_type("boom", request=request)

    return handler


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (httpx.ConnectError, ProviderUnavailable),
        (httpx.ConnectTimeout, ProviderUnavailable),
        (httpx.PoolTimeout, ProviderUnavailable),
        (httpx.ReadTimeout, DeliveryUnknown),
        (httpx.ReadError, DeliveryUnknown),
        (httpx.WriteTimeout, DeliveryUnknown),
        (httpx.WriteError, DeliveryUnknown),
        (httpx.RemoteProtocolError, DeliveryUnknown),
    ],
)
def test_send_transport_faults_say_whether_the_job_may_have_arrived(retarus, recorder, fault, expected):
    recorder.handler = raise_(fault)

    with pytest.raises(expected) as info:
        retarus.send_job(a_job())

    assert fault.__name__ in info.value.detail
    assert info.value.__cause__ is None  # the httpx error (and its URL) is not chained


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(201, text="<html>gateway</html>"),
        httpx.Response(201, json={"id": "wrong-field"}),
        httpx.Response(200, content=b""),
        httpx.Response(201, json=[{"jobId": JOB_ID}]),
    ],
)
def test_send_2xx_with_an_unreadable_body_is_delivery_unknown(retarus, recorder, response):
    recorder.handler = lambda request: response

    with pytest.raises(DeliveryUnknown):
        retarus.send_job(a_job())


def test_send_goes_only_to_the_first_url_even_on_404(retarus, recorder):
    recorder.handler = lambda request: json_response(404, {"message": "Not Found"})

    with pytest.raises(PermanentProviderError) as info:
        retarus.send_job(a_job())

    assert info.value.status_code == 404
    assert [str(r.url) for r in recorder.requests] == [f"{RETARUS_PRIMARY}/jobs"]


# --- lookups and failover --------------------------------------------------------------------------------


def test_job_report_is_parsed_with_lowercase_encoding_and_aware_times(retarus, recorder):
    recorder.handler = lambda request: json_response(200, REPORT)

    report = retarus.job_report(JOB_ID)

    assert report.job_id == JOB_ID
    assert report.encoding == "standard"
    assert report.receipt_ts == datetime(2022, 9, 1, 10, 25, tzinfo=UTC)
    assert report.finished_ts == datetime(2022, 9, 1, 8, 26, tzinfo=UTC)
    assert report.finished
    assert report.recipient_ids == ["S.20220928-125820.022-0l8likueyRB3CT8FTG"]
    assert str(recorder.requests[0].url) == f"{RETARUS_PRIMARY}/jobs/{JOB_ID}"


def test_lookup_moves_to_the_next_data_center_on_404(retarus, recorder):
    def handler(request):
        if request.url.host == "de2.retarus.test":
            return json_response(404, {"message": "Not Found"})
        return json_response(200, REPORT)

    recorder.handler = handler

    assert retarus.job_report(JOB_ID).job_id == JOB_ID
    assert [r.url.host for r in recorder.requests] == ["de2.retarus.test", "de1.retarus.test"]


def test_lookup_404_everywhere_is_permanent_404(retarus, recorder):
    recorder.handler = lambda request: json_response(404, {"message": "Not Found"})

    with pytest.raises(PermanentProviderError) as info:
        retarus.recipient_reports(JOB_ID)

    assert info.value.status_code == 404
    assert len(recorder.requests) == 2


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (500, ProviderUnavailable),
        (503, ProviderUnavailable),
        (401, ProviderAuthError),
        (400, PermanentProviderError),
    ],
)
def test_lookup_fails_over_only_on_404(retarus, recorder, status, expected):
    recorder.handler = lambda request: json_response(status, {"code": status, "message": "no"})

    with pytest.raises(expected):
        retarus.job_report(JOB_ID)

    assert len(recorder.requests) == 1


@pytest.mark.parametrize("fault", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError])
def test_lookup_transport_faults_are_retryable_since_a_get_can_be_repeated(retarus, recorder, fault):
    recorder.handler = raise_(fault)

    with pytest.raises(ProviderUnavailable):
        retarus.job_report(JOB_ID)


def test_lookup_with_an_unreadable_2xx_body_is_retryable_not_unknown(retarus, recorder):
    recorder.handler = lambda request: httpx.Response(200, text="not json")

    with pytest.raises(ProviderUnavailable):
        retarus.job_report(JOB_ID)


def test_recipient_reports_are_parsed_with_optional_fields(retarus, recorder):
    recorder.handler = lambda request: json_response(
        200,
        [
            {
                "smsId": "S.1",
                "dst": "+4917600000000",
                "processStatus": "DONE",
                "status": "SUC_FIN",
                "customerRef": "r-1",
                "reason": "message_state:DELIVERED",
                "sentTs": "2022-09-28T10:58:30.022Z",
                "finishedTs": "2022-09-28T10:59:34.150Z",
            },
            {"smsId": "S.2", "dst": "+4917600000001", "processStatus": "OPEN"},
        ],
    )

    first, second = retarus.recipient_reports(JOB_ID)

    assert (first.process_status, first.status, first.customer_ref) == ("DONE", "SUC_FIN", "r-1")
    assert first.sent_ts == datetime(2022, 9, 28, 10, 58, 30, 22000, tzinfo=UTC)
    assert (second.process_status, second.status, second.sent_ts) == ("OPEN", None, None)
    (request,) = recorder.requests
    assert request.url.path == "/rest/v1/sms"
    assert request.url.params["jobId"] == JOB_ID


def test_version_is_read_from_the_first_data_center(retarus, recorder):
    recorder.handler = lambda request: json_response(
        200, {"buildNumber": 12, "majorVersion": 2016, "minorVersion": 6, "versionInfo": "2016.6"}
    )

    version = retarus.version()

    assert (version.build_number, version.major_version, version.version_info) == (12, 2016, "2016.6")
    assert version.message is None
    assert str(recorder.requests[0].url) == f"{RETARUS_PRIMARY}/version"


# --- listing ----------------------------------------------------------------------------------------------

START = datetime(2030, 1, 1, tzinfo=UTC)


def paged_listing(ids_by_host: dict[str, list[str]]):
    """A GET /jobs handler that honours offset/limit over a fixed id list per data center."""

    def handler(request):
        ids = ids_by_host[request.url.host]
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return json_response(200, [{"jobId": job_id} for job_id in ids[offset : offset + limit]])

    return handler


def test_listing_follows_every_page_until_a_short_one(retarus, recorder):
    ids = [f"J.{n:020d}" for n in range(7)]
    recorder.handler = paged_listing({"de2.retarus.test": ids, "de1.retarus.test": []})

    found = retarus.list_jobs(from_ts=START, to_ts=START + timedelta(days=1), open=True, page_size=3)

    assert found == ids
    primary = [r for r in recorder.requests if r.url.host == "de2.retarus.test"]
    assert [(r.url.params["offset"], r.url.params["limit"]) for r in primary] == [
        ("0", "3"),
        ("3", "3"),
        ("6", "3"),
    ]
    for request in recorder.requests:
        assert request.url.params["jobIdsOnly"] == "true"
        assert request.url.params["open"] == "true"
        assert request.url.params["fromTs"] == "2030-01-01T00:00:00+00:00"


def test_listing_reads_an_exact_multiple_of_the_page_size_then_stops_on_an_empty_page(retarus, recorder):
    ids = [f"J.{n:020d}" for n in range(6)]
    recorder.handler = paged_listing({"de2.retarus.test": ids, "de1.retarus.test": []})

    assert retarus.list_jobs(from_ts=START, to_ts=START + timedelta(hours=1), page_size=3) == ids
    assert [r.url.params["offset"] for r in recorder.requests if r.url.host == "de2.retarus.test"] == [
        "0",
        "3",
        "6",
    ]
    assert all("open" not in r.url.params for r in recorder.requests)


def test_listing_merges_every_data_center_without_duplicates_in_order(retarus, recorder):
    recorder.handler = paged_listing(
        {"de2.retarus.test": ["J.a", "J.b", "J.c"], "de1.retarus.test": ["J.c", "J.d"]}
    )

    found = retarus.list_jobs(from_ts=START, to_ts=START + timedelta(days=2), open=False, page_size=2)

    assert found == ["J.a", "J.b", "J.c", "J.d"]
    assert {r.url.host for r in recorder.requests} == {"de2.retarus.test", "de1.retarus.test"}
    assert all(r.url.params["open"] == "false" for r in recorder.requests)


def test_listing_a_data_center_answering_404_counts_as_empty(retarus, recorder):
    def handler(request):
        if request.url.host == "de1.retarus.test":
            return json_response(404, {"message": "Not Found"})
        return json_response(200, [{"jobId": "J.a"}])

    recorder.handler = handler

    assert retarus.list_jobs(from_ts=START, to_ts=START + timedelta(days=1)) == ["J.a"]


def test_listing_stops_when_the_provider_ignores_the_offset(retarus, recorder):
    recorder.handler = lambda request: json_response(200, [{"jobId": "J.a"}, {"jobId": "J.b"}])

    assert retarus.list_jobs(from_ts=START, to_ts=START + timedelta(days=1), page_size=2) == ["J.a", "J.b"]
    assert len(recorder.requests) == 4  # two identical pages per data center, then it gives up


def test_a_75_day_listing_is_split_into_three_contiguous_windows_of_at_most_30_days(retarus, recorder):
    recorder.handler = lambda request: json_response(200, [])
    end = START + timedelta(days=75)

    retarus.list_jobs(from_ts=START, to_ts=end)

    primary = [r for r in recorder.requests if r.url.host == "de2.retarus.test"]
    windows = [
        (datetime.fromisoformat(r.url.params["fromTs"]), datetime.fromisoformat(r.url.params["toTs"]))
        for r in primary
    ]
    assert len(windows) == 3
    assert windows[0][0] == START and windows[-1][1] == end
    for (_, previous_end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert next_start == previous_end
    assert all(timedelta(0) < stop - begin <= timedelta(days=30) for begin, stop in windows)
    assert len(recorder.requests) == 6  # both data centers, each window once


def test_listing_sends_timestamps_with_the_callers_offset(retarus, recorder):
    recorder.handler = lambda request: json_response(200, [])
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2030, 6, 1, 0, 0, tzinfo=plus_two)

    retarus.list_jobs(from_ts=start, to_ts=start)

    params = recorder.requests[0].url.params
    assert (params["fromTs"], params["toTs"]) == ("2030-06-01T00:00:00+02:00", "2030-06-01T00:00:00+02:00")
    assert "%2B02%3A00" in str(recorder.requests[0].url)  # the "+" is encoded, not read as a space
    assert listing_windows(start, start) == [(start, start)]


@pytest.mark.parametrize(
    ("from_ts", "to_ts"),
    [(START, START - timedelta(seconds=1)), (datetime(2030, 1, 1), datetime(2030, 1, 2))],
)
def test_listing_refuses_a_reversed_or_naive_range(retarus, from_ts, to_ts):
    with pytest.raises(ValueError):
        retarus.list_jobs(from_ts=from_ts, to_ts=to_ts)


def test_listing_failure_in_any_data_center_is_raised_not_swallowed(retarus, recorder):
    def handler(request):
        if request.url.host == "de1.retarus.test":
            return httpx.Response(503)
        return json_response(200, [])

    recorder.handler = handler

    with pytest.raises(ProviderUnavailable):
        retarus.list_jobs(from_ts=START, to_ts=START + timedelta(days=1))


# --- secrets ----------------------------------------------------------------------------------------------


def test_the_client_repr_names_no_credentials(retarus):
    text = repr(retarus)
    assert PASSWORD not in text
    assert RETARUS_PRIMARY in text and RETARUS_SECONDARY in text


def test_at_least_one_base_url_is_required():
    with pytest.raises(ValueError):
        RetarusClient(httpx.Client(), [])


def test_a_fault_message_never_carries_the_basic_auth_password(recorder: Recorder):
    client = RetarusClient(
        httpx.Client(transport=recorder.transport), [f"https://user:{PASSWORD}@de2.retarus.test/rest/v1"]
    )
    recorder.handler = raise_(httpx.ReadTimeout)

    with pytest.raises(DeliveryUnknown) as info:
        client.send_job(a_job())

    assert PASSWORD not in str(info.value) and PASSWORD not in repr(info.value)
