"""The sandbox's settings: which credentials it accepts, its own rate limit and its progress timing.

One environment configures both smsq and the sandbox: `SandboxConfig.from_env()` accepts the credentials
that `SMSQ_PROVIDER_USERNAME`, `SMSQ_PROVIDER_PASSWORD` and `SMSQ_PROVIDER_API_KEY` name, falling back to
the documented defaults below when they are unset. Tests build a `SandboxConfig` directly and may list
several accepted (username, password) pairs and API keys, each of which gets its own rate limit.

Call records, fault knobs and the rate limit name a credential by its *label*: the username for Basic
auth and HTTP Simple (so one account shares one limit across both Retarus APIs), and for a Sendmode key
`key-<first 8 hex digits of its SHA-256>` (never the key itself).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr

#: Credentials accepted when the SMSQ_PROVIDER_* variables are unset.
DEFAULT_USERNAME = "sandbox-user"
DEFAULT_PASSWORD = "sandbox-pass"
DEFAULT_API_KEY = "sandbox-key"
#: The published connector limit: calls per credential per period (PROVIDERS.md 3.8).
DEFAULT_LIMIT_CALLS = 100
DEFAULT_LIMIT_PERIOD_S = 60.0
#: Sendmode credit balance every accepted API key starts with.
DEFAULT_CREDITS = 1000.0


def api_key_label(api_key: str) -> str:
    """The name under which a Sendmode key appears in call records and fault knobs."""
    return "key-" + hashlib.sha256(api_key.encode()).hexdigest()[:8]


class SandboxConfig(BaseModel):
    """Everything the sandbox can be told at start-up."""

    model_config = ConfigDict(frozen=True)

    #: Accepted Basic / HTTP Simple (username, password) pairs.
    credentials: tuple[tuple[str, SecretStr], ...] = ((DEFAULT_USERNAME, SecretStr(DEFAULT_PASSWORD)),)
    #: Accepted Sendmode access keys.
    api_keys: tuple[SecretStr, ...] = (SecretStr(DEFAULT_API_KEY),)
    limit_calls: int = Field(DEFAULT_LIMIT_CALLS, ge=1)
    limit_period_s: float = Field(DEFAULT_LIMIT_PERIOD_S, gt=0)
    #: Sandbox-clock seconds a due recipient stays OPEN before it is sent (RUNNING).
    accept_s: float = Field(2.0, ge=0)
    #: Sandbox-clock seconds a recipient stays RUNNING before it is DONE.
    deliver_s: float = Field(3.0, ge=0)
    initial_credits: float = Field(DEFAULT_CREDITS, ge=0)
    #: Extra Retarus data centers, each served under `/<name>/rest/v1` with a job store of its own.
    extra_datacenters: tuple[str, ...] = ("dc2",)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> SandboxConfig:
        """Accept the credentials the SMSQ_PROVIDER_* variables name (defaults when unset)."""
        env = os.environ if environ is None else environ
        username = env.get("SMSQ_PROVIDER_USERNAME") or DEFAULT_USERNAME
        password = env.get("SMSQ_PROVIDER_PASSWORD") or DEFAULT_PASSWORD
        api_key = env.get("SMSQ_PROVIDER_API_KEY") or DEFAULT_API_KEY
        values: dict[str, object] = {
            "credentials": ((username, SecretStr(password)),),
            "api_keys": (SecretStr(api_key),),
        }
        values.update(overrides)
        return cls.model_validate(values)

    def check_password(self, username: str, password: str) -> bool:
        """True when (username, password) is an accepted pair; constant-time on the password."""
        ok = False
        for known_user, known_password in self.credentials:
            same_password = hmac.compare_digest(known_password.get_secret_value().encode(), password.encode())
            ok |= known_user == username and same_password
        return ok

    def key_label(self, api_key: str) -> str | None:
        """The label of an accepted Sendmode key, or None when the key is not accepted."""
        for known in self.api_keys:
            if hmac.compare_digest(known.get_secret_value().encode(), api_key.encode()):
                return api_key_label(api_key)
        return None

    def credential_label(self, credential: str) -> str:
        """Normalise what a caller names a credential by: an accepted raw API key becomes its label."""
        return self.key_label(credential) or credential
