"""The SMS job request: contract JSON out, one clear (field, rule) error for every broken rule."""

from __future__ import annotations

import copy
import string
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from models.enums import Encoding, InvalidCharacters, Qos
from models.intervals import parse_interval
from models.request import (
    MAX_RECIPIENTS_PER_JOB,
    JobOptions,
    Message,
    Recipient,
    SmsRequest,
    first_error,
    normalise_number,
)
from models.segments import GSM7_BASIC_CHARS, GSM7_EXTENSION_CHARS

DST = "+4917600000000"

#: PROVIDERS.md 1.4, "Example (full, assembled from documented fields)", verbatim.
FULL_EXAMPLE: dict[str, Any] = {
    "options": {
        "src": "retarus",
        "encoding": "STANDARD",
        "billcode": "Campaign123",
        "statusRequested": True,
        "flash": False,
        "customerRef": "InternalID: ABC1234",
        "validityMin": 2880,
        "maxParts": 3,
        "invalidCharacters": "TRANSLITERATE",
        "qos": "EXPRESS",
        "jobPeriod": "2018-07-09T11:25:24.683+02:00",
        "duplicateDetection": True,
        "blackoutPeriods": ["2018-10-25T18:00Z/2018-10-26T07:00Z"],
    },
    "messages": [{"text": "Hello", "recipients": [{"dst": DST, "customerRef": "TransactionId: ABC123"}]}],
}


def full_example() -> dict[str, Any]:
    return copy.deepcopy(FULL_EXAMPLE)


def refusal(data: Any, *, default_region: str = "DE") -> tuple[str, str]:
    with pytest.raises(ValidationError) as info:
        SmsRequest.from_json(data, default_region=default_region)
    return first_error(info.value)


# --- the contract JSON -------------------------------------------------------------------------------


def test_the_full_contract_example_round_trips_exactly() -> None:
    request = SmsRequest.from_json(full_example())
    assert request.to_retarus_json() == FULL_EXAMPLE
    assert request.options.job_period == datetime(
        2018, 7, 9, 11, 25, 24, 683000, timezone(timedelta(hours=2))
    )
    assert request.options.qos is Qos.EXPRESS


def test_the_minimal_example_gains_only_the_explicit_defaults() -> None:
    minimal = {"messages": [{"text": "Your access code is ABC1234", "recipients": [{"dst": DST}]}]}
    assert SmsRequest.from_json(minimal).to_retarus_json() == {
        **minimal,
        "options": {"encoding": "STANDARD", "qos": "NORMAL"},
    }


def test_json_text_is_accepted_as_well_as_parsed_json() -> None:
    text = '{"messages":[{"text":"hi","recipients":[{"dst":"0664 123456"}]}],"options":{"validityMin":0}}'
    request = SmsRequest.from_json(text, default_region="AT")
    assert request.messages[0].recipients[0].dst == "+43664123456"
    assert request.options.validity_min == 0


def test_python_names_and_objects_build_the_same_request() -> None:
    request = SmsRequest(
        messages=[
            Message(
                text="Hello",
                recipients=[Recipient(dst="0176 00000000", customer_ref="TransactionId: ABC123")],
            )
        ],
        options=JobOptions(
            src="retarus",
            billcode="Campaign123",
            status_requested=True,
            flash=False,
            customer_ref="InternalID: ABC1234",
            validity_min=2880,
            max_parts=3,
            invalid_characters=InvalidCharacters.TRANSLITERATE,
            qos=Qos.EXPRESS,
            job_period=datetime(2018, 7, 9, 11, 25, 24, 683000, timezone(timedelta(hours=2))),
            duplicate_detection=True,
            blackout_periods=[parse_interval("2018-10-25T18:00Z/2018-10-26T07:00Z")],
        ),
    )
    assert request.to_retarus_json() == FULL_EXAMPLE


