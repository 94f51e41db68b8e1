"""Constants, the running-sandbox handle and request builders shared by the sandbox tests."""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from models.clock import ManualClock
from sandbox.config import SandboxConfig
from sandbox.state import SandboxState

START = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
USER, PASSWORD, KEY = "sandbox-user", "sandbox-pass", "sandbox-key"
OTHER_USER, OTHER_PASSWORD, OTHER_KEY = "other-user", "other-pass", "other-key"
#: Built once: every httpx.Client otherwise loads the CA bundle again (~0.1 s), though we only speak http.
_SSL_CONTEXT = ssl.create_default_context()


@dataclass
class Sim:
    """A running sandbox: its base URL, its state, its clock, and client factories."""

    url: str
    state: SandboxState
    clock: ManualClock
    _stack: contextlib.ExitStack = field(repr=False)

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("verify", _SSL_CONTEXT)
        return self._stack.enter_context(httpx.Client(**kwargs))

    def retarus(
        self, user: str = USER, password: str = PASSWORD, prefix: str = "/rest/v1", **kw: Any
    ) -> httpx.Client:
        return self.client(base_url=self.url + prefix, auth=(user, password), **kw)

    def simple(self, **kw: Any) -> httpx.Client:
        return self.client(base_url=self.url + "/httpsimple/v1", **kw)

    def sendmode(self, key: str | None = KEY, **kw: Any) -> httpx.Client:
        headers = {} if key is None else {"Authorization": key}
        return self.client(base_url=self.url + "/v2", headers=headers, **kw)

    def control(self) -> httpx.Client:
        return self.client(base_url=self.url + "/_sandbox")


def make_config(**overrides: Any) -> SandboxConfig:
    values: dict[str, Any] = {
        "credentials": ((USER, SecretStr(PASSWORD)), (OTHER_USER, SecretStr(OTHER_PASSWORD))),
        "api_keys": (SecretStr(KEY), SecretStr(OTHER_KEY)),
    }
    values.update(overrides)
    return SandboxConfig(**values)


def one_sms(dst: str = "+4917600000000", text: str = "Hello", **options: Any) -> dict[str, Any]:
    """A minimal Retarus JobRequest body."""
    body: dict[str, Any] = {"messages": [{"text": text, "recipients": [{"dst": dst}]}]}
    if options:
        body["options"] = options
    return body


#: HTTP Simple credentials as parameters.
AUTH_SIMPLE = {"user": USER, "pass": PASSWORD}
