"""Hostile requests (issue 15): every input either validates to a clean SmsRequest or is refused as a
pydantic ValidationError that `first_error` names as (field, rule). No other exception, ever.

The generated suite starts from valid requests and breaks them: wrong types, NUL, unpaired surrogates,
control characters, huge strings, timestamps at and beyond the edges of datetime, extra, mis-cased and
poisoned keys, deep nesting, JSON text and raw bytes. A request that is accepted must hold only strings
that encode as UTF-8 without NUL or control characters, serialise to JSON and read back to itself, and
leave room for the worst datetime arithmetic the scheduler does on it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from models.enums import Encoding, InvalidCharacters, Qos
from models.intervals import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_UTC_OFFSET,
    Interval,
    check_timestamp,
    parse_datetime,
    parse_interval,
)
from models.request import (
    SmsRequest,
    check_characters,
    check_connection_name,
    check_idempotency_key,
    check_region,
    first_error,
)

EXAMPLES = 2500
DST = "+4917600000000"
NUMBERS = ["+4917600000000", "0176 00000000", "+43664123456", "+447400123456", "0049 151 23456789"]
VALID_DATES = ["2018-07-09T11:25:24.683+02:00", "2030-01-01T10:00Z", "2030-06-30T23:59:59.999999-05:30"]
VALID_BLACKOUTS = ["2018-10-25T18:00Z/2018-10-26T07:00Z", "2030-01-01T18:00+01:00/2030-01-02T07:00+01:00"]
#: Characters no string of an accepted request may hold (a message text may hold \t \n \r \f).
POISON = ["\x00", "\ud800", "\udfff", "\udc80", "\x1b", "\x01", "\x7f", "\x85", "\x9f", "\x0b"]
#: Characters that are fine: must never make the check crash, whether accepted or refused by a rule.
ODD = ["\u2028", "\ufeff", "\u200b", "\U0001f600", "\uffff", "\ue000", "€", "ж", " ", "\t", "\n", "\r", "\f"]
ALLOWED_TEXT_CONTROLS = set("\t\n\r\f")
KEYS = [
    "messages", "options", "text", "recipients", "dst", "customerRef", "blackoutPeriods", "src", "encoding",
    "billcode", "statusRequested", "flash", "validityMin", "maxParts", "invalidCharacters", "qos",
    "jobPeriod", "duplicateDetection",
]  # fmt: skip

#: The worst arithmetic the scheduler does on a request's times: to UTC, plus the longest validity, a
#: blackout shift to an end and a 1-hour expansion of a short period, a poll grace, and a listing
#: window either way.
LONGEST_VALIDITY = timedelta(minutes=2880)
WORST_SHIFT = timedelta(hours=1) + timedelta(hours=1) + timedelta(days=1)
LISTING_WINDOW = timedelta(days=31)


# --- strategies -----------------------------------------------------------------------------------

OFFSETS = st.builds(
    timezone,
    st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)),
)
#: Offsets a timestamp may name: whole minutes within +-18:00.
ALLOWED_OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-18 * 60, 18 * 60)
)

EDGE_TIMESTAMP_TEXTS = [
    "0001-01-01T00:00Z", "0001-01-01T00:00+18:00", "0001-01-01T00:00:00+23:59", "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:00Z", "1970-01-01T00:59+01:00", "1970-01-01T01:00+01:00", "2099-12-31T23:59:59.999999Z",
    "2099-12-31T05:59:59.999-18:00", "2099-12-31T06:00-18:00", "2100-01-01T00:00Z", "2100-01-01T17:59+18:00",
    "9999-12-31T23:59:59.999999Z", "9999-12-31T23:59-23:59", "9999-12-31T23:59+23:59", "9999-12-31T23:59Z",
    "2030-01-01T10:00+18:00", "2030-01-01T10:00-18:00", "2030-01-01T10:00+18:01", "2030-01-01T10:00+05:30:30",
    "2030-01-01T10:00z", "2030-01-01t10:00Z", "20300101T1000Z", "2030-01-01 10:00Z", "2030-01-01T10:00",
    "2030-01-01", "2030-02-30T10:00Z", "2030-01-01T24:00Z", "+2030-01-01T10:00Z", "２０３０-01-01T10:00Z",
    "2030-01-01T10:00:00.1234567891Z", " 2030-01-01T10:00Z ", "2030-01-01T10:00Z\n", "", "/", "Z",
]  # fmt: skip


@st.composite
def timestamp_texts(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 3))
    if kind == 0:
        return draw(st.sampled_from(EDGE_TIMESTAMP_TEXTS))
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)))
    tz = draw(OFFSETS if kind == 1 else ALLOWED_OFFSETS)
    text = moment.replace(tzinfo=tz).isoformat(timespec=draw(st.sampled_from(["minutes", "seconds", "auto"])))
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


@st.composite
def timestamp_objects(draw: st.DrawFn) -> object:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)))
    return moment.replace(tzinfo=draw(st.none() | OFFSETS | ALLOWED_OFFSETS))


@st.composite
def interval_values(draw: st.DrawFn) -> object:
    kind = draw(st.integers(0, 3))
    if kind == 3:  # an Interval object, as Python callers may pass one
        start = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
        start = start.replace(tzinfo=draw(OFFSETS | ALLOWED_OFFSETS))
        end = start.replace(year=min(start.year + draw(st.integers(0, 2)), 9999), day=min(start.day + 1, 28))
        try:
            return Interval(start, end, draw(st.sampled_from(["", f"{start.isoformat()}/{end.isoformat()}"])))
        except ValueError:
            return "broken"
    first, second = draw(timestamp_texts()), draw(timestamp_texts())
    separator = draw(st.sampled_from(["/", "/", "/", "//", " / ", "--", "/\x00"]))
    return f"{first}{separator}{second}"


def poisoned(text: str, char: str, where: int) -> str:
    at = where % (len(text) + 1)
    return text[:at] + char + text[at:]


HOSTILE_CHARS = st.sampled_from(POISON + ODD) | st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Co"])
HOSTILE_STRINGS = st.one_of(
    st.text(max_size=30),
    st.text(HOSTILE_CHARS, min_size=1, max_size=10),
    st.text(st.characters(codec="utf-8") | HOSTILE_CHARS, max_size=80),
    st.sampled_from(["3", "5.0", "true", "null", "", " ", "STANDARD", "standard", "UTF-16", "EXPRESS", "+49"]),
    st.builds(lambda c, n: c * n, st.sampled_from(["x", "€", "ж", "\x00", "\ud800", "+49", "1", " "]),
              st.sampled_from([65, 71, 101, 161, 3061, 10_000, 1_000_000])),
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 3, 4, 5, 20, 21, 2880, 2881, -1, 5.0, 3.0, 2880.5, float("nan"), float("inf")]),
    st.floats(),
    st.builds(Decimal, st.sampled_from(["3", "5", "1e3"])),
    st.binary(max_size=12),
    st.sampled_from([b"+4917600000000", b"Hello", bytearray(b"3"), memoryview(b"x")]),
    st.sampled_from([Encoding.UTF16, Qos.EXPRESS, InvalidCharacters.REFUSE, object(), type, ...]),
    HOSTILE_STRINGS,
    timestamp_texts(),
    timestamp_objects(),
)


def deep(depth: int, kind: int) -> object:
    value: object = "x"
    for _ in range(depth):
        value = [value] if kind == 0 else {"messages": value}
    return value


HOSTILE_VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.tuples(SCALARS),
    st.frozensets(st.integers(), max_size=2),
    st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), SCALARS, max_size=3),
    st.builds(deep, st.sampled_from([2, 50, 210]), st.integers(0, 1)),
)


@st.composite
def valid_requests(draw: st.DrawFn, region: str = "DE") -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, values in [
        ("src", st.sampled_from(["retarus", "+491234", "Shop 24"])),
        ("encoding", st.sampled_from(["STANDARD", "UTF-16"])),
        ("billcode", st.sampled_from(["Campaign123", "", "b" * 70])),
        ("statusRequested", st.booleans()),
        ("flash", st.booleans()),
        ("customerRef", st.sampled_from(["InternalID: ABC1234", "c" * 64])),
        ("validityMin", st.sampled_from([0, 5, 60, 2880])),
        ("maxParts", st.integers(1, 20)),
        ("invalidCharacters", st.sampled_from([p.value for p in InvalidCharacters])),
        ("qos", st.sampled_from(["EXPRESS", "NORMAL"])),
        ("jobPeriod", st.sampled_from(VALID_DATES)),
        ("duplicateDetection", st.booleans()),
        ("blackoutPeriods", st.lists(st.sampled_from(VALID_BLACKOUTS), max_size=2)),
    ]:
        if draw(st.booleans()):
            options[key] = draw(values)
    messages = []
    for _ in range(draw(st.integers(1, 2))):
        recipients = []
        for _ in range(draw(st.integers(1, 2))):
            numbers = NUMBERS if region.upper() == "DE" else [n for n in NUMBERS if n.startswith(("+", "00"))]
            recipient: dict[str, Any] = {"dst": draw(st.sampled_from(numbers))}
            if draw(st.booleans()):
                recipient["customerRef"] = draw(st.sampled_from(["TransactionId: ABC123", "r-1"]))
            if draw(st.booleans()):
                recipient["blackoutPeriods"] = draw(st.lists(st.sampled_from(VALID_BLACKOUTS), max_size=1))
            recipients.append(recipient)
        messages.append(
            {
                "text": draw(st.sampled_from(["Hello", "Your code is 1234", "Grüße\nab"])),
                "recipients": recipients,
            }
        )
    data: dict[str, Any] = {"messages": messages}
    if options or draw(st.booleans()):  # type: ignore[arg-type]  # mypy mixes up the generic draws
        data["options"] = options
    return data


def positions(value: object, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside `value` (dict keys and list indexes), down to a depth of 8."""
    if len(path) >= 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from positions(item, (*path, index))


