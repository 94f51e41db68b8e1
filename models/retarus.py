"""Wire models of the Retarus SMS for Applications REST API v1 (PROVIDERS.md section 1).

Requests (`JobRequest` and its parts) serialise to exactly the documented JSON with
`model_dump(mode="json", exclude_none=True)`: camelCase names, enums as their documented spelling,
`jobPeriod` as ISO-8601 with its offset. Responses ignore fields they do not know and make every
field optional that the provider might leave out, so a new field or a sparse report never turns a
good answer into an "unreadable body" error. Data only: no I/O here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from models.enums import Encoding, InvalidCharacters, Qos

#: Recipients (SMS) one job may carry: "Requests which result in more than 3.000 SMS ... will be rejected".
MAX_RECIPIENTS_PER_JOB = 3000
#: The widest fromTs..toTs interval GET /jobs accepts.
MAX_LISTING_WINDOW_DAYS = 30
#: GET /jobs `limit` range (seed 000: "between 0 and 1000").
MAX_LISTING_LIMIT = 1000
#: `validityMin`: 0 (provider default) or this range of minutes (seed 000).
VALIDITY_MIN_RANGE: Final = (5, 2880)
#: `maxParts` range (seed 000).
MAX_PARTS_RANGE: Final = (1, 20)
#: `billcode` length limit.
MAX_BILLCODE_CHARS = 70
#: Java's `\p{Punct}`: the punctuation an alphanumeric sender ID may hold (backtick included).
PUNCTUATION: Final = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
#: Sender ID (PROVIDERS.md 1.4): up to 20 digits with an optional leading `+`, or 1..11 characters from
#: letters, digits, space and `PUNCTUATION`; always matched against the whole value (`fullmatch`).
SRC_PATTERN: Final = re.compile(r"\+?[0-9]{1,20}|[a-zA-Z0-9 " + re.escape(PUNCTUATION) + r"]{1,11}")


def _as_utc_if_naive(value: datetime) -> datetime:
    # Retarus documents UTC timestamps ("...000Z"); a timestamp without an offset is read as UTC
    # rather than refused, so one odd field never makes a whole report unreadable.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


#: A provider timestamp, always timezone-aware once parsed.
ProviderTimestamp = Annotated[datetime, AfterValidator(_as_utc_if_naive)]

#: A timestamp we send: must be aware; written as ISO-8601 with milliseconds and offset
#: (`2018-07-09T11:25:24.683+02:00`, the documented form).
SentTimestamp = Annotated[
    AwareDatetime,
    PlainSerializer(
        lambda value: value.isoformat(timespec="milliseconds"), return_type=str, when_used="json"
    ),
]


class _Request(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, extra="forbid"
    )


class _Response(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, extra="ignore"
    )


# --- POST /jobs -------------------------------------------------------------------------------------


class Recipient(_Request):
    """One recipient; recipient-level `blackout_periods` replace the job's."""

    dst: str = Field(min_length=1)
    customer_ref: str | None = None
    blackout_periods: list[str] | None = None


class Message(_Request):
    """One text and the recipients that receive it."""

    text: str
    recipients: list[Recipient] = Field(min_length=1)


class Options(_Request):
    """Job-level options; every field optional (the provider's account defaults apply)."""

    src: str | None = None
    encoding: Encoding | None = None
    billcode: str | None = Field(None, max_length=MAX_BILLCODE_CHARS)
    status_requested: bool | None = None
    flash: bool | None = None
    customer_ref: str | None = None
    validity_min: int | None = None
    max_parts: int | None = Field(None, ge=MAX_PARTS_RANGE[0], le=MAX_PARTS_RANGE[1])
    invalid_characters: InvalidCharacters | None = None
    qos: Qos | None = None
    job_period: SentTimestamp | None = None
    duplicate_detection: bool | None = None
    blackout_periods: list[str] | None = None

    @field_validator("validity_min")
    @classmethod
    def _check_validity(cls, value: int | None) -> int | None:
        low, high = VALIDITY_MIN_RANGE
        if value is not None and value != 0 and not low <= value <= high:
            raise ValueError(f"validityMin must be 0 (provider default) or {low}..{high}")
        return value

    @field_validator("src")
    @classmethod
    def _check_src(cls, value: str | None) -> str | None:
        if value is not None and not SRC_PATTERN.fullmatch(value):
            raise ValueError(
                "src must be up to 20 digits with an optional leading +, or 1..11 letters, digits, "
                "spaces or punctuation"
            )
        return value


