"""Sendmode REST v2 (PROVIDERS.md section 3), served under `/v2`: send, import, credits, opt-out.

Auth: the raw key in `Authorization: <key>`, or the `access_key` query parameter. Sendmode answers
errors in the body with HTTP 200: `{"status": "<NAME>", "statusCode": <n>, "error": "<text>"}`; only the
sandbox's own rate limit (429 with Retry-After) and injected failures (5xx) use other HTTP statuses.
Clients send JSON bodies (`Content-Type: application/json`, seed 001): `{"message": {...}}` for send and
opt-out, `{"group": ..., "importdata": {...}}` for import. The older form encoding of the official samples
(a form field holding a JSON string) is still accepted and answered the same way.

Strictness: an unknown or wrongly cased key (in the body, inside `message` / `importdata`, or in the query
string, where only `access_key` is known) gets INVALID_PARAMETER / 18 naming the key; Sendmode reports
every refusal in the body with HTTP 200, so this is its form of a 400. `/v2/import` without `group` gets
EXPECTED_PARAMETER_MISSING / 195. Opt-out takes `mobilenumber`, `optoutresponse`, `returnedresponse`
(no length limit) and answers every field at the top level: `status`, `statusCode`, `acceptedDateTime`,
`mobilenumber`, `optoutreason` (ASSUMPTION: the sandbox echoes `optoutresponse` as `optoutreason`).

Credits: each accepted recipient costs the text's parts (GSM-7 160/153, otherwise UCS-2 70/67). Opted-out
recipients are accepted but neither delivered nor charged; the sandbox records them as suppressed.

ASSUMPTIONs (kept here): an unaffordable send answers INSUFFICIENT_CREDITS / 3; the rate-limit body is
TOO_MANY_REQUESTS / 429; `scheduledate` is ISO-8601 (no offset = UTC) or `dd/mm/yyyy HH:MM[:SS]` (UTC),
rounded to the nearest 15 minutes; a recipient is `+` and 7..15 digits; a numeric senderid has at most 20
digits, an alphanumeric one at most 11 letters, digits or spaces.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from models.enums import Encoding, InvalidCharacters
from models.segments import segments_for
from sandbox.config import SandboxConfig
from sandbox.forms import FormError, parse_form, request_params
from sandbox.jobs import SendmodeMessage, SendmodeRecipient, new_id
from sandbox.pipeline import Api, Call, Handler, endpoint
from sandbox.retarus_request import BadRequest, check_keys

#: Sendmode's application status codes (PROVIDERS.md 3.4, plus the two ASSUMPTIONs above).
STATUS_CODES: dict[str, int] = {
    "OK": 0,
    "INVALID_MESSAGE_LENGTH": 1,
    "INSUFFICIENT_CREDITS": 3,
    "SYSTEM_ERROR": 8,
    "INVALID_SENDER_ID": 10,
    "INVALID_MOBILE_NUMBER": 11,
    "INVALID_ACCESS_KEY": 14,
    "INVALID_PARAMETER": 18,
    "INVALID_SCHEDULE_DATE_FORMAT": 97,
    "EXPECTED_PARAMETER_MISSING": 195,
    "TOO_MANY_REQUESTS": 429,
}
MOBILE_NUMBER = re.compile(r"\+?[0-9]{7,15}")
NUMERIC_SENDER = re.compile(r"\+?[0-9]+")
ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 ]{1,11}")
MAX_NUMERIC_SENDER_DIGITS = 20
#: The keys each request object may carry; anything else is INVALID_PARAMETER naming it.
QUERY_KEYS = frozenset({"access_key"})
SEND_BODY_KEYS = frozenset({"message"})
IMPORT_BODY_KEYS = frozenset({"group", "importdata"})
OPTOUT_BODY_KEYS = frozenset({"message"})
MESSAGE_KEYS = frozenset({"messagetext", "recipients", "senderid", "customerid", "scheduledate"})
OPTOUT_KEYS = frozenset({"mobilenumber", "optoutresponse", "returnedresponse"})
SCHEDULE_STEP = timedelta(minutes=15)
CONTACT_FIELDS = (
    "mobilenumber", "firstname", "surname", "address", "town", "county",
    "email", "custom1", "custom2", "businessname", "dateofbirth",
)  # fmt: skip


class Refused(Exception):
    """A request Sendmode answers with an error body (HTTP 200)."""

    def __init__(self, status: str, error: str) -> None:
        super().__init__(status, error)
        self.status = status
        self.error = error


def envelope(status: str, error: str, http_status: int = 200) -> JSONResponse:
    return JSONResponse({"status": status, "statusCode": STATUS_CODES[status], "error": error}, http_status)


class SendmodeApi(Api):
    name = "sendmode"

    async def authenticate(self, request: Request, config: SandboxConfig) -> str | None:
        key = request.headers.get("authorization") or request.query_params.get("access_key")
        return None if not key else config.key_label(key.strip())

    def error(self, status: int, message: str) -> Response:
        name = "TOO_MANY_REQUESTS" if status == 429 else "SYSTEM_ERROR"
        return envelope(name, message, http_status=status)

    def unauthorized(self) -> Response:
        return envelope("INVALID_ACCESS_KEY", "Access key is invalid")


SENDMODE = SendmodeApi()


def _ok(call: Call, **fields: object) -> JSONResponse:
    accepted = call.state.now().isoformat()
    return JSONResponse({"status": "OK", "statusCode": 0, "acceptedDateTime": accepted, **fields})


def _unknown_keys(keys: object, allowed: frozenset[str], where: str) -> None:
    try:
        check_keys(keys, allowed, where)
    except BadRequest as exc:
        raise Refused("INVALID_PARAMETER", exc.message) from None


async def _check_keys(request: Request, allowed: frozenset[str]) -> None:
    """Refuse unknown query keys and unknown top-level body keys (JSON members or form fields)."""
    _unknown_keys(dict(request.query_params), QUERY_KEYS, "")
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused("INVALID_PARAMETER", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Refused("INVALID_PARAMETER", "Request body must be a JSON object")
        _unknown_keys(body, allowed, "")
    else:
        try:
            form = parse_form(request.headers.get("content-type", ""), await request.body())
        except FormError:
            raise Refused("INVALID_PARAMETER", "Form body cannot be read") from None
        _unknown_keys(form, allowed, "")


async def _field(request: Request, name: str) -> object:
    """A request field from a JSON body or from the form / query parameters."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json":
        try:
            body = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise Refused("INVALID_PARAMETER", "Request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Refused("INVALID_PARAMETER", "Request body must be a JSON object")
        return body.get(name, request.query_params.get(name))
    try:
        return (await request_params(request)).get(name)
    except FormError:
        raise Refused("INVALID_PARAMETER", "Form body cannot be read") from None


async def _object_field(request: Request, name: str) -> dict[str, object]:
    """`name` as a JSON object (sent as an object or as a JSON string)."""
    value = await _field(request, name)
    if value is None or value == "":
        raise Refused(
            "EXPECTED_PARAMETER_MISSING", f"You do not have all the required variables in your [{name}] data"
        )
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise Refused("INVALID_PARAMETER", f"[{name}] is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused("INVALID_PARAMETER", f"[{name}] must be a JSON object")
    return value


def _missing(name: str) -> Refused:
    return Refused(
        "EXPECTED_PARAMETER_MISSING", f"You do not have all the required variables in your [{name}] data"
    )


def _optional_text(data: dict[str, object], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise Refused("INVALID_PARAMETER", f"{key} must be a string")
    return value


def _mobile_number(value: object) -> str:
    if not isinstance(value, str) or not MOBILE_NUMBER.fullmatch(value.strip()):
        raise Refused("INVALID_MOBILE_NUMBER", "Mobile number is invalid")
    return value.strip()


def parse_schedule_date(text: str) -> datetime:
    """`scheduledate` as aware UTC, rounded to the nearest 15 minutes; ValueError when unreadable."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        when = _parse_day_first(text.strip())
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
    steps = round((when - midnight) / SCHEDULE_STEP)
    return midnight + steps * SCHEDULE_STEP


def _parse_day_first(text: str) -> datetime:
    for pattern in ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    raise ValueError(f"unreadable scheduledate {text!r}")


def _check_sender(senderid: str) -> None:
    if NUMERIC_SENDER.fullmatch(senderid):
        valid = len(senderid.lstrip("+")) <= MAX_NUMERIC_SENDER_DIGITS
    else:
        valid = ALPHANUMERIC_SENDER.fullmatch(senderid) is not None
    if not valid:
        raise Refused("INVALID_SENDER_ID", "Sender ID is not valid")


async def send(request: Request, call: Call) -> Response:
    await _check_keys(request, SEND_BODY_KEYS)
    message = await _object_field(request, "message")
    _unknown_keys(message, MESSAGE_KEYS, "message")
    text, recipients = message.get("messagetext"), message.get("recipients")
    if text is None or recipients is None or recipients == []:
        raise _missing("message")
    if not isinstance(text, str):
        raise Refused("INVALID_PARAMETER", "messagetext must be a string")
    if not text.strip():
        raise Refused("INVALID_MESSAGE_LENGTH", "No valid message to send")
    if not isinstance(recipients, list):
        raise Refused("INVALID_PARAMETER", "recipients must be a list of mobile numbers")
    numbers = [_mobile_number(number) for number in recipients]
    senderid = _optional_text(message, "senderid")
    if senderid:
        _check_sender(senderid)
    customerid = message.get("customerid")
    schedule_text = _optional_text(message, "scheduledate")
    scheduled = None
    if schedule_text:
        try:
            scheduled = parse_schedule_date(schedule_text)
        except ValueError:
            raise Refused(
                "INVALID_SCHEDULE_DATE_FORMAT", "scheduledate is not a valid date and time"
            ) from None
    fault = SENDMODE.magic_send_fault(numbers, call)
    if fault is not None:
        return fault
    state, credential = call.state, call.credential
    parts = segments_for(text, Encoding.STANDARD, InvalidCharacters.TO_UTF16)  # GSM-7 if it fits, else UCS-2
    outcome = [SendmodeRecipient(n, state.is_opted_out(credential, n)) for n in numbers]
    if not state.try_charge(credential, parts * sum(not r.suppressed for r in outcome)):
        raise Refused("INSUFFICIENT_CREDITS", "Not enough credits to send this message")
    now = state.now()
    record = SendmodeMessage(
        message_id=new_id("M", now),
        credential=credential,
        accepted_ts=now,
        scheduled_ts=scheduled,
        senderid=senderid,
        customerid=None if customerid is None else str(customerid),
        parts=parts,
        recipients=tuple(outcome),
    )
    state.add_sendmode_message(record)
    call.concerns(record.message_id)
    echo = {key: message.get(key) for key in ("senderid", "messagetext", "customerid", "scheduledate")}
    return _ok(call, message={**echo, "recipients": recipients})


async def import_contact(request: Request, call: Call) -> Response:
    await _check_keys(request, IMPORT_BODY_KEYS)
    data = await _object_field(request, "importdata")
    _unknown_keys(data, frozenset(CONTACT_FIELDS), "importdata")
    if data.get("mobilenumber") in (None, ""):
        raise _missing("importdata")
    contact: dict[str, object] = {"mobilenumber": _mobile_number(data["mobilenumber"])}
    for key in CONTACT_FIELDS[1:]:
        contact[key] = _optional_text(data, key)
    birthday = contact["dateofbirth"]
    if isinstance(birthday, str) and birthday:
        try:
            datetime.strptime(birthday, "%d/%m/%Y")
        except ValueError:
            raise Refused("INVALID_PARAMETER", "dateofbirth must be dd/mm/yyyy") from None
    group = await _field(request, "group")
    if group is None or group == "":
        raise _missing("group")  # required (seed 001)
    if not isinstance(group, str):
        raise Refused("INVALID_PARAMETER", "group must be a string")
    call.state.import_contact(call.credential, group, contact)
    return _ok(call, group=group, importdata=contact)


async def credits(request: Request, call: Call) -> Response:
    _unknown_keys(dict(request.query_params), QUERY_KEYS, "")
    # The seed's answer has no acceptedDateTime: status, statusCode and balance (float) only.
    return JSONResponse(
        {"status": "OK", "statusCode": 0, "balance": float(call.state.balance(call.credential))}
    )


async def optout(request: Request, call: Call) -> Response:
    await _check_keys(request, OPTOUT_BODY_KEYS)
    message = await _object_field(request, "message")
    _unknown_keys(message, OPTOUT_KEYS, "message")
    if message.get("mobilenumber") in (None, ""):
        raise _missing("message")
    number = _mobile_number(message["mobilenumber"])
    details = {key: _optional_text(message, key) for key in ("optoutresponse", "returnedresponse")}
    call.state.opt_out(call.credential, number, dict(details))
    return _ok(call, mobilenumber=number, optoutreason=details["optoutresponse"])


def _answering_refusals(handler: Handler) -> Handler:
    """Turn a `Refused` raised by a handler into Sendmode's error body (HTTP 200)."""

    async def run(request: Request, call: Call) -> Response:
        try:
            return await handler(request, call)
        except Refused as exc:
            return envelope(exc.status, exc.error)

    return run


def mounts() -> list[BaseRoute]:
    def route(path: str, handler: Handler, method: str) -> Route:
        return Route(path, endpoint(SENDMODE, _answering_refusals(handler)), methods=[method])

    return [
        Mount(
            "/v2",
            routes=[
                route("/send", send, "POST"),
                route("/import", import_contact, "POST"),
                route("/credits", credits, "GET"),
                route("/optout", optout, "POST"),
            ],
        )
    ]