def container_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def recase(key: str, how: int) -> str:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in key)
    return [key.upper(), key.lower(), key[:1].upper() + key[1:], snake, f"{key} ", f"{key}\x00", f"\ud800{key}",
            key * 1000, ""][how % 9]  # fmt: skip


@st.composite
def mutate(draw: st.DrawFn, data: dict[str, Any]) -> None:
    """Break `data` in place, one way."""
    paths = list(positions(data))
    if not paths:  # every key already deleted
        data[draw(st.sampled_from(KEYS))] = draw(HOSTILE_VALUES)
        return
    leaves = [p for p in paths if not isinstance(container_at(data, p)[p[-1]], dict | list)]
    # Mostly a leaf (a string, number or flag): breaking a whole subtree hides everything inside it.
    mostly_leaves: int = draw(st.integers(0, 3))
    path = draw(st.sampled_from(leaves if leaves and mostly_leaves else paths))
    container, last = container_at(data, path), path[-1]
    kind = draw(st.integers(0, 9))
    if kind <= 2:  # any hostile value anywhere
        container[last] = draw(HOSTILE_VALUES)
    elif kind == 3:  # poison a string that is there, or the nearest place a string goes
        strings = [p for p in paths if isinstance(container_at(data, p)[p[-1]], str)]
        target = draw(st.sampled_from(strings)) if strings else path
        holder = container_at(data, target)
        current = holder[target[-1]]
        holder[target[-1]] = poisoned(
            current if isinstance(current, str) else "x", draw(HOSTILE_CHARS), draw(st.integers(0, 99))
        )
    elif kind == 4:  # timestamps at the edges
        options = data.setdefault("options", {}) if isinstance(data.get("options", {}), dict) else {}
        if draw(st.booleans()):
            options["jobPeriod"] = draw(timestamp_texts() | timestamp_objects())
            options.setdefault("validityMin", 2880)
        else:
            options["blackoutPeriods"] = draw(st.lists(interval_values(), min_size=1, max_size=2))
    elif kind == 5 and isinstance(container, dict):  # extra, mis-cased or poisoned keys
        key = last if isinstance(last, str) else "messages"
        new_key = (
            recase(key, draw(st.integers(0, 8)))
            if draw(st.booleans())
            else draw(st.text(HOSTILE_CHARS | st.characters(), max_size=5))
        )
        value = container.pop(last) if draw(st.booleans()) else draw(SCALARS)
        container[new_key] = value
    elif kind == 6 and isinstance(container, dict):  # a required or optional key missing
        del container[last]
    elif kind == 7:  # nesting: the right value wrapped once more
        container[last] = draw(
            st.sampled_from([[container[last]], {"value": container[last]}, (container[last],)])
        )
    elif kind == 8:  # the contract's loose spellings of numbers and booleans
        options = data.get("options")
        if isinstance(options, dict):
            key = draw(
                st.sampled_from(["validityMin", "maxParts", "flash", "statusRequested", "duplicateDetection"])
            )
            options[key] = draw(
                st.sampled_from(["3", 3.0, 5.0, "5", True, False, 1, 0, "true", "yes", None, 2**64])
            )
    else:  # a text at the edge of the SMS limits
        message = data["messages"][0] if isinstance(data.get("messages"), list) and data["messages"] else None
        if isinstance(message, dict):
            message["text"] = draw(
                st.builds(
                    lambda c, n: c * n,
                    st.sampled_from(["x", "€", "ж", "\U0001f600", " "]),
                    st.sampled_from([1, 70, 71, 153, 160, 161, 1340, 1341, 3059, 3060, 3061, 20_000]),
                )
            )


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[object, str]:
    """(request as a mapping, JSON text, bytes or junk; default region)."""
    region = draw(st.sampled_from(["DE", "DE", "AT", "gb"]))
    shape = draw(st.integers(0, 19))
    if shape == 0:  # not a request at all
        return draw(
            HOSTILE_VALUES | st.sampled_from([b"\xff\xfe{", b'{"messages": [', "[]", "null", "{}", '"x"'])
        ), region
    data = draw(valid_requests(region))
    for _ in range(draw(st.integers(0 if shape == 1 else 1, 3))):
        draw(mutate(data))
    if shape <= 4:  # as JSON text (lone surrogates become \ud800 escapes) or UTF-8 bytes
        try:
            text = json.dumps(data)
        except (TypeError, ValueError, RecursionError):  # bytes, objects, NaN is fine, 3000 levels are not
            return data, region
        return (text.encode() if shape == 2 else text), region
    return data, region