@pytest.mark.parametrize(
    ("given_text", "sent_text"),
    [
        ("2030-01-01T10:00Z", "2030-01-01T10:00:00+00:00"),
        ("2030-01-01T10:00:00.5+01:00", "2030-01-01T10:00:00.500+01:00"),
        ("2030-01-01T10:00:00.123456-05:30", "2030-01-01T10:00:00.123456-05:30"),
    ],
)
def test_job_period_is_sent_as_iso_8601_with_its_offset(given_text: str, sent_text: str) -> None:
    data = full_example()
    data["options"]["jobPeriod"] = given_text
    sent = SmsRequest.from_json(data).to_retarus_json()["options"]["jobPeriod"]
    assert sent == sent_text
    assert datetime.fromisoformat(sent) == datetime.fromisoformat(given_text)


def test_the_request_is_immutable() -> None:
    request = SmsRequest.from_json(full_example())
    with pytest.raises(ValidationError):
        request.options.max_parts = 20  # type: ignore[misc]


# --- hypothesis: valid requests validate and serialise to the contract JSON ---------------------------

#: (region, E.164, national spelling) of valid mobile numbers.
NUMBERS = [
    ("DE", "+4915123456789", "01512 3456789"),
    ("DE", "+4917600000000", "0176 00000000"),
    ("AT", "+43664123456", "0664 123456"),
    ("CH", "+41781234567", "078 123 45 67"),
    ("GB", "+447400123456", "07400 123456"),
    ("FR", "+33612345678", "06 12 34 56 78"),
    ("NL", "+31612345678", "06 12345678"),
]
OFFSETS = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30))]
SENDER_ALNUM = string.ascii_letters + string.digits + " " + string.punctuation
#: What a billcode or customerRef may hold: any character but control characters (and surrogates).
PLAIN_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
#: What a UTF-16 text may hold: the same plus tab, line feed, carriage return and form feed.
TEXT_CHARS = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"), include_characters="\t\n\r\f")


def iso_text(moment: datetime, *, zulu: bool) -> str:
    timespec = "milliseconds" if moment.microsecond else "seconds" if moment.second else "minutes"
    text = moment.isoformat(timespec=timespec)
    return text.replace("+00:00", "Z") if zulu else text


@st.composite
def intervals(draw: st.DrawFn) -> str:
    start = draw(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)))
    start = start.replace(microsecond=start.microsecond // 1000 * 1000, tzinfo=draw(st.sampled_from(OFFSETS)))
    end = start + timedelta(milliseconds=draw(st.integers(1, 3 * 86_400_000)))
    zulu = draw(st.booleans())
    return f"{iso_text(start, zulu=zulu)}/{iso_text(end, zulu=zulu)}"


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """(JobRequest JSON as a producer writes it, default region, the JSON Retarus must receive)."""
    region = draw(st.sampled_from(sorted({number[0] for number in NUMBERS})))
    encoding = draw(st.sampled_from(list(Encoding)))
    max_parts = draw(optional(st.integers(1, 20)))
    options: dict[str, Any] = {
        "src": draw(
            optional(
                st.from_regex(r"\+?[0-9]{1,20}", fullmatch=True)
                | st.text(SENDER_ALNUM, min_size=1, max_size=11)
            )
        ),
        "encoding": encoding.value,
        "billcode": draw(optional(st.text(PLAIN_CHARS, max_size=70))),
        "statusRequested": draw(optional(st.booleans())),
        "flash": draw(optional(st.booleans())),
        "customerRef": draw(optional(st.text(PLAIN_CHARS, max_size=64))),
        "validityMin": draw(optional(st.just(0) | st.integers(5, 2880))),
        "maxParts": max_parts,
        "invalidCharacters": draw(optional(st.sampled_from([p.value for p in InvalidCharacters]))),
        "qos": draw(st.sampled_from([q.value for q in Qos])),
        "jobPeriod": None,
        "duplicateDetection": draw(optional(st.booleans())),
        "blackoutPeriods": draw(optional(st.lists(intervals(), max_size=3))),
    }
    moment = draw(optional(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1))))
    if moment is not None:
        moment = moment.replace(
            microsecond=draw(st.integers(1, 999)) * 1000, tzinfo=draw(st.sampled_from(OFFSETS))
        )
        options["jobPeriod"] = moment.isoformat(timespec="milliseconds")

    # Texts that fit maxParts (or the contract's 20) whatever each character costs.
    if encoding is Encoding.UTF16:
        units = 70 if max_parts == 1 else 67 * (max_parts or 20)
        alphabet = TEXT_CHARS
    else:
        units = 160 if max_parts == 1 else 153 * (max_parts or 20)
        alphabet = st.sampled_from(sorted(GSM7_BASIC_CHARS | GSM7_EXTENSION_CHARS))
    texts = st.text(alphabet, min_size=1, max_size=min(units // 2, 300)).filter(
        lambda text: text.strip() != ""
    )

    messages_in: list[dict[str, Any]] = []
    messages_out: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 3))):
        recipients_in: list[dict[str, Any]] = []
        recipients_out: list[dict[str, Any]] = []
        for _ in range(draw(st.integers(1, 3))):
            number_region, e164, national = draw(st.sampled_from(NUMBERS))
            dst = national if number_region == region and draw(st.booleans()) else e164
            extra = {
                "customerRef": draw(optional(st.text(PLAIN_CHARS, max_size=64))),
                "blackoutPeriods": draw(optional(st.lists(intervals(), max_size=2))),
            }
            extra = {key: value for key, value in extra.items() if value is not None}
            recipients_in.append({"dst": dst, **extra})
            recipients_out.append({"dst": e164, **extra})
        text = draw(texts)
        messages_in.append({"text": text, "recipients": recipients_in})
        messages_out.append({"text": text, "recipients": recipients_out})

    sent_options = {key: value for key, value in options.items() if value is not None}
    given_options = {key: value for key, value in options.items() if value is not None or draw(st.booleans())}
    return (
        {"messages": messages_in, "options": given_options},
        region,
        {"messages": messages_out, "options": sent_options},
    )


