"""Validation of a Retarus REST v1 JobRequest (PROVIDERS.md 1.4), done by the sandbox itself.

`parse_job_request(body)` returns a `JobSpec` or raises `BadRequest` carrying the HTTP status the
contract gives: 400 for malformed or out-of-contract requests (including more than 3000 recipients,
invalid blackoutPeriods, and any unknown or wrongly cased key such as `status_requested`, named in the
message), 422 for non-GSM-7 text under `invalidCharacters=REFUSE`. validityMin and maxParts out of range
are clamped (the older doc; PROVIDERS.md 1.4 lets a simulator clamp or refuse, and no client relies on it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from models.enums import Encoding, InvalidCharacters, Qos
from models.intervals import Interval, parse_datetime, parse_interval
from models.retarus import SRC_PATTERN
from models.segments import is_gsm7

#: "Requests which result in more than 3.000 SMS ... will be rejected" (ASSUMPTION: with 400).
MAX_RECIPIENTS = 3000
MAX_BILLCODE_CHARS = 70
VALIDITY_MIN_RANGE = (5, 2880)
MAX_PARTS_RANGE = (1, 20)
#: The keys each object of a JobRequest may carry (PROVIDERS.md 1.4); any other key is refused.
JOB_KEYS = frozenset({"messages", "options"})
MESSAGE_KEYS = frozenset({"text", "recipients"})
RECIPIENT_KEYS = frozenset({"dst", "customerRef", "blackoutPeriods"})
OPTION_KEYS = frozenset(
    {
        "src", "encoding", "billcode", "statusRequested", "flash", "customerRef", "validityMin",
        "maxParts", "invalidCharacters", "qos", "jobPeriod", "duplicateDetection", "blackoutPeriods",
    }
)  # fmt: skip

_E = TypeVar("_E", bound=StrEnum)
_D = TypeVar("_D")


class BadRequest(Exception):
    """The request breaks the contract; `status` is the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RecipientSpec:
    dst: str
    customer_ref: str | None = None
    #: None: use the job's periods; a list (even empty) replaces them.
    blackouts: tuple[Interval, ...] | None = None


@dataclass(frozen=True)
class MessageSpec:
    text: str
    recipients: tuple[RecipientSpec, ...]


@dataclass(frozen=True)
class JobSpec:
    messages: tuple[MessageSpec, ...]
    src: str | None = None
    encoding: Encoding = Encoding.STANDARD
    billcode: str | None = None
    status_requested: bool = False
    flash: bool = False
    customer_ref: str | None = None
    validity_min: int = 0
    max_parts: int = MAX_PARTS_RANGE[1]
    invalid_characters: InvalidCharacters | None = None
    qos: Qos = Qos.NORMAL
    job_period: datetime | None = None
    duplicate_detection: bool = False
    blackouts: tuple[Interval, ...] = field(default_factory=tuple)

    @property
    def recipient_count(self) -> int:
        return sum(len(m.recipients) for m in self.messages)


def clamp_validity_min(value: int) -> int:
    """0 stays 0 (provider default); anything else is clamped into 5..2880 (so 1..4 and negatives -> 5)."""
    if value == 0:
        return 0
    low, high = VALIDITY_MIN_RANGE
    return min(max(value, low), high)


def clamp_max_parts(value: int) -> int:
    low, high = MAX_PARTS_RANGE
    return min(max(value, low), high)


def check_keys(keys: object, allowed: frozenset[str], where: str) -> None:
    """Refuse the first key not in `allowed`, naming it (and the right spelling when only the case or
    underscores differ, e.g. `status_requested` -> `statusRequested`)."""
    for key in keys if isinstance(keys, dict | list | tuple | set | frozenset) else ():
        if key in allowed:
            continue
        name = f"{where}.{key}" if where else str(key)
        folded = str(key).replace("_", "").replace("-", "").lower()
        hint = next((f" (did you mean {ok!r}?)" for ok in sorted(allowed) if ok.lower() == folded), "")
        raise BadRequest(f"Unknown key {name!r}{hint}")


def parse_job_request(body: object) -> JobSpec:
    if not isinstance(body, dict):
        raise BadRequest("Request body must be a JSON object")
    check_keys(body, JOB_KEYS, "")
    raw_options = body.get("options") or {}
    if not isinstance(raw_options, dict):
        raise BadRequest("options must be an object")
    check_keys(raw_options, OPTION_KEYS, "options")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise BadRequest("messages is required and must hold at least one message")
    messages = tuple(_parse_message(m, i) for i, m in enumerate(raw_messages))
    spec = _parse_options(raw_options, messages)
    if spec.recipient_count > MAX_RECIPIENTS:
        raise BadRequest(f"A job may have at most {MAX_RECIPIENTS} recipients, got {spec.recipient_count}")
    if spec.invalid_characters is InvalidCharacters.REFUSE and spec.encoding is Encoding.STANDARD:
        for index, message in enumerate(messages):
            if not is_gsm7(message.text):
                raise BadRequest(f"messages[{index}].text contains characters outside GSM-7", status=422)
    return spec