# --- what every outcome must satisfy --------------------------------------------------------------


def strings_in(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(key)
            yield from strings_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def assert_clean(text: str, *, message_text: bool = False) -> None:
    text.encode("utf-8")  # raises on an unpaired surrogate
    assert "\x00" not in text
    controls = {c for c in text if c < " " or "\x7f" <= c <= "\x9f"}
    assert controls <= (ALLOWED_TEXT_CONTROLS if message_text else set()), controls


def assert_no_overflow(moment: datetime) -> None:
    """The worst arithmetic later code does on an accepted time must not overflow."""
    assert EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP
    utc = moment.astimezone(UTC)
    latest = utc + LONGEST_VALIDITY + WORST_SHIFT + LISTING_WINDOW
    earliest = utc - LISTING_WINDOW - WORST_SHIFT
    assert earliest < latest
    latest.timestamp(), earliest.timestamp()
    (
        moment.isoformat(),
        latest.astimezone(timezone(MAX_UTC_OFFSET)),
        earliest.astimezone(timezone(-MAX_UTC_OFFSET)),
    )


def check_accepted(request: SmsRequest, region: str) -> None:
    body = request.to_retarus_json()
    for message in body["messages"]:
        assert_clean(message["text"], message_text=True)
    for text in strings_in(body):
        if not any(text == message["text"] for message in body["messages"]):
            assert_clean(text)
    wire = json.dumps(body, ensure_ascii=False).encode("utf-8")
    assert json.loads(wire) == body
    # What is stored and sent reads back to the same request (it is what the worker re-parses).
    assert SmsRequest.from_json(wire, default_region=region).to_retarus_json() == body
    options = request.options
    times = [options.job_period] if options.job_period else []
    periods = list(options.blackout_periods or [])
    for message in request.messages:
        for recipient in message.recipients:
            periods += request.effective_blackouts(recipient)
    times += [moment for period in periods for moment in (period.start, period.end)]
    for moment in times:
        assert_no_overflow(moment)
    texts: list[str] = [body["options"]["jobPeriod"]] if options.job_period else []
    for text in [*texts, *map(str, periods)]:
        if text:
            parse_interval(text, strict=True) if "/" in text else parse_datetime(text, strict=True)


def check_refused(exc: ValidationError) -> tuple[str, str]:
    field, rule = first_error(exc)
    assert field and rule
    for part in (field, rule):
        assert_clean(part)
        assert len(part) <= 2000
    return field, rule


def outcome(data: object, region: str) -> str:
    """'accepted' or 'refused'; any other exception propagates and fails the test."""
    try:
        request = SmsRequest.from_json(data, default_region=region)  # type: ignore[arg-type]
    except ValidationError as exc:
        check_refused(exc)
        return "refused"
    check_accepted(request, region)
    return "accepted"


FIXED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def test_generated_hostile_requests_are_accepted_clean_or_refused_with_field_and_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    outcomes: Counter[str] = Counter()
    fields: Counter[str] = Counter()

    @FIXED
    @given(hostile_requests())
    def run(case: tuple[object, str]) -> None:
        data, region = case
        result = outcome(data, region)
        outcomes[result] += 1
        if result == "refused":
            try:
                SmsRequest.from_json(data, default_region=region)  # type: ignore[arg-type]
            except ValidationError as exc:
                fields[first_error(exc)[0].split(".")[-1]] += 1

    run()
    total = sum(outcomes.values())
    with capsys.disabled():
        print(
            f"\nhostile requests: {total} run, {outcomes['refused']} refused, {outcomes['accepted']} accepted"
        )
        print("refused at:", ", ".join(f"{field} {n}" for field, n in fields.most_common(12)))
    assert total >= 2000
    assert outcomes["refused"] >= total * 0.6
    assert (
        outcomes["accepted"] >= 50
    )  # mutations that keep a request valid (a snake_case key, a fine character)


# --- the cases issue 15 names ---------------------------------------------------------------------


def base() -> dict[str, Any]:
    return {
        "messages": [{"text": "hi there", "recipients": [{"dst": DST, "customerRef": "r-1"}]}],
        "options": {},
    }


def with_option(key: str, value: object) -> dict[str, Any]:
    data = base()
    data["options"][key] = value
    return data


def with_text(text: str) -> dict[str, Any]:
    data = base()
    data["messages"][0]["text"] = text
    return data


def with_recipient_ref(ref: str) -> dict[str, Any]:
    data = base()
    data["messages"][0]["recipients"][0]["customerRef"] = ref
    return data


@pytest.mark.parametrize(
    ("data", "field", "rule"),
    [
        (with_text("hi \ud800 there"), "messages.0.text", "must not contain unpaired surrogates"),
        (with_text("hi \x00 there"), "messages.0.text", "must not contain NUL characters"),
        (with_text("hi \x1b[31m there"), "messages.0.text", "must not contain control characters other than"),
        (with_option("billcode", "a\x00b"), "options.billcode", "must not contain NUL characters"),
        (with_option("customerRef", "a\x00b"), "options.customerRef", "must not contain NUL characters"),
        (
            with_recipient_ref("a\x00b"),
            "messages.0.recipients.0.customerRef",
            "must not contain NUL characters",
        ),
        (
            with_recipient_ref("a\nb"),
            "messages.0.recipients.0.customerRef",
            "must not contain control characters",
        ),
        (with_option("maxParts", "3"), "options.maxParts", "must be a whole number"),
        (with_option("maxParts", 3.0), "options.maxParts", "must be a whole number"),
        (with_option("validityMin", 5.0), "options.validityMin", "must be a whole number"),
        (with_option("validityMin", True), "options.validityMin", "must be a whole number"),
        (with_option("flash", 1), "options.flash", "must be true or false"),
        (with_option("flash", "true"), "options.flash", "must be true or false"),
        (with_option("billcode", b"abc"), "options.billcode", "must be a string"),
        (with_option("jobPeriod", "9999-12-31T23:59-23:59"), "options.jobPeriod", "must have a UTC offset"),
        (with_option("jobPeriod", "9999-12-31T23:59Z"), "options.jobPeriod", "must lie between 1970"),
        (with_option("jobPeriod", "2100-01-01T00:00Z"), "options.jobPeriod", "must lie between 1970"),
        (with_option("jobPeriod", "0001-01-01T00:00+01:00"), "options.jobPeriod", "must lie between 1970"),
        (
            with_option("jobPeriod", "20300101T1000Z"),
            "options.jobPeriod",
            "must be written as the contract does",
        ),
        (
            with_option("jobPeriod", datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-5)))),
            "options.jobPeriod",
            "must lie between 1970",
        ),
        (
            with_option("blackoutPeriods", ["2099-12-31T23:00Z/9999-12-31T23:59Z"]),
            "options.blackoutPeriods.0",
            "must lie between 1970",
        ),
        (with_text("x" * 1_000_000), "messages.0.text", "needs more than 20 SMS parts"),
        ({**base(), "k\x00" * 100: 1}, "k\\x00" * 32 + "...", "is not a field of the job request"),
        ({**base(), "\ud800": 1}, "request", "must not contain unpaired surrogates"),
        ({**base(), "Messages": []}, "Messages", "is not a field of the job request"),
        ({**base(), "options": deep(20_000, 1)}, "options.messages", "is not a field of the job request"),
        ('{"messages": ' + "[" * 20_000 + "]" * 20_000 + "}", "request", "is not valid JSON"),
        ('{"messages": [{"text": "hi \\ud800", "recipients": [{"dst": "+4917600000000"}]}]}', None, None),
    ],
)
def test_the_cases_of_issue_15_are_refused_naming_field_and_rule(
    data: object, field: str | None, rule: str | None
) -> None:
    with pytest.raises(ValidationError) as info:
        SmsRequest.from_json(data)  # type: ignore[arg-type]
    got_field, got_rule = check_refused(info.value)
    if field is not None:
        assert got_field == field
    if rule is not None:
        assert got_rule.startswith(rule), got_rule