@settings(max_examples=100, deadline=None)
@given(valid_requests())
def test_valid_requests_validate_and_serialise_to_the_contract_json(
    case: tuple[dict[str, Any], str, dict[str, Any]],
) -> None:
    given_json, region, contract_json = case
    request = SmsRequest.from_json(given_json, default_region=region)
    assert request.to_retarus_json() == contract_json
    assert request.recipient_count == sum(len(message["recipients"]) for message in given_json["messages"])
    # What we send is itself a valid request that serialises to the same JSON.
    assert SmsRequest.from_json(contract_json, default_region=region).to_retarus_json() == contract_json


# --- invalid requests: one error naming the field and the rule ----------------------------------------

Patch = Callable[[dict[str, Any]], None]


def set_option(name: str, value: Any) -> Patch:
    def patch(data: dict[str, Any]) -> None:
        data["options"][name] = value

    return patch


def set_recipient(name: str, value: Any) -> Patch:
    def patch(data: dict[str, Any]) -> None:
        data["messages"][0]["recipients"][0][name] = value

    return patch


def set_text(value: str) -> Patch:
    def patch(data: dict[str, Any]) -> None:
        data["messages"][0]["text"] = value

    return patch


def add_recipients(count: int) -> Patch:
    def patch(data: dict[str, Any]) -> None:
        data["messages"].append({"text": "second", "recipients": [{"dst": DST}] * count})

    return patch


