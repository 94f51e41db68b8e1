"""The provider-neutral SMS job request producers enqueue, with every rule of the Retarus REST v1 contract.

The shape is the Retarus JobRequest (PROVIDERS.md 1.4): `SmsRequest` holds `messages` (text plus
recipients) and job-wide `options`. Validation enforces the contract before anything is stored or
queued: phone numbers parsed and normalised to E.164, sender id syntax, billcode and customerRef
lengths, validityMin 0 or 5..2880, maxParts 1..20, at most 3000 recipients per job, ISO-8601 blackout
intervals and jobPeriod with a UTC offset, and no text that needs more SMS parts than maxParts allows.

Hostile input is refused as well (issue 15), always as a pydantic ValidationError that `first_error` names:

- Types are strict, as the contract names them: an integer is not ``"3"`` or ``5.0``, a boolean is not
  ``1`` or ``"true"``, a string is not bytes, an array is a list. Only enums accept their string values
  (``"STANDARD"``), as JSON spells them, and nested objects accept dicts.
- Every string refuses NUL, unpaired surrogates (text that cannot be encoded as UTF-8, e.g.
  ``"hi \ud800 there"``) and control characters; a message text may still carry tab, line feed,
  carriage return and form feed. What the job's encoding cannot carry is refused per invalidCharacters
  (REFUSE under STANDARD); a text longer than `MAX_TEXT_CHARS` is refused before anything is counted.
- jobPeriod and blackout ends use the contract's spelling (``2030-01-01T10:00Z``,
  ``2030-01-01T10:00:00.683+02:00``), an offset within +-18:00, and lie in 1970-01-01..2100-01-01 UTC, so
  no later arithmetic on them (UTC conversion, validity, blackout shifts, grace) can overflow.

`check_idempotency_key`, `check_connection_name` and `check_region` are the same rules for the producer's
own arguments: pure functions that return the clean value or raise ValueError("<rule>").

National numbers take their country from the validation context key ``"default_region"`` (ISO 3166
alpha-2, "DE" when absent): ``SmsRequest.from_json(data, default_region="AT")``.

`first_error` turns a pydantic ValidationError into one ``(field, rule)`` pair, the field a dotted path
as the caller wrote it (``options.validityMin``, ``messages.0.recipients.2.dst``) and the rule in plain
words (``must be 0 or between 5 and 2880``); the producer API raises it as `InvalidRequest(field, rule)`.
Errors never echo the offending value, so phone numbers and texts stay out of logs.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Self

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from models.enums import Encoding, InvalidCharacters, Qos
from models.intervals import Interval, check_interval, check_timestamp, parse_datetime, parse_interval
from models.request_errors import first_error as first_error  # re-exported: part of this module's API
from models.segments import MAX_PARTS, MAX_TEXT_CHARS, segments_for

#: The contract's limit on recipients in one job, summed over all messages.
MAX_RECIPIENTS_PER_JOB = 3000
#: Region for numbers written without a country code when the validation context names none.
DEFAULT_REGION = "DE"
#: Validation context key holding the default region (ISO 3166 alpha-2).
DEFAULT_REGION_KEY = "default_region"

BILLCODE_MAX_CHARS = 70
#: Retarus: "Recommended max. 64 characters" (job and recipient level).
CUSTOMER_REF_MAX_CHARS = 64
VALIDITY_MIN_RANGE = (5, 2880)
#: A phone number as written by a caller, spaces and punctuation included (libphonenumber reads 250).
DST_MAX_CHARS = 100
#: The producer's idempotency key (the jobs table's column is 200 characters wide).
IDEMPOTENCY_KEY_MAX_CHARS = 200
#: A connection name, as worker.settings.ConnectionSettings allows it.
CONNECTION_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: Sender id: numeric (optional '+', up to 20 digits) or alphanumeric (up to 11 characters of
#: a-zA-Z0-9, space and ASCII punctuation). The contract's Java pattern uses \p{Punct}, which is
#: exactly Python's string.punctuation.
SENDER_ID_PATTERN = re.compile(r"\+?[0-9]{1,20}|[a-zA-Z0-9 " + re.escape(string.punctuation) + r"]{1,11}")

_RULE_ERROR = "sms_rule"

_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: C0 controls, DEL and C1 controls (Unicode category Cc).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: The same, less tab, line feed, form feed and carriage return, which a message text may carry.
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")


def check_characters(value: str, *, message_text: bool = False) -> str:
    """`value` if it has no NUL, no unpaired surrogate (not encodable as UTF-8) and no control character
    (a message text may hold tab, LF, CR and FF); else ValueError naming the rule. Never echoes `value`."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if _SURROGATE.search(value):
        raise ValueError("must not contain unpaired surrogates (text that cannot be encoded as UTF-8)")
    if message_text:
        if _TEXT_CONTROL.search(value):
            raise ValueError(
                "must not contain control characters other than tab, line feed, carriage return and form feed"
            )
    elif _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def check_idempotency_key(value: object) -> str | None:
    """The producer's idempotency key: None, or a string of 1..200 characters without NUL, control
    characters or unpaired surrogates. Returns it as a plain str; ValueError("<rule>") otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value:
        raise ValueError("must not be empty")
    if len(value) > IDEMPOTENCY_KEY_MAX_CHARS:
        raise ValueError(f"must be at most {IDEMPOTENCY_KEY_MAX_CHARS} characters")
    return str.__str__(check_characters(value))


def check_connection_name(value: object) -> str:
    """A connection name as settings allow it (1..64 of A-Z a-z 0-9 _ . -); ValueError("<rule>") otherwise.
    Whether such a connection is configured is the runtime's question, not this one."""
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if CONNECTION_NAME_PATTERN.fullmatch(value) is None:
        raise ValueError("must be 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'")
    return str.__str__(value)