def test_the_latest_accepted_job_period_survives_the_longest_validity_and_a_blackout_shift() -> None:
    latest = "2099-12-31T23:59:59.999999Z"
    data = with_option("jobPeriod", "2099-12-31T05:59:59.999-18:00")
    data["options"].update(validityMin=2880, blackoutPeriods=[f"2099-12-31T23:00Z/{latest}"])
    request = SmsRequest.from_json(data)
    check_accepted(request, "DE")
    period = request.options.blackout_periods[0]  # type: ignore[index]
    assert period.end == LATEST_TIMESTAMP - timedelta(microseconds=1)
    earliest = SmsRequest.from_json(with_option("jobPeriod", "1970-01-01T01:00+01:00"))
    check_accepted(earliest, "DE")


def test_timestamps_inside_the_horizon_with_any_allowed_offset_are_accepted() -> None:
    @FIXED
    @given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2099, 12, 30)), ALLOWED_OFFSETS)
    def run(moment: datetime, tz: timezone) -> None:
        aware = moment.replace(tzinfo=tz)
        assert check_timestamp(aware) is aware
        assert_no_overflow(aware)
        request = SmsRequest.from_json(with_option("jobPeriod", aware.isoformat()))
        assert request.options.job_period == aware

    run()


# --- the producer's own arguments -----------------------------------------------------------------