INVALID: list[tuple[str, Patch, str, str]] = [
    ("billcode 71", set_option("billcode", "b" * 71), "options.billcode", "must be at most 70 characters"),
    (
        "customerRef 65",
        set_option("customerRef", "c" * 65),
        "options.customerRef",
        "must be at most 64 characters",
    ),
    (
        "recipient customerRef 65",
        set_recipient("customerRef", "c" * 65),
        "messages.0.recipients.0.customerRef",
        "must be at most 64 characters",
    ),
    *[
        (
            f"validityMin {value}",
            set_option("validityMin", value),
            "options.validityMin",
            "must be 0 or between 5 and 2880",
        )
        for value in (1, 2, 3, 4, 2881, -1)
    ],
    ("validityMin 7.5", set_option("validityMin", 7.5), "options.validityMin", "must be a whole number"),
    ("maxParts 0", set_option("maxParts", 0), "options.maxParts", "must be between 1 and 20"),
    ("maxParts 21", set_option("maxParts", 21), "options.maxParts", "must be between 1 and 20"),
    (
        "3001 recipients",
        add_recipients(MAX_RECIPIENTS_PER_JOB),  # plus the one already there
        "messages",
        "has 3001 recipients in total but a job may have at most 3000",
    ),
    ("bad qos", set_option("qos", "FAST"), "options.qos", "must be 'EXPRESS' or 'NORMAL'"),
    (
        "lowercase encoding",
        set_option("encoding", "utf-16"),
        "options.encoding",
        "must be 'STANDARD' or 'UTF-16'",
    ),
    (
        "bad invalidCharacters",
        set_option("invalidCharacters", "DROP"),
        "options.invalidCharacters",
        "must be ",
    ),
    ("bad flag", set_option("flash", "sometimes"), "options.flash", "must be true or false"),
    (
        "blackout start after end",
        set_option("blackoutPeriods", ["2030-01-01T10:00Z/2030-01-01T09:00Z"]),
        "options.blackoutPeriods.0",
        "interval start must be before its end",
    ),
    (
        "blackout start equals end",
        set_option("blackoutPeriods", ["2030-01-01T10:00Z/2030-01-01T11:00+01:00"]),
        "options.blackoutPeriods.0",
        "interval start must be before its end",
    ),
    (
        "naive blackout",
        set_option(
            "blackoutPeriods", ["2030-01-01T10:00Z/2030-01-01T11:00Z", "2030-01-02T10:00/2030-01-02T11:00"]
        ),
        "options.blackoutPeriods.1",
        "must carry a UTC offset",
    ),
    (
        "blackout without a slash",
        set_option("blackoutPeriods", ["2030-01-01T10:00Z"]),
        "options.blackoutPeriods.0",
        "must be an ISO-8601 interval",
    ),
    (
        "naive recipient blackout",
        set_recipient("blackoutPeriods", ["2030-01-01T10:00/2030-01-01T11:00Z"]),
        "messages.0.recipients.0.blackoutPeriods.0",
        "must carry a UTC offset",
    ),
    (
        "naive jobPeriod",
        set_option("jobPeriod", "2030-01-01T10:00:00"),
        "options.jobPeriod",
        "must carry a UTC offset",
    ),
    (
        "jobPeriod not a time",
        set_option("jobPeriod", "tomorrow"),
        "options.jobPeriod",
        "must be an ISO-8601 timestamp",
    ),
    (
        "jobPeriod a number",
        set_option("jobPeriod", 1893492000),
        "options.jobPeriod",
        "must be an ISO-8601 timestamp",
    ),
    *[
        (f"sender id {src!r}", set_option("src", src), "options.src", "must be a numeric sender id")
        for src in (
            "",
            "TwelveChars!",
            "+123456789012345678901",
            "123456789012345678901",
            "Müller",
            "ab\tc",
            "ab\nc",
        )
    ],
    ("empty text", set_text(""), "messages.0.text", "must not be empty or only whitespace"),
    ("whitespace text", set_text(" \n\t "), "messages.0.text", "must not be empty or only whitespace"),
    ("too many segments", set_text("x" * 307), "messages.0.text", "needs 3 SMS parts but maxParts is 2"),
    (
        "invalid number",
        set_recipient("dst", "12345"),
        "messages.0.recipients.0.dst",
        "not a valid phone number for region DE",
    ),
    (
        "not a number",
        set_recipient("dst", "call me"),
        "messages.0.recipients.0.dst",
        "not a valid phone number",
    ),
    (
        "invalid international number",
        set_recipient("dst", "+999 1234"),
        "messages.0.recipients.0.dst",
        "not a valid phone number",
    ),
    (
        "unknown option",
        set_option("priority", "high"),
        "options.priority",
        "is not a field of the job request",
    ),
    (
        "missing dst",
        lambda data: data["messages"][0]["recipients"][0].pop("dst"),
        "messages.0.recipients.0.dst",
        "is required",
    ),
    (
        "no recipients",
        lambda data: data["messages"][0].update(recipients=[]),
        "messages.0.recipients",
        "must not be empty",
    ),
    ("no messages", lambda data: data.update(messages=[]), "messages", "must not be empty"),
]


