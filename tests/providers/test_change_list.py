"""The client side of PROVIDERS.md "Changes (2026-12-02)", line by line, over MockTransport: what went over
the wire, and that a wrong value is refused (InvalidRequest naming the field) before any request."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from models.enums import Qos
from models.retarus import JobRequest, Message, Options, Recipient
from worker.errors import InvalidRequest

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def a_job(**options) -> JobRequest:
    return JobRequest(messages=[Message(text="Hi", recipients=[Recipient(dst="+4917600000000")])])


# 4, 5: GET /jobs sends jobIdsOnly=true and never a limit over 1000
def test_4_5_listing_sends_job_ids_only_and_a_limit_within_0_1000(retarus, recorder):
    recorder.handler = lambda request: httpx.Response(200, json=[{"jobId": "J.1"}, {"jobId": None}])
    assert retarus.list_jobs(from_ts=T0, to_ts=T0 + timedelta(days=1), page_size=1000) == ["J.1"]
    params = recorder.requests[0].url.params
    assert params["jobIdsOnly"] == "true" and params["limit"] == "1000"


@pytest.mark.parametrize("page_size", [0, 1001, 5000])
def test_5_a_page_size_outside_1_1000_is_refused_before_any_call(retarus, recorder, page_size):
    with pytest.raises(InvalidRequest) as info:
        retarus.list_jobs(from_ts=T0, to_ts=T0 + timedelta(days=1), page_size=page_size)
    assert info.value.field == "limit"
    assert recorder.requests == []


# 9, 10: validityMin, maxParts and src are checked before sending
@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"validity_min": 4}, "options.validityMin"),
        ({"validity_min": 2881}, "options.validityMin"),
        ({"max_parts": 0}, "options.maxParts"),
        ({"max_parts": 21}, "options.maxParts"),
        ({"src": "TwelveChars!"}, "options.src"),
        ({"src": "+" + "1" * 21}, "options.src"),
        ({"billcode": "b" * 71}, "options.billcode"),
    ],
)
def test_9_10_out_of_contract_options_are_refused_before_sending(retarus, recorder, options, field):
    # model_construct skips validation, as a caller that built the model by hand might: the client checks again
    job = JobRequest.model_construct(
        messages=[Message(text="Hi", recipients=[Recipient(dst="+4917600000000")])],
        options=Options.model_construct(**options),
    )
    with pytest.raises(InvalidRequest) as info:
        retarus.send_job(job)
    assert info.value.field == field
    assert recorder.requests == []


@pytest.mark.parametrize("src", ["retarus", "a`b~c", "+4917600000", "12345678901234567890"])
def test_10_the_documented_sender_ids_go_through(retarus, recorder, src):
    recorder.handler = lambda request: httpx.Response(201, json={"jobId": "J.1"})
    job = JobRequest(
        messages=[Message(text="Hi", recipients=[Recipient(dst="+49")])], options=Options(src=src)
    )
    assert retarus.send_job(job) == "J.1"
    assert json.loads(recorder.requests[0].content)["options"]["src"] == src


# 11, 12: every answer field may be absent or null; an empty status is <empty>
def test_11_12_null_and_absent_answer_fields_are_accepted(retarus, recorder):
    recorder.handler = lambda request: httpx.Response(
        200,
        json={"jobId": None, "src": None, "encoding": None, "recipientIds": None, "finishedTs": None}
        if request.url.path.endswith("/jobs/J.1")
        else [{"smsId": None, "dst": None, "processStatus": "OPEN", "status": ""}, {"processStatus": "KILL"}],
    )
    report = retarus.job_report("J.1")
    assert (report.job_id, report.recipient_ids, report.finished) == (None, [], False)
    first, second = retarus.recipient_reports("J.1")
    assert (first.process_status, first.status, second.status) == ("OPEN", None, None)


def test_11_a_send_answer_without_job_id_is_delivery_unknown(retarus, recorder):
    from worker.errors import DeliveryUnknown

    recorder.handler = lambda request: httpx.Response(201, json={"jobId": None})
    with pytest.raises(DeliveryUnknown):
        retarus.send_job(JobRequest(messages=[Message(text="Hi", recipients=[Recipient(dst="+49")])]))


# 14: VersionInfoResponse, six fields
def test_14_version_reads_the_six_fields(retarus, recorder):
    body = {"buildNumber": 7, "buildTimestamp": "t", "majorVersion": 2030, "minorVersion": 1,
            "versionInfo": "v", "message": "m"}  # fmt: skip
    recorder.handler = lambda request: httpx.Response(200, json=body)
    version = retarus.version()
    assert (version.build_number, version.major_version, version.message) == (7, 2030, "m")


# 16, 17, 18, 19: HTTP Simple query parameters, lowercase qos, bc and ref limits
@pytest.mark.parametrize(
    ("qos", "wire"), [(Qos.EXPRESS, "express"), ("NORMAL", "normal"), ("express", "express")]
)
def test_16_18_every_parameter_in_the_query_and_qos_lowercase(http_simple, recorder, qos, wire):
    recorder.handler = lambda request: httpx.Response(201, text="J.1")
    http_simple.send("+4917600000000", "Hi", qos=qos, dn=True)
    request = recorder.requests[0]
    assert request.content == b""
    assert request.url.params["qos"] == wire and request.url.params["user"] == "user"
    assert set(request.url.params) == {"user", "pass", "dst", "msg", "qos", "dn"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"qos": "urgent"}, "qos"),
        ({"bc": "b" * 71}, "bc"),
        ({"ref": "r" * 193}, "ref"),
        ({"ref": "ü" * 71}, "ref"),
        ({"src": "far too long sender"}, "src"),
    ],
)
def test_17_18_19_bad_parameters_are_refused_before_sending(http_simple, recorder, kwargs, field):
    with pytest.raises(InvalidRequest) as info:
        http_simple.send("+4917600000000", "Hi", **kwargs)
    assert info.value.field == field
    assert recorder.requests == []


@pytest.mark.parametrize("ref", ["r" * 192, "ü" * 70])
def test_19_ref_at_its_limit_goes_through(http_simple, recorder, ref):
    recorder.handler = lambda request: httpx.Response(201, text="J.1")
    http_simple.send("+4917600000000", "Hi", ref=ref)
    assert recorder.requests[0].url.params["ref"] == ref


@pytest.mark.parametrize("status", [400, 404])
def test_20_report_400_and_404_are_permanent(http_simple, recorder, status):
    from worker.errors import PermanentProviderError

    recorder.handler = lambda request: httpx.Response(status, text="no such job")
    with pytest.raises(PermanentProviderError) as info:
        http_simple.report("J.1")
    assert info.value.status_code == status


# 21, 22, 24, 25, 26: Sendmode JSON, required group, opt-out fields and flat answer, nullable answers
def test_25_26_opt_out_answer_is_read_at_the_top_level_with_nulls(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        200,
        json={
            "status": "OK",
            "statusCode": 0,
            "acceptedDateTime": None,
            "mobilenumber": "087",
            "optoutreason": None,
        },
    )
    answer = sendmode.opt_out("087", "STOP")
    assert (answer.mobilenumber, answer.optoutreason) == ("087", None)
    assert json.loads(recorder.requests[0].content) == {
        "message": {"mobilenumber": "087", "optoutresponse": "STOP"}
    }
    assert recorder.requests[0].headers["Content-Type"] == "application/json"


def test_23_credits_balance_is_a_float(sendmode, recorder):
    recorder.handler = lambda request: httpx.Response(
        200, json={"status": "OK", "statusCode": 0, "balance": 12.5}
    )
    assert float(sendmode.credits()) == 12.5