ARGUMENTS = st.one_of(
    SCALARS,
    HOSTILE_VALUES,
    st.text(min_size=1, max_size=250),
    st.from_regex(r"[A-Za-z0-9_.-]{1,70}", fullmatch=True),
)


class Key(str):
    """A str subclass: accepted, returned as a plain str."""


def test_idempotency_keys() -> None:
    assert check_idempotency_key(None) is None
    assert check_idempotency_key("k" * 200) == "k" * 200
    plain = check_idempotency_key(Key("order-17"))
    assert type(plain) is str and plain == "order-17"
    for value, rule in [
        (17, "must be a string"), (True, "must be a string"), (1.5, "must be a string"), ({"a": 1}, "must be a string"),
        (["k"], "must be a string"), (b"k", "must be a string"), ("", "must not be empty"),
        ("k" * 201, "must be at most 200 characters"), ("a\x00b", "must not contain NUL characters"),
        ("a\ud800", "must not contain unpaired surrogates"), ("a\tb", "must not contain control characters"),
    ]:  # fmt: skip
        with pytest.raises(ValueError, match=rule):
            check_idempotency_key(value)

    @FIXED
    @given(ARGUMENTS)
    def run(value: object) -> None:
        try:
            key = check_idempotency_key(value)
        except ValueError as exc:
            assert str(exc)
            assert_clean(str(exc))
            return
        if value is None:
            assert key is None
            return
        assert type(key) is str and key == value and 1 <= len(key) <= 200
        assert_clean(key)

    run()


def test_connection_names_and_regions() -> None:
    assert check_connection_name("default") == "default"
    assert check_connection_name("eu-1.backup_2") == "eu-1.backup_2"
    for bad in ["", "a b", "a\x00", "a\n", "x" * 65, 3, None, b"default", ["default"], "défault"]:
        with pytest.raises(ValueError, match="must be"):
            check_connection_name(bad)
    assert check_region("at") == "AT"
    for bad in ["XX", "", "DE\x00", "\ud800", 49, None, b"DE", "Germany"]:
        with pytest.raises(ValueError, match="must be an ISO 3166 alpha-2 region"):
            check_region(bad)

    @FIXED
    @given(ARGUMENTS)
    def run(value: object) -> None:
        for check in (check_connection_name, check_region):
            try:
                result = check(value)
            except ValueError as exc:
                assert_clean(str(exc))
            else:
                assert type(result) is str
                assert_clean(result)

    run()


def test_check_characters_never_echoes_the_value() -> None:
    for value in ["secret\x00", "secret\ud800", "secret\x1b"]:
        with pytest.raises(ValueError) as info:
            check_characters(value)
        assert "secret" not in str(info.value)