@pytest.mark.parametrize(
    ("patch", "field", "rule"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_a_broken_rule_is_refused_naming_the_field_and_the_rule(patch: Patch, field: str, rule: str) -> None:
    data = full_example()
    data["options"]["maxParts"] = 2
    patch(data)
    got_field, got_rule = refusal(data)
    assert got_field == field
    assert got_rule.startswith(rule)


@pytest.mark.parametrize(
    ("options", "text", "rule"),
    [
        ({}, "x" * 3059 + "€", "needs 21 SMS parts but at most 20 are allowed"),
        ({}, "x" * 3061, "needs more than 20 SMS parts: it is longer than 3060 characters"),
        ({"encoding": "UTF-16", "maxParts": 1}, "x" * 71, "needs 2 SMS parts but maxParts is 1"),
        ({"invalidCharacters": "TO_UTF16", "maxParts": 1}, "ж" * 71, "needs 2 SMS parts but maxParts is 1"),
        ({"maxParts": 1}, "€" * 81, "needs 2 SMS parts but maxParts is 1"),
        (
            {"invalidCharacters": "REFUSE"},
            "Hello ж",
            "text contains characters outside GSM-7: first 'ж' (U+0436) (invalidCharacters=REFUSE)",
        ),
    ],
)
def test_segments_are_counted_with_the_jobs_encoding_and_invalid_characters(
    options: dict[str, Any], text: str, rule: str
) -> None:
    data = {
        "messages": [
            {"text": "fine", "recipients": [{"dst": DST}]},
            {"text": text, "recipients": [{"dst": DST}]},
        ],
        "options": options,
    }
    assert refusal(data) == ("messages.1.text", rule)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({}, "x" * 3060),
        ({"maxParts": 1}, "€" * 80),
        ({"invalidCharacters": "REPLACE", "maxParts": 1}, "ж" * 160),
        ({"invalidCharacters": "TRANSLITERATE", "maxParts": 1}, "ж" * 160),
        ({"encoding": "UTF-16", "maxParts": 2}, "ж" * 134),
    ],
)
def test_texts_that_fit_their_parts_are_accepted(options: dict[str, Any], text: str) -> None:
    data = {"messages": [{"text": text, "recipients": [{"dst": DST}]}], "options": options}
    assert SmsRequest.from_json(data).messages[0].text == text


@pytest.mark.parametrize(
    "src", ["retarus", "+491701234567", "12345678901234567890", "A B-C.D!", "`~{}|", "x"]
)
def test_sender_ids_of_the_contract_pattern_are_accepted(src: str) -> None:
    data = full_example()
    data["options"]["src"] = src
    assert SmsRequest.from_json(data).options.src == src


@pytest.mark.parametrize(
    ("value", "accepted"), [(0, True), (5, True), (2880, True), (4, False), (2881, False)]
)
def test_validity_min_bounds(value: int, accepted: bool) -> None:
    data = full_example()
    data["options"]["validityMin"] = value
    if accepted:
        assert SmsRequest.from_json(data).options.validity_min == value
    else:
        assert refusal(data)[0] == "options.validityMin"


def test_3000_recipients_are_accepted() -> None:
    data = full_example()
    data["messages"].append({"text": "second", "recipients": [{"dst": DST}] * (MAX_RECIPIENTS_PER_JOB - 1)})
    assert SmsRequest.from_json(data).recipient_count == MAX_RECIPIENTS_PER_JOB


def test_the_recipient_limit_also_holds_for_requests_built_from_objects() -> None:
    recipients = [Recipient(dst=DST)] * 1500
    with pytest.raises(ValidationError) as info:
        SmsRequest(
            messages=[
                Message(text="a", recipients=recipients),
                Message(text="b", recipients=[*recipients, recipients[0]]),
            ]
        )
    assert first_error(info.value) == (
        "messages",
        "has 3001 recipients in total but a job may have at most 3000",
    )


