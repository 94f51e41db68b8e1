"""Wire models of the legacy Retarus HTTP Simple interface (PROVIDERS.md section 2).

Only `user`, `pass`, `dst` and `msg` are documented. Everything else about this API is an
ASSUMPTION and lives in this module alone, so it can be changed in one place:

* the optional send parameters `src` (sender id), `bc` (billing code), `dn` (delivery notification,
  `true`/`false`), `qos` (`EXPRESS`/`NORMAL`) and `ref` (customer reference) — the Mail2SMS subject
  abbreviations, see `OPTIONAL_SEND_PARAMETERS`;
* POST /sms answers 201 (200 accepted too) with a `text/plain` body that is the job id;
* GET /reports answers 200 `text/plain` `"<processStatus> <status>"`; the status may be absent
  (e.g. `OPEN` for a pending SMS).

Data only: no I/O here.
"""

from __future__ import annotations

import re
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from models.enums import Qos

#: ASSUMPTION: the wire names of the optional send parameters, by model field.
OPTIONAL_SEND_PARAMETERS: Final[dict[str, str]] = {
    "src": "src",
    "bc": "bc",
    "dn": "dn",
    "qos": "qos",
    "ref": "ref",
}
#: ASSUMPTION: HTTP statuses POST /sms answers on success (the body is the job id either way).
SEND_SUCCESS_STATUSES: Final[frozenset[int]] = frozenset({200, 201})

_WORD = re.compile(r"[A-Z][A-Z0-9_]*")


class HttpSimpleSend(BaseModel):
    """The parameters of one POST /sms, without the credentials (the client adds `user`/`pass`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dst: str = Field(min_length=1)
    msg: str
    src: str | None = None
    bc: str | None = Field(None, max_length=70)
    dn: bool | None = None
    qos: Qos | None = None
    ref: str | None = None

    def form_params(self) -> dict[str, str]:
        """The form fields to send, unset options left out, booleans as `true`/`false`."""
        params = {"dst": self.dst, "msg": self.msg}
        for field, wire_name in OPTIONAL_SEND_PARAMETERS.items():
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, bool):
                params[wire_name] = "true" if value else "false"
            else:
                params[wire_name] = str(value)
        return params


class HttpSimpleReport(BaseModel):
    """The answer of GET /reports: Retarus's processStatus/status pair (models/status.py maps it)."""

    model_config = ConfigDict(frozen=True)

    process_status: str = Field(min_length=1)
    status: str | None = None

    @classmethod
    def parse(cls, text: str) -> HttpSimpleReport:
        """Read the ASSUMED `"<processStatus> <status>"` body; raises ValueError when it is not that."""
        parts = text.split()
        if not parts or len(parts) > 2:
            raise ValueError(f"expected '<processStatus> [<status>]', got {len(parts)} words")
        words = [part.upper() for part in parts]
        if not all(_WORD.fullmatch(word) for word in words):
            raise ValueError("processStatus and status must be words like DONE or SUC_ACC")
        return cls(process_status=words[0], status=words[1] if len(words) == 2 else None)