def check_region(value: object) -> str:
    """An ISO 3166 alpha-2 region libphonenumber knows (any case), upper-cased; ValueError("<rule>")."""
    if not isinstance(value, str) or value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError("must be an ISO 3166 alpha-2 region with phone numbers, such as DE")
    return value.upper()


def _plain_string(value: str) -> str:
    return check_characters(value)


def format_timestamp(value: datetime) -> str:
    """ISO-8601 with the offset and no more fraction digits than needed (Retarus's own examples use ms)."""
    if value.microsecond == 0:
        timespec = "seconds"
    elif value.microsecond % 1000 == 0:
        timespec = "milliseconds"
    else:
        timespec = "microseconds"
    return value.isoformat(timespec=timespec)


def _to_interval(value: object) -> Interval:
    if isinstance(value, Interval):
        # What is sent is str(value): its text when it has one. Re-read that, so the object obeys the
        # same spelling and bounds as a string would.
        return (
            parse_interval(check_characters(str(value)), strict=True) if value.text else check_interval(value)
        )
    if isinstance(value, str):
        return parse_interval(check_characters(value), strict=True)
    raise ValueError("must be an ISO-8601 interval string 'start/end'")


def _to_aware_datetime(value: object) -> datetime:
    if isinstance(value, str):
        return parse_datetime(check_characters(value), strict=True)
    if isinstance(value, datetime):
        return check_timestamp(value)
    raise ValueError("must be an ISO-8601 timestamp with a UTC offset")


#: An ISO-8601 interval `start/end`; serialised back to the caller's own spelling.
BlackoutPeriod = Annotated[
    Interval,
    PlainValidator(_to_interval, json_schema_input_type=str),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["2018-10-25T18:00Z/2018-10-26T07:00Z"]}),
]
#: An aware datetime; accepted as an ISO-8601 string with an offset, serialised as ISO-8601 in JSON.
AwareTimestamp = Annotated[
    datetime,
    PlainValidator(_to_aware_datetime, json_schema_input_type=str),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
CustomerRef = Annotated[str, Field(max_length=CUSTOMER_REF_MAX_CHARS), AfterValidator(_plain_string)]


def normalise_number(number: str, default_region: str = DEFAULT_REGION) -> str:
    """`number` in E.164; national numbers belong to `default_region`. ValueError if it is not valid."""
    region = check_region(default_region)
    international = number.strip().startswith(("+", "00"))
    where = "" if international else f" for region {region}"
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a valid phone number{where}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"not a valid phone number{where}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _region_from(context: object) -> str:
    if isinstance(context, Mapping):
        return str(context.get(DEFAULT_REGION_KEY) or DEFAULT_REGION)
    return DEFAULT_REGION


class _ContractModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        # Inputs are phone numbers and message texts: keep them out of error reprs and logs.
        hide_input_in_errors=True,
        # The contract's types exactly: no "3" for an integer, no 5.0 for validityMin, no 1 for true.
        # Enum fields opt out (Field(strict=False)) so they take their string values, as JSON does.
        strict=True,
    )


class Recipient(_ContractModel):
    """One destination of a message. Its blackoutPeriods, when set, replace the job's."""

    dst: Annotated[str, Field(max_length=DST_MAX_CHARS)]
    customer_ref: CustomerRef | None = None
    blackout_periods: list[BlackoutPeriod] | None = None

    @field_validator("dst")
    @classmethod
    def _normalise_dst(cls, value: str, info: ValidationInfo) -> str:
        return normalise_number(check_characters(value), _region_from(info.context))


class Message(_ContractModel):
    """One text and the recipients it goes to."""

    text: str
    recipients: Annotated[list[Recipient], Field(min_length=1)]

    @field_validator("text")
    @classmethod
    def _text_has_content(cls, value: str) -> str:
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(
                f"needs more than {MAX_PARTS} SMS parts: it is longer than {MAX_TEXT_CHARS} characters"
            )
        check_characters(value, message_text=True)
        if not value.strip():
            raise ValueError("must not be empty or only whitespace")
        return value


