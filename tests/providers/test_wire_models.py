"""The wire models: requests serialise to the contract JSON, responses tolerate what providers send."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from models.enums import Qos
from models.retarus import (
    JobListEntry,
    JobReport,
    JobRequest,
    JobResponse,
    Message,
    Options,
    Recipient,
    RecipientReport,
    VersionInfo,
)
from models.retarus_http import HttpSimpleReport, HttpSimpleSend
from models.sendmode import (
    SENDMODE_ERROR_CODES,
    CreditsResponse,
    ErrorKind,
    ImportData,
    ImportResponse,
    OptOut,
    SendmodeMessage,
    SendmodeSendResponse,
    error_code,
)

#: PROVIDERS.md 1.4, "Example (full, assembled from documented fields)".
FULL_JOB = """
{"options":{"src":"retarus","encoding":"STANDARD","billcode":"Campaign123","statusRequested":true,
  "flash":false,"customerRef":"InternalID: ABC1234","validityMin":2880,"maxParts":3,
  "invalidCharacters":"TRANSLITERATE","qos":"EXPRESS","jobPeriod":"2018-07-09T11:25:24.683+02:00",
  "duplicateDetection":true,"blackoutPeriods":["2018-10-25T18:00Z/2018-10-26T07:00Z"]},
 "messages":[{"text":"Hello","recipients":[{"dst":"+4917600000000","customerRef":"TransactionId: ABC123"}]}]}