def test_national_numbers_take_the_default_region() -> None:
    data = full_example()
    data["messages"][0]["recipients"][0]["dst"] = "0151 23456789"
    assert SmsRequest.from_json(data).messages[0].recipients[0].dst == "+4915123456789"
    assert refusal(data, default_region="US") == (
        "messages.0.recipients.0.dst",
        "not a valid phone number for region US",
    )
    # Numbers with a country code ignore the default region.
    data["messages"][0]["recipients"][0]["dst"] = "+49 151 23456789"
    assert SmsRequest.from_json(data, default_region="US").messages[0].recipients[0].dst == "+4915123456789"


def test_the_default_region_is_read_from_the_validation_context() -> None:
    data = {"messages": [{"text": "hi", "recipients": [{"dst": "0664 123456"}]}]}
    request = SmsRequest.model_validate(data, context={"default_region": "AT"})
    assert request.messages[0].recipients[0].dst == "+43664123456"
    assert Recipient(dst="0176 00000000").dst == DST  # no context: DE


def test_an_unknown_default_region_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="must be an ISO 3166 alpha-2 region"):
        SmsRequest.from_json(full_example(), default_region="XX")
    with pytest.raises(ValueError, match="must be an ISO 3166 alpha-2 region"):
        normalise_number("0176 00000000", "Germany")


def test_errors_name_the_field_as_the_caller_spelled_it() -> None:
    data = full_example()
    del data["options"]["validityMin"]
    data["options"]["validity_min"] = 3
    assert refusal(data) == ("options.validity_min", "must be 0 or between 5 and 2880")


def test_errors_never_echo_phone_numbers_or_text() -> None:
    data = full_example()
    data["messages"][0]["recipients"][0]["dst"] = "+49 1234"
    data["messages"].append({"text": "secret code 98765 " * 200, "recipients": [{"dst": DST}]})
    with pytest.raises(ValidationError) as info:
        SmsRequest.from_json(data)
    shown = f"{info.value}{info.value!r}{first_error(info.value)}"
    assert "1234" not in shown
    assert "98765" not in shown


def test_rule_errors_keep_their_field_when_the_request_is_nested() -> None:
    class Envelope(BaseModel):
        request: SmsRequest

    data = full_example()
    data["messages"][0]["text"] = "x" * 500
    with pytest.raises(ValidationError) as info:
        Envelope.model_validate({"request": data})
    assert first_error(info.value) == ("request.messages.0.text", "needs 4 SMS parts but maxParts is 3")


def test_a_naive_datetime_object_for_job_period_is_refused() -> None:
    with pytest.raises(ValidationError) as info:
        JobOptions(job_period=datetime(2030, 1, 1, 10, 0))
    assert first_error(info.value) == ("job_period", "must carry a UTC offset such as Z or +01:00")


def test_a_request_that_is_not_an_object_is_named_as_the_whole_request() -> None:
    with pytest.raises(ValidationError) as info:
        SmsRequest.model_validate(["not", "an", "object"])
    assert first_error(info.value) == ("request", "must be an object")


# --- blackout periods ---------------------------------------------------------------------------------


def test_recipient_blackouts_replace_the_jobs() -> None:
    job_period = "2030-01-01T18:00Z/2030-01-02T07:00Z"
    own_period = "2030-01-01T20:00+01:00/2030-01-01T21:00+01:00"
    data = {
        "messages": [
            {
                "text": "hi",
                "recipients": [
                    {"dst": DST},
                    {"dst": "+4915123456789", "blackoutPeriods": [own_period]},
                    {"dst": "+43664123456", "blackoutPeriods": []},
                ],
            }
        ],
        "options": {"blackoutPeriods": [job_period]},
    }
    request = SmsRequest.from_json(data)
    inherits, own, none = request.messages[0].recipients
    assert request.effective_blackouts(inherits) == [parse_interval(job_period)]
    assert request.effective_blackouts(own) == [parse_interval(own_period)]
    assert request.effective_blackouts(none) == []
    assert [str(period) for period in request.effective_blackouts(own)] == [own_period]


def test_no_blackouts_anywhere_means_none_apply() -> None:
    request = SmsRequest.from_json({"messages": [{"text": "hi", "recipients": [{"dst": DST}]}]})
    assert request.effective_blackouts(request.messages[0].recipients[0]) == []