class JobOptions(_ContractModel):
    """Job-wide options of the Retarus JobRequest; None means "not sent, provider default"."""

    src: str | None = None
    encoding: Encoding = Field(Encoding.STANDARD, strict=False)
    billcode: Annotated[str, Field(max_length=BILLCODE_MAX_CHARS), AfterValidator(_plain_string)] | None = (
        None
    )
    status_requested: bool | None = None
    flash: bool | None = None
    customer_ref: CustomerRef | None = None
    validity_min: int | None = None
    max_parts: int | None = None
    invalid_characters: InvalidCharacters | None = Field(None, strict=False)
    qos: Qos = Field(Qos.NORMAL, strict=False)
    job_period: AwareTimestamp | None = None
    duplicate_detection: bool | None = None
    blackout_periods: list[BlackoutPeriod] | None = None

    @field_validator("src")
    @classmethod
    def _sender_id(cls, value: str | None) -> str | None:
        if value is not None and SENDER_ID_PATTERN.fullmatch(value) is None:
            raise ValueError(
                "must be a numeric sender id of at most 20 digits (optionally with a leading '+') or an "
                "alphanumeric one of at most 11 characters from a-z, A-Z, 0-9, space and ASCII punctuation"
            )
        return value

    @field_validator("validity_min")
    @classmethod
    def _validity(cls, value: int | None) -> int | None:
        low, high = VALIDITY_MIN_RANGE
        if value is not None and value != 0 and not low <= value <= high:
            raise ValueError(f"must be 0 or between {low} and {high}")
        return value

    @field_validator("max_parts")
    @classmethod
    def _max_parts(cls, value: int | None) -> int | None:
        if value is not None and not 1 <= value <= MAX_PARTS:
            raise ValueError(f"must be between 1 and {MAX_PARTS}")
        return value


class SmsRequest(_ContractModel):
    """An SMS job: messages with their recipients, and job-wide options (the Retarus JobRequest)."""

    messages: Annotated[list[Message], Field(min_length=1)]
    options: JobOptions = JobOptions()

    @classmethod
    def from_json(
        cls, data: Mapping[str, Any] | str | bytes, *, default_region: str = DEFAULT_REGION
    ) -> Self:
        """Validate a JobRequest given as parsed JSON or JSON text; national numbers in `default_region`."""
        context = {DEFAULT_REGION_KEY: check_region(default_region)}
        if isinstance(data, str | bytes):
            return cls.model_validate_json(data, context=context)
        return cls.model_validate(data, context=context)

    @model_validator(mode="before")
    @classmethod
    def _refuse_oversized_job_early(cls, data: Any) -> Any:
        # Counted before the recipients are parsed, so an oversized job costs no phone-number parsing.
        messages = data.get("messages") if isinstance(data, Mapping) else None
        if isinstance(messages, list):
            count = sum(_raw_recipient_count(message) for message in messages)
            if count > MAX_RECIPIENTS_PER_JOB:
                raise _rule_error(("messages",), _too_many_recipients(count))
        return data

    @model_validator(mode="after")
    def _check_job_limits(self) -> Self:
        count = self.recipient_count
        if count > MAX_RECIPIENTS_PER_JOB:
            raise _rule_error(("messages",), _too_many_recipients(count))
        options = self.options
        limit = options.max_parts
        for index, message in enumerate(self.messages):
            location = ("messages", index, "text")
            try:
                parts = segments_for(message.text, options.encoding, options.invalid_characters)
            except ValueError as exc:
                raise _rule_error(location, str(exc)) from None
            if limit is None and parts > MAX_PARTS:
                raise _rule_error(location, f"needs {parts} SMS parts but at most {MAX_PARTS} are allowed")
            if limit is not None and parts > limit:
                raise _rule_error(location, f"needs {parts} SMS parts but maxParts is {limit}")
        return self

    @property
    def recipient_count(self) -> int:
        """Recipients summed over all messages (each is one SMS job entry at the provider)."""
        return sum(len(message.recipients) for message in self.messages)

    def effective_blackouts(self, recipient: Recipient) -> list[Interval]:
        """The blackout periods that apply to `recipient`: its own when set (even empty), else the job's."""
        if recipient.blackout_periods is not None:
            return list(recipient.blackout_periods)
        return list(self.options.blackout_periods or [])

    def to_retarus_json(self) -> dict[str, Any]:
        """The Retarus JobRequest body: camelCase, None fields left out, enums as their strings,
        jobPeriod as ISO-8601, blackout periods as written. encoding and qos are always sent."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _raw_recipient_count(message: object) -> int:
    if isinstance(message, Message):
        return len(message.recipients)
    recipients = message.get("recipients") if isinstance(message, Mapping) else None
    return len(recipients) if isinstance(recipients, list) else 0


def _too_many_recipients(count: int) -> str:
    return f"has {count} recipients in total but a job may have at most {MAX_RECIPIENTS_PER_JOB}"


def _rule_error(loc: tuple[str | int, ...], rule: str) -> ValidationError:
    """A ValidationError located at `loc`; raised inside a validator, pydantic merges it (prefixing the
    location when this model is nested), so model-level rules still name the field they concern."""
    detail = InitErrorDetails(
        type=PydanticCustomError(_RULE_ERROR, "{rule}", {"rule": rule}), loc=loc, input=None
    )
    return ValidationError.from_exception_data("SmsRequest", [detail], hide_input=True)
