"""Wire models of the Sendmode REST API v2 (PROVIDERS.md section 3) and its error-code table.

Requests are JSON bodies (`Content-Type: application/json`, seed 001): `{"message": {...}}` for send and
opt-out, `{"group": ..., "importdata": {...}}` for import; `to_wire()` gives the inner object. Answers
share one envelope (`status`, `statusCode`, ...), have no required field, accept null everywhere and
ignore unknown fields; `statusCode` 0 is the success shape, any other the error shape. `SENDMODE_ERROR_CODES` is the single place
that says what each application status code means and which kind of error it becomes.
Data only: no I/O here.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.alias_generators import to_camel

#: statusCode of an accepted request.
SENDMODE_OK: Final = 0
#: ASSUMPTION (no official page found): the sandbox reports insufficient credit as
#: {"status": "INSUFFICIENT_CREDITS", "statusCode": 3, "error": ...}.
INSUFFICIENT_CREDITS_CODE: Final = 3


class ErrorKind(StrEnum):
    """What a non-zero statusCode means for the caller."""

    PERMANENT = "permanent"  # sending the same request again will fail again
    RETRYABLE = "retryable"  # a provider-side fault: try again later
    AUTH = "auth"  # the access key was refused
    CREDITS = "credits"  # the account ran out of credit: waiting (a top-up) helps


class SendmodeErrorCode(NamedTuple):
    identifier: str
    description: str
    kind: ErrorKind


#: PROVIDERS.md 3.4, plus the ASSUMED insufficient-credit code. Unknown codes are permanent.
SENDMODE_ERROR_CODES: Final[dict[int, SendmodeErrorCode]] = {
    1: SendmodeErrorCode("INVALID_MESSAGE_LENGTH", "No valid message to send", ErrorKind.PERMANENT),
    INSUFFICIENT_CREDITS_CODE: SendmodeErrorCode(
        "INSUFFICIENT_CREDITS", "Not enough credit on the account", ErrorKind.CREDITS
    ),
    8: SendmodeErrorCode("SYSTEM_ERROR", "Unexpected error while processing", ErrorKind.RETRYABLE),
    10: SendmodeErrorCode("INVALID_SENDER_ID", "senderid not valid", ErrorKind.PERMANENT),
    11: SendmodeErrorCode("INVALID_MOBILE_NUMBER", "mobile number invalid", ErrorKind.PERMANENT),
    14: SendmodeErrorCode("INVALID_ACCESS_KEY", "access key invalid", ErrorKind.AUTH),
    16: SendmodeErrorCode("UNAUTHORISED", "unauthorised to use the API", ErrorKind.AUTH),
    18: SendmodeErrorCode("INVALID_PARAMETER", "a parameter has an invalid type", ErrorKind.PERMANENT),
    97: SendmodeErrorCode("INVALID_SCHEDULE_DATE_FORMAT", "scheduledate wrong format", ErrorKind.PERMANENT),
    104: SendmodeErrorCode("CODE_EXPIRED", "verification code expired", ErrorKind.PERMANENT),
    105: SendmodeErrorCode("CODE_INVALID", "verification code invalid or used", ErrorKind.PERMANENT),
    195: SendmodeErrorCode("EXPECTED_PARAMETER_MISSING", "required parameter missing", ErrorKind.PERMANENT),
}


def error_code(code: int, status: str | None = None) -> SendmodeErrorCode:
    """The table entry for `code`; an unknown code is a permanent error named by the body's status."""
    known = SENDMODE_ERROR_CODES.get(code)
    if known is not None:
        return known
    return SendmodeErrorCode(status or "UNKNOWN_ERROR", "unknown Sendmode status code", ErrorKind.PERMANENT)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the request body carries (unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


class _Response(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, extra="ignore"
    )

    status: str | None = None
    status_code: int | None = None
    accepted_date_time: datetime | None = None

    @field_validator("accepted_date_time", mode="wrap")
    @classmethod
    def _lenient_time(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> datetime | None:
        # Informational only: an odd timestamp must not make an accepted send look unreadable.
        try:
            result: datetime | None = handler(value)
        except ValidationError:
            return None
        return result

    @property
    def ok(self) -> bool:
        return self.status_code == SENDMODE_OK


# --- POST /send -------------------------------------------------------------------------------------


class SendmodeMessage(_Request):
    """The `message` JSON of POST /send: one text for every recipient."""

    messagetext: str = Field(min_length=1)
    recipients: list[str] = Field(min_length=1)
    senderid: str | None = None
    customerid: str | None = None
    #: "Date and time to schedule your message ... to nearest 15 minute interval"; a bad format is error 97.
    scheduledate: str | None = None


class _EchoedMessage(BaseModel):
    # The message as Sendmode echoes it back: nulls for unset fields, nothing required.
    model_config = ConfigDict(extra="ignore")

    messagetext: str | None = None
    recipients: list[str] | None = None
    senderid: str | None = None
    customerid: str | None = None
    scheduledate: str | None = None


class SendmodeSendResponse(_Response):
    """The answer of POST /send. No message id is documented; acceptance is final."""

    message: _EchoedMessage | None = None


# --- POST /import -----------------------------------------------------------------------------------


class ImportData(_Request):
    """The `importdata` JSON of POST /import: one customer, `dateofbirth` as dd/mm/yyyy."""

    mobilenumber: str = Field(min_length=1)
    firstname: str | None = None
    surname: str | None = None
    address: str | None = None
    town: str | None = None
    county: str | None = None
    email: str | None = None
    custom1: str | None = None
    custom2: str | None = None
    businessname: str | None = None
    dateofbirth: str | None = None

    @field_validator("dateofbirth")
    @classmethod
    def _check_date_of_birth(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.strptime(value, "%d/%m/%Y")
            except ValueError:
                raise ValueError("dateofbirth must be a date written dd/mm/yyyy") from None
        return value


class _EchoedImportData(BaseModel):
    model_config = ConfigDict(extra="ignore")

    mobilenumber: str | None = None
    firstname: str | None = None
    surname: str | None = None
    address: str | None = None
    town: str | None = None
    county: str | None = None
    email: str | None = None
    custom1: str | None = None
    custom2: str | None = None
    businessname: str | None = None
    dateofbirth: str | None = None


class ImportResponse(_Response):
    """The answer of POST /import."""

    group: str | None = None
    importdata: _EchoedImportData | None = None


# --- GET /credits -----------------------------------------------------------------------------------


class CreditsResponse(_Response):
    """`{"status", "statusCode", "balance": <float>}` (seed 001, PROVIDERS.md 3.5; the path is third-party)."""

    balance: Decimal | None = None


# --- POST /optout -----------------------------------------------------------------------------------


class OptOut(_Request):
    """The `message` JSON of POST /optout (seed 001, PROVIDERS.md 3.6): no length limits are documented.

    `optoutresponse` is what the person sent when opting out; `returnedresponse` a custom response for
    downstream applications. (`optoutreason` belongs to the legacy HTTP API, not to this request.)
    """

    mobilenumber: str = Field(min_length=1)
    optoutresponse: str | None = None
    returnedresponse: str | None = None


class OptOutResponse(_Response):
    """The answer of POST /optout: every field at the top level, no `message` object (seed 001)."""

    mobilenumber: str | None = None
    optoutreason: str | None = None