class JobRequest(_Request):
    """The body of POST /jobs."""

    messages: list[Message] = Field(min_length=1)
    options: Options | None = None

    @field_validator("messages")
    @classmethod
    def _check_total_recipients(cls, messages: list[Message]) -> list[Message]:
        count = sum(len(message.recipients) for message in messages)
        if count > MAX_RECIPIENTS_PER_JOB:
            raise ValueError(f"a job carries at most {MAX_RECIPIENTS_PER_JOB} recipients, got {count}")
        return messages

    @property
    def recipient_count(self) -> int:
        return sum(len(message.recipients) for message in self.messages)


class JobResponse(_Response):
    """The answer to POST /jobs (201). Like every answer field, `jobId` may be absent or null (the
    client then cannot tell which job was created, see RetarusClient.send_job)."""

    job_id: str | None = None


# --- GET /jobs/{jobId}, GET /sms?jobId=, GET /jobs, GET /version --------------------------------------


def _none_as_empty_list(value: Any) -> Any:
    return [] if value is None else value


def _empty_as_none(value: Any) -> Any:
    # `<empty>` status (PROVIDERS.md 1.5): "", null and an absent key mean the same.
    return None if isinstance(value, str) and not value.strip() else value


class JobReport(_Response):
    """GET /jobs/{jobId}. `encoding` comes back lowercase (`standard`, `utf-16`).

    No field is required and any may be null (seed 000, PROVIDERS.md 1.5).
    """

    job_id: str | None = None
    src: str | None = None
    encoding: str | None = None
    billcode: str | None = None
    status_requested: bool | None = None
    flash: bool | None = None
    validity_min: int | None = None
    customer_ref: str | None = None
    qos: str | None = None
    receipt_ts: ProviderTimestamp | None = None
    finished_ts: ProviderTimestamp | None = None
    recipient_ids: list[str] = Field(default_factory=list)

    _null_ids = field_validator("recipient_ids", mode="before")(_none_as_empty_list)

    @property
    def finished(self) -> bool:
        """True once the provider reports the job's final status time."""
        return self.finished_ts is not None


class RecipientReport(_Response):
    """One element of GET /sms?jobId=: the raw processStatus/status pair (mapped in models/status.py).

    No field is required and any may be null. `status` is any string; `""`, null and an absent key all
    read as None (`<empty>` in the status table).
    """

    sms_id: str | None = None
    dst: str | None = None
    process_status: str | None = None
    status: str | None = None
    customer_ref: str | None = None
    reason: str | None = None
    sent_ts: ProviderTimestamp | None = None
    finished_ts: ProviderTimestamp | None = None

    _empty_status = field_validator("status", "process_status", mode="before")(_empty_as_none)


class JobListEntry(_Response):
    """One element of GET /jobs?jobIdsOnly=true: `{"jobId": ...}` (PROVIDERS.md 1.3). Only `jobId` is
    read; other keys (an older docs example shows full JobReports) are ignored; a bare string is accepted
    too. A null `jobId` is kept as None and skipped by the client.
    """

    job_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _accept_bare_id(cls, value: Any) -> Any:
        return {"jobId": value} if isinstance(value, str) else value


class VersionInfo(_Response):
    """GET /version: VersionInfoResponse (seed 000, PROVIDERS.md 1.7), six fields, none required."""

    build_number: int | None = None
    build_timestamp: str | None = None
    major_version: int | None = None
    minor_version: int | None = None
    version_info: str | None = None
    message: str | None = None