"""


def test_the_full_contract_example_round_trips_exactly():
    contract = json.loads(FULL_JOB)
    assert JobRequest.model_validate(contract).model_dump(mode="json", exclude_none=True) == contract


def test_a_job_built_in_python_gives_the_contract_json():
    job = JobRequest(
        messages=[Message(text="Your access code is ABC1234", recipients=[Recipient(dst="+4917600000000")])],
        options=Options(
            qos=Qos.NORMAL,
            job_period=datetime(2018, 7, 9, 11, 25, 24, 683000, tzinfo=timezone(timedelta(hours=2))),
            validity_min=0,
        ),
    )
    assert job.model_dump(mode="json", exclude_none=True) == {
        "messages": [{"text": "Your access code is ABC1234", "recipients": [{"dst": "+4917600000000"}]}],
        "options": {"qos": "NORMAL", "jobPeriod": "2018-07-09T11:25:24.683+02:00", "validityMin": 0},
    }


@pytest.mark.parametrize(
    "options",
    [
        {"validityMin": 4},
        {"validityMin": 2881},
        {"maxParts": 0},
        {"maxParts": 21},
        {"billcode": "x" * 71},
        {"jobPeriod": "2018-07-09T11:25:24"},  # no offset
        {"qos": "express"},
        {"unknownOption": True},
    ],
)
def test_options_outside_the_contract_are_refused(options):
    with pytest.raises(ValidationError):
        Options.model_validate(options)


def test_a_job_over_3000_recipients_is_refused():
    recipients = [Recipient(dst=f"+49176{n:08d}") for n in range(1501)]
    with pytest.raises(ValidationError, match="at most 3000"):
        JobRequest(
            messages=[Message(text="a", recipients=recipients), Message(text="b", recipients=recipients)]
        )


def test_a_job_needs_a_message_and_a_recipient():
    with pytest.raises(ValidationError):
        JobRequest(messages=[])
    with pytest.raises(ValidationError):
        Message(text="x", recipients=[])


def test_responses_ignore_unknown_fields_and_leave_missing_ones_empty():
    report = JobReport.model_validate({"jobId": "J.1", "brandNew": [1, 2]})
    assert (report.job_id, report.receipt_ts, report.recipient_ids, report.finished) == (
        "J.1",
        None,
        [],
        False,
    )
    assert JobResponse.model_validate({"jobId": "J.1", "extra": 1}).job_id == "J.1"


def test_a_timestamp_without_offset_is_read_as_utc():
    report = RecipientReport.model_validate({"smsId": "S.1", "dst": "+49", "sentTs": "2022-09-28T10:58:30"})
    assert report.sent_ts == datetime(2022, 9, 28, 10, 58, 30, tzinfo=UTC)


def test_recipient_report_needs_no_field_and_reads_an_empty_status_as_none():
    for status in ({}, {"status": None}, {"status": ""}):
        report = RecipientReport.model_validate({"processStatus": "OPEN", **status})
        assert (report.sms_id, report.dst, report.status) == (None, None, None)


@pytest.mark.parametrize(
    "element", [{"jobId": "J.1"}, {"jobId": "J.1", "src": "x", "encoding": "standard"}, "J.1"]
)
def test_a_listing_element_yields_its_job_id(element):
    assert JobListEntry.model_validate(element).job_id == "J.1"


def test_version_and_error_bodies_are_all_optional():
    assert VersionInfo.model_validate({}).build_number is None


def test_http_simple_send_gives_query_params_with_lowercase_qos():
    params = HttpSimpleSend(dst="+49", msg="hi", bc="B", dn=False, qos=Qos.EXPRESS).query_params()
    assert params == [("dst", "+49"), ("msg", "hi"), ("bc", "B"), ("dn", "false"), ("qos", "express")]


@pytest.mark.parametrize("text", ["", "DONE SUC_ACC MORE", "<html>", "DONE: ok"])
def test_http_simple_report_refuses_other_bodies(text):
    with pytest.raises(ValueError):
        HttpSimpleReport.parse(text)


def test_sendmode_message_wire_json_leaves_unset_fields_out():
    message = SendmodeMessage(messagetext="Hello World", senderid="Sendmode", recipients=["0870000000"])
    assert message.to_wire() == {
        "messagetext": "Hello World",
        "senderid": "Sendmode",
        "recipients": ["0870000000"],
    }


def test_sendmode_responses_read_the_documented_examples():
    send = SendmodeSendResponse.model_validate_json(
        '{"status":"OK","statusCode":0,"acceptedDateTime":"2017-08-25T12:51:01.1808223+01:00",'
        '"message":{"senderid":"Sendmode","messagetext":"Hello World","customerid":null,"scheduledate":null,'
        '"recipients":["0870000000"]}}'
    )
    assert send.ok and send.message is not None and send.message.customerid is None
    imported = ImportResponse.model_validate_json(
        '{"status":"OK","statusCode":0,"acceptedDateTime":"2017-08-28T13:42:02.1757174+01:00",'
        '"group":"HELLO WORLD","importdata":{"mobilenumber":"0870000000","firstname":"Hello World",'
        '"surname":null,"dateofbirth":null}}'
    )
    assert imported.group == "HELLO WORLD" and imported.importdata is not None
    assert (
        str(CreditsResponse.model_validate_json('{"status":"OK","statusCode":0,"balance":10.25}').balance)
        == "10.25"
    )


@pytest.mark.parametrize("date", ["1990-12-31", "31/13/1990", "1/1/90"])
def test_import_date_of_birth_must_be_dd_mm_yyyy(date):
    with pytest.raises(ValidationError):
        ImportData(mobilenumber="0870000000", dateofbirth=date)


def test_opt_out_has_no_length_limit_and_no_optoutreason_field():
    assert (
        OptOut(mobilenumber="0870000000", optoutresponse="x" * 500).to_wire()["optoutresponse"] == "x" * 500
    )
    with pytest.raises(ValidationError):
        OptOut.model_validate({"mobilenumber": "0870000000", "optoutreason": "x"})


def test_the_error_table_kinds():
    kinds = {code: entry.kind for code, entry in SENDMODE_ERROR_CODES.items()}
    assert kinds[8] is ErrorKind.RETRYABLE
    assert kinds[14] is ErrorKind.AUTH and kinds[16] is ErrorKind.AUTH
    assert all(kinds[code] is ErrorKind.PERMANENT for code in (1, 10, 11, 18, 97, 104, 105, 195))
    assert error_code(999, "SOMETHING").identifier == "SOMETHING"
    assert error_code(999).kind is ErrorKind.PERMANENT
