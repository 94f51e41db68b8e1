"""The HTTP boundary shared by every provider client: httpx faults and HTTP statuses -> worker.errors.

    transport fault before the request left      ConnectError, ConnectTimeout, PoolTimeout, ...
                                                 -> ProviderUnavailable
    transport fault after it may have arrived    ReadTimeout, ReadError, WriteTimeout, WriteError,
                                                 RemoteProtocolError, ... -> DeliveryUnknown
                                                 (ProviderUnavailable for a repeatable call)
    429                                          -> ProviderThrottled(retry_after_s from Retry-After)
    401, 403                                     -> ProviderAuthError
    5xx                                          -> ProviderUnavailable
    other non-2xx                                -> PermanentProviderError (the provider's message)
    2xx with an unreadable body                  -> DeliveryUnknown (ProviderUnavailable if repeatable)

`repeatable=True` marks a call that is safe to make again (a GET, an idempotent update): for those,
"did it arrive?" does not matter, so every fault is simply retryable. Provider-specific statuses
(Retarus 404 failover, 409 duplicate) are handled by the client before `raise_for_status`.

No secret ever reaches an error: messages carry the URL without its query, known secrets are
replaced by `***`, and the httpx exception is not chained (its request URL may hold `pass=`).
`install_log_redaction()` does the same for httpx's own "HTTP Request: ..." log line, and masks the
number and text an HTTP Simple send carries in its query.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from worker.errors import (
    DeliveryUnknown,
    InvalidRequest,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderUnavailable,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

#: How much of a provider's error text goes into an error message.
MAX_DETAIL_CHARS = 200
#: Query parameters whose values are secrets (HTTP Simple `pass`, Sendmode `access_key`).
SECRET_QUERY_PARAMETERS = frozenset({"pass", "password", "access_key", "api_key", "key", "token"})
#: Query parameters that carry a message (HTTP Simple `dst` and `msg`): kept out of the request log too.
PERSONAL_QUERY_PARAMETERS = frozenset({"dst", "msg"})
_MASKED_IN_LOG = SECRET_QUERY_PARAMETERS | PERSONAL_QUERY_PARAMETERS

#: Faults raised before any byte of the request can have been processed by the provider.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)
_URL_QUERY = re.compile(r"(https?://[^\s?#'\"<>]+)\?[^\s#'\"<>]*")


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` with every URL query string and every given secret value masked."""
    text = _URL_QUERY.sub(r"\1?***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def safe_url(url: httpx.URL) -> str:
    """The URL without query or credentials, fit for messages and logs."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date relative to `now`.

    Returns None when the header is missing or unreadable; a date in the past gives 0.0.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; parsedate_to_datetime leaves "-0000" naive
        when = when.replace(tzinfo=UTC)
    reference = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - reference).total_seconds())


def provider_message(response: httpx.Response, secrets: Sequence[str] = ()) -> str:
    """The provider's own words about a failed call, at most MAX_DETAIL_CHARS long.

    Reads Retarus `{"code", "message"}` and Sendmode `{"status", "statusCode", "error"}` bodies;
    otherwise the raw text; otherwise the HTTP reason phrase.
    """
    text = _safe_text(response)
    message = ""
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        if isinstance(body, dict):
            for key in ("message", "error", "status"):
                if isinstance(body.get(key), str) and body[key].strip():
                    message = body[key].strip()
                    break
    if not message:
        message = " ".join(text.split()) or response.reason_phrase or f"HTTP {response.status_code}"
    return redact(message, secrets)[:MAX_DETAIL_CHARS]


def raise_for_status(
    response: httpx.Response,
    provider: str,
    *,
    secrets: Sequence[str] = (),
    now: datetime | None = None,
) -> None:
    """Raise the worker.errors class for a non-2xx `response`; return quietly on 2xx."""
    code = response.status_code
    if 200 <= code < 300:
        return
    where = f"{response.request.method} {safe_url(response.request.url)}"
    message = provider_message(response, secrets)
    if code == 429:
        retry_after_s = parse_retry_after(response.headers.get("Retry-After"), now=now)
        raise ProviderThrottled(provider, retry_after_s, f"throttled on {where}: {message}")
    if code in (401, 403):
        raise ProviderAuthError(provider, f"credentials refused on {where}: {message}", code)
    if code >= 500:
        raise ProviderUnavailable(provider, f"{where}: {message}", code)
    raise PermanentProviderError(provider, f"{where}: {message}", code)


@contextlib.contextmanager
def map_http_errors(
    provider: str, *, repeatable: bool = False, secrets: Sequence[str] = ()
) -> Iterator[None]:
    """Turn httpx transport faults inside the block into worker.errors (see the module docstring)."""
    try:
        yield
    except httpx.TransportError as exc:
        detail = _describe(exc, secrets)
        if repeatable or isinstance(exc, _NOT_SENT):
            raise ProviderUnavailable(provider, detail) from None
        raise DeliveryUnknown(provider, f"{detail}; the request may have reached the provider") from None


def invalid_request(exc: ValidationError, prefix: str = "") -> InvalidRequest:
    """The InvalidRequest for the first problem pydantic found: the dotted wire name and the rule."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    field = ".".join(part for part in (prefix, where) if part) or prefix or "request"
    return InvalidRequest(field, str(error["msg"]).removeprefix("Value error, "))


def checked(model: type[M], value: M | dict[str, Any], prefix: str = "") -> M:
    """`value` validated afresh as `model` (a model built with `model_construct` or changed after
    construction is checked again); a bad value raises InvalidRequest before any request is made."""
    data = value.model_dump(by_alias=True, exclude_none=True) if isinstance(value, BaseModel) else value
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_request(exc, prefix) from None


def read_body(
    response: httpx.Response,
    adapter: TypeAdapter[T],
    provider: str,
    *,
    repeatable: bool = False,
    secrets: Sequence[str] = (),
) -> T:
    """Validate a 2xx JSON body; an unreadable one is DeliveryUnknown (ProviderUnavailable if repeatable)."""
    try:
        return adapter.validate_json(response.content)
    except ValidationError as exc:
        raise unreadable(
            response, provider, _first_problem(exc), repeatable=repeatable, secrets=secrets
        ) from None


def read_json(
    response: httpx.Response, provider: str, *, repeatable: bool = False, secrets: Sequence[str] = ()
) -> Any:
    """The 2xx body as plain JSON; unreadable as in `read_body`."""
    try:
        return json.loads(response.content)
    except ValueError:
        raise unreadable(response, provider, "not JSON", repeatable=repeatable, secrets=secrets) from None


def unreadable(
    response: httpx.Response, provider: str, problem: str, *, repeatable: bool, secrets: Sequence[str] = ()
) -> ProviderError:
    """The error for a success status whose body cannot be understood."""
    where = f"{response.request.method} {safe_url(response.request.url)}"
    detail = redact(f"unreadable {response.status_code} body from {where}: {problem}", secrets)
    if repeatable:
        return ProviderUnavailable(provider, detail, response.status_code)
    return DeliveryUnknown(provider, f"{detail}; the request may have been accepted", response.status_code)


def _describe(exc: httpx.TransportError, secrets: Sequence[str]) -> str:
    try:
        where = f" on {exc.request.method} {safe_url(exc.request.url)}"
    except RuntimeError:  # no request attached
        where = ""
    text = str(exc).strip()
    return redact(f"{type(exc).__name__}{where}" + (f": {text}" if text else ""), secrets)[:400]


def _safe_text(response: httpx.Response) -> str:
    try:
        return response.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors(include_url=False, include_input=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


# --- httpx's request log ----------------------------------------------------------------------------


class _RedactQueryFilter(logging.Filter):
    """Masks secret and personal query parameters in httpx's "HTTP Request: %s %s ..." log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(arg, httpx.URL) for arg in record.args):
            record.args = tuple(
                _redact_url(arg) if isinstance(arg, httpx.URL) else arg for arg in record.args
            )
        return True


def _redact_url(url: httpx.URL) -> httpx.URL:
    if not url.query:
        return url
    params = [
        (key, "***" if key.lower() in _MASKED_IN_LOG else value) for key, value in url.params.multi_items()
    ]
    return url.copy_with(params=params)


_LOG_FILTER = _RedactQueryFilter()


def install_log_redaction() -> None:
    """Mask secret query parameters, and the number and text of an HTTP Simple send, in httpx's request
    log (idempotent; call before using a client). Workers and beat log it at WARNING only (`worker.app`)."""
    logger = logging.getLogger("httpx")
    if _LOG_FILTER not in logger.filters:
        logger.addFilter(_LOG_FILTER)
