"""Wire models of the legacy Retarus HTTP Simple interface (PROVIDERS.md section 2, seed 002).

Settled by seed 002: every parameter of POST /sms and GET /reports is a **query parameter**
(`user` and `pass` included); POST /sms takes `dst`, `msg`, `src`, `bc` (at most 70 characters),
`dn` (boolean, default false), `qos` (lowercase `normal` | `express`, default `normal`) and `ref`
(at most 192 characters when all US-ASCII, otherwise at most 70); it answers 201 with the job id
as text; GET /reports answers 200/400/401/405/500 only.

Still ASSUMPTIONs, kept in this module alone:

* a 200 to POST /sms is accepted like 201 (`SEND_SUCCESS_STATUSES`);
* GET /reports answers `text/plain` `"<processStatus> <status>"`, the status left out when empty
  (e.g. `OPEN` for a pending SMS).

Data only: no I/O here.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.retarus import MAX_BILLCODE_CHARS, SRC_PATTERN

#: ASSUMPTION: HTTP statuses POST /sms answers on success (the body is the job id either way).
SEND_SUCCESS_STATUSES: Final[frozenset[int]] = frozenset({200, 201})
#: `ref` length: at most this many characters when every character is US-ASCII ...
MAX_REF_ASCII_CHARS: Final = 192
#: ... otherwise at most this many.
MAX_REF_CHARS: Final = 70
#: The send parameters, in the order they go on the query string (after `user` and `pass`).
SEND_PARAMETERS: Final = ("dst", "msg", "src", "bc", "dn", "qos", "ref")


class HttpSimpleQos(StrEnum):
    """HTTP Simple `qos`: lowercase (REST v1's `qos` is uppercase, models.enums.Qos)."""

    NORMAL = "normal"
    EXPRESS = "express"


def ref_rule(ref: str) -> str | None:
    """Why `ref` is too long, or None when it fits (192 US-ASCII characters, else 70)."""
    if ref.isascii():
        if len(ref) > MAX_REF_ASCII_CHARS:
            return f"at most {MAX_REF_ASCII_CHARS} US-ASCII characters, got {len(ref)}"
    elif len(ref) > MAX_REF_CHARS:
        return f"at most {MAX_REF_CHARS} characters when not all US-ASCII, got {len(ref)}"
    return None


class HttpSimpleSend(BaseModel):
    """The parameters of one POST /sms, without the credentials (the client adds `user`/`pass`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dst: str = Field(min_length=1)
    msg: str = Field(min_length=1)
    src: str | None = None
    bc: str | None = Field(None, max_length=MAX_BILLCODE_CHARS)
    dn: bool | None = None
    qos: HttpSimpleQos | None = None
    ref: str | None = None

    @field_validator("qos", mode="before")
    @classmethod
    def _lowercase_qos(cls, value: Any) -> Any:
        # REST-style EXPRESS/NORMAL (models.enums.Qos or text) is accepted and sent lowercase.
        if isinstance(value, str):
            return value.strip().lower()
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

    @field_validator("ref")
    @classmethod
    def _check_ref(cls, value: str | None) -> str | None:
        if value is not None:
            problem = ref_rule(value)
            if problem is not None:
                raise ValueError(problem)
        return value

    def query_params(self) -> list[tuple[str, str]]:
        """The query parameters to send, unset options left out, `dn` as `true`/`false`."""
        params: list[tuple[str, str]] = []
        for name in SEND_PARAMETERS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool):
                params.append((name, "true" if value else "false"))
            else:
                params.append((name, str(value)))
        return params


class HttpSimpleReport(BaseModel):
    """The answer of GET /reports: Retarus's processStatus/status pair (models/status.py maps it)."""

    model_config = ConfigDict(frozen=True)

    process_status: str = Field(min_length=1)
    status: str | None = None

    @classmethod
    def parse(cls, text: str) -> HttpSimpleReport:
        """Read the ASSUMED `"<processStatus> [<status>]"` body; raises ValueError when it is not that."""
        parts = text.split()
        if not parts or len(parts) > 2:
            raise ValueError(f"expected '<processStatus> [<status>]', got {len(parts)} words")
        if not all(part.isascii() and part.isprintable() for part in parts):
            raise ValueError("processStatus and status must be printable US-ASCII words")
        process = parts[0].upper()
        if not process.isalpha():
            raise ValueError("processStatus must be a word like DONE or OPEN")
        return cls(process_status=process, status=parts[1].upper() if len(parts) == 2 else None)