def _parse_message(raw: object, index: int) -> MessageSpec:
    where = f"messages[{index}]"
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object")
    check_keys(raw, MESSAGE_KEYS, where)
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"{where}.text is required and must not be empty")
    recipients = raw.get("recipients")
    if not isinstance(recipients, list) or not recipients:
        raise BadRequest(f"{where}.recipients is required and must hold at least one recipient")
    return MessageSpec(
        text, tuple(_parse_recipient(r, f"{where}.recipients[{i}]") for i, r in enumerate(recipients))
    )


def _parse_recipient(raw: object, where: str) -> RecipientSpec:
    if not isinstance(raw, dict):
        raise BadRequest(f"{where} must be an object")
    check_keys(raw, RECIPIENT_KEYS, where)
    dst = raw.get("dst")
    if not isinstance(dst, str) or not dst.strip():
        raise BadRequest(f"{where}.dst is required")
    ref = _optional_str(raw, "customerRef", where)
    blackouts = None
    if raw.get("blackoutPeriods") is not None:
        blackouts = _parse_blackouts(raw["blackoutPeriods"], f"{where}.blackoutPeriods")
    return RecipientSpec(dst.strip(), ref, blackouts)


def _parse_options(raw: dict[str, object], messages: tuple[MessageSpec, ...]) -> JobSpec:
    src = _optional_str(raw, "src", "options")
    if src is not None and not SRC_PATTERN.fullmatch(src):
        raise BadRequest("options.src is not a valid sender ID")
    billcode = _optional_str(raw, "billcode", "options")
    if billcode is not None and len(billcode) > MAX_BILLCODE_CHARS:
        raise BadRequest(f"options.billcode may have at most {MAX_BILLCODE_CHARS} characters")
    job_period = None
    job_period_text = _optional_str(raw, "jobPeriod", "options")
    if job_period_text is not None:
        try:
            job_period = parse_datetime(job_period_text)
        except ValueError as exc:
            raise BadRequest(f"options.jobPeriod {exc}") from None
    validity = raw.get("validityMin")
    max_parts = raw.get("maxParts")
    blackouts = raw.get("blackoutPeriods")
    return JobSpec(
        messages=messages,
        src=src,
        encoding=_enum(Encoding, raw.get("encoding"), "options.encoding", Encoding.STANDARD),
        billcode=billcode,
        status_requested=_bool(raw, "statusRequested"),
        flash=_bool(raw, "flash"),
        customer_ref=_optional_str(raw, "customerRef", "options"),
        validity_min=0 if validity is None else clamp_validity_min(_int(validity, "options.validityMin")),
        max_parts=MAX_PARTS_RANGE[1]
        if max_parts is None
        else clamp_max_parts(_int(max_parts, "options.maxParts")),
        invalid_characters=(
            None
            if raw.get("invalidCharacters") is None
            else _enum(InvalidCharacters, raw["invalidCharacters"], "options.invalidCharacters", None)
        ),
        qos=_enum(Qos, raw.get("qos"), "options.qos", Qos.NORMAL),
        job_period=job_period,
        duplicate_detection=_bool(raw, "duplicateDetection"),
        blackouts=() if blackouts is None else _parse_blackouts(blackouts, "options.blackoutPeriods"),
    )


def _parse_blackouts(raw: object, where: str) -> tuple[Interval, ...]:
    if not isinstance(raw, list):
        raise BadRequest(f"{where} must be a list of ISO-8601 intervals")
    periods = []
    for index, text in enumerate(raw):
        if not isinstance(text, str):
            raise BadRequest(f"{where}[{index}] must be a string")
        try:
            periods.append(parse_interval(text))
        except ValueError as exc:
            raise BadRequest(f"{where}[{index}] {exc}") from None
    return tuple(periods)


def _optional_str(raw: dict[str, object], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{where}.{key} must be a string")
    return value


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{where} must be an integer")
    return value


def _bool(raw: dict[str, object], key: str) -> bool:
    value = raw.get(key)
    if value is not None and not isinstance(value, bool):
        raise BadRequest(f"options.{key} must be a boolean")
    return bool(value)


def _enum(kind: type[_E], value: object, where: str, default: _D) -> _E | _D:
    if value is None:
        return default
    for member in kind:
        if member.value == value:
            return member
    allowed = ", ".join(member.value for member in kind)
    raise BadRequest(f"{where} must be one of {allowed}")
