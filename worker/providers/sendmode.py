"""Client of the Sendmode REST API v2 (PROVIDERS.md section 3): send, import customer, credits, opt-out.

Sendmode answers HTTP 200 and puts success or failure in the body (`statusCode` 0 = OK). A non-zero
code becomes the error class its entry in `models.sendmode.SENDMODE_ERROR_CODES` names, with a detail
like "INVALID_MOBILE_NUMBER (11): <the body's error text>". The access key goes in the raw
`Authorization` header of each request (no scheme prefix). Requests are JSON bodies with
`Content-Type: application/json` (seed 001): `{"message": {...}}` for send and opt-out,
`{"group": ..., "importdata": {...}}` for import. Every request is validated before it is sent: a bad
value raises InvalidRequest naming the field (`message.recipients`, `group`, ...), and nothing is sent.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter

from models.sendmode import (
    SENDMODE_OK,
    CreditsResponse,
    ErrorKind,
    ImportData,
    ImportResponse,
    OptOut,
    OptOutResponse,
    SendmodeMessage,
    SendmodeSendResponse,
    error_code,
)
from worker.errors import (
    InvalidRequest,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
    RetryableProviderError,
)
from worker.providers.base import (
    MAX_DETAIL_CHARS,
    checked,
    map_http_errors,
    raise_for_status,
    read_body,
    read_json,
    redact,
    unreadable,
)

__all__ = ["InsufficientCredits", "SendmodeClient"]

_R = TypeVar("_R", bound=BaseModel)


class InsufficientCredits(RetryableProviderError):
    """Sendmode refused the call for lack of credit; it may succeed once the account is topped up."""


_ERROR_CLASSES: dict[ErrorKind, type[ProviderError]] = {
    ErrorKind.PERMANENT: PermanentProviderError,
    ErrorKind.RETRYABLE: ProviderUnavailable,
    ErrorKind.AUTH: ProviderAuthError,
    ErrorKind.CREDITS: InsufficientCredits,
}


class SendmodeClient:
    """Talk to Sendmode REST v2 with one access key."""

    def __init__(
        self, http: httpx.Client, base_url: str, api_key: SecretStr, *, name: str = "sendmode"
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.name = name

    def __repr__(self) -> str:
        return f"SendmodeClient(name={self.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SendmodeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _secrets(self) -> tuple[str, ...]:
        return (self._api_key.get_secret_value(),)

    # --- operations ---------------------------------------------------------------------------------

    def send(self, message: SendmodeMessage) -> SendmodeSendResponse:
        """POST /send. Acceptance is final: Sendmode v2 has no status API and returns no message id."""
        wire = checked(SendmodeMessage, message, "message").to_wire()
        response = self._call("POST", "/send", {"message": wire}, repeatable=False)
        return self._read(response, SendmodeSendResponse, repeatable=False)

    def import_customer(self, data: ImportData, group: str) -> ImportResponse:
        """POST /import: add or update one customer in `group` (required, seed 001; created if missing).

        Treated as repeatable: importing the same customer twice leaves the same record.
        """
        if not isinstance(group, str) or not group.strip():
            raise InvalidRequest("group", "is required (the group to add the customer into)")
        body = {"group": group, "importdata": checked(ImportData, data, "importdata").to_wire()}
        response = self._call("POST", "/import", body, repeatable=True)
        return self._read(response, ImportResponse, repeatable=True)

    def credits(self) -> Decimal:
        """GET /credits: the account's balance."""
        response = self._call("GET", "/credits", None, repeatable=True)
        balance = self._read(response, CreditsResponse, repeatable=True).balance
        if balance is None:
            raise unreadable(
                response, self.name, "no balance in the answer", repeatable=True, secrets=self._secrets
            )
        return balance

    def opt_out(
        self, mobilenumber: str, optoutresponse: str | None = None, returnedresponse: str | None = None
    ) -> OptOutResponse:
        """POST /optout: stop messages to `mobilenumber` (repeatable: opting out twice changes nothing).

        `optoutresponse` is what the person sent to opt out, `returnedresponse` a custom response for
        downstream applications (seed 001); the answer's `mobilenumber`/`optoutreason` are top-level.
        """
        values = {
            "mobilenumber": mobilenumber,
            "optoutresponse": optoutresponse,
            "returnedresponse": returnedresponse,
        }
        message = checked(
            OptOut, {key: value for key, value in values.items() if value is not None}, "message"
        )
        response = self._call("POST", "/optout", {"message": message.to_wire()}, repeatable=True)
        return self._read(response, OptOutResponse, repeatable=True)

    # --- plumbing -----------------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, *, repeatable: bool
    ) -> httpx.Response:
        headers = {"Authorization": self._api_key.get_secret_value(), "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        with map_http_errors(self.name, repeatable=repeatable, secrets=self._secrets):
            response = self._http.request(method, f"{self.base_url}{path}", json=body, headers=headers)
        if response.status_code == 429 or response.status_code >= 500:
            raise_for_status(response, self.name, secrets=self._secrets)
        # Sendmode's own status beats the HTTP one (a refused key may come with 401 and statusCode 14).
        self._raise_for_body(response)
        raise_for_status(response, self.name, secrets=self._secrets)
        return response

    def _raise_for_body(self, response: httpx.Response) -> None:
        if not response.content:
            return
        try:
            body: Any = read_json(response, self.name)
        except ProviderError:
            return  # unreadable bodies are judged by the caller (status first, then the model)
        if not isinstance(body, dict):
            return
        code = body.get("statusCode")
        if not isinstance(code, int) or isinstance(code, bool) or code == SENDMODE_OK:
            return
        status = body.get("status") if isinstance(body.get("status"), str) else None
        entry = error_code(code, status)
        text = body.get("error") or body.get("message") or entry.description
        detail = redact(f"{entry.identifier} ({code}): {text}", self._secrets)[:MAX_DETAIL_CHARS]
        http_status = response.status_code if response.status_code >= 300 else None
        raise _ERROR_CLASSES[entry.kind](self.name, detail, http_status)

    def _read(self, response: httpx.Response, model: type[_R], *, repeatable: bool) -> _R:
        result = read_body(
            response, TypeAdapter(model), self.name, repeatable=repeatable, secrets=self._secrets
        )
        # Non-zero codes were raised already. A send without any statusCode may or may not have been
        # accepted; the repeatable calls are judged by their payload alone.
        if not repeatable and getattr(result, "status_code", None) != SENDMODE_OK:
            raise unreadable(
                response, self.name, "no statusCode 0 in the answer", repeatable=False, secrets=self._secrets
            )
        return result
