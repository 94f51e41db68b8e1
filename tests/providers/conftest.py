"""Fixtures for the provider-client tests: a recording MockTransport and ready clients on top of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from worker.providers import RetarusClient, RetarusHttpClient, SendmodeClient

Handler = Callable[[httpx.Request], httpx.Response]

RETARUS_PRIMARY = "https://de2.retarus.test/rest/v1"
RETARUS_SECONDARY = "https://de1.retarus.test/rest/v1"
HTTP_SIMPLE_URL = "https://sms4a.retarus.test/httpsimple/v1"
SENDMODE_URL = "https://rest.sendmode.test/v2"
PASSWORD = "pa55-w0rd-secret"
API_KEY = "sm-api-key-secret"


class Recorder:
    """A MockTransport that answers with `handler` and keeps every request it saw."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.handler: Handler = lambda request: httpx.Response(500)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def retarus(recorder: Recorder) -> Iterator[RetarusClient]:
    client = RetarusClient(
        httpx.Client(transport=recorder.transport, auth=("user", PASSWORD)),
        [RETARUS_PRIMARY, RETARUS_SECONDARY],
    )
    yield client
    client.close()


@pytest.fixture
def http_simple(recorder: Recorder) -> Iterator[RetarusHttpClient]:
    client = RetarusHttpClient(
        httpx.Client(transport=recorder.transport), HTTP_SIMPLE_URL, "user", SecretStr(PASSWORD)
    )
    yield client
    client.close()


@pytest.fixture
def sendmode(recorder: Recorder) -> Iterator[SendmodeClient]:
    client = SendmodeClient(httpx.Client(transport=recorder.transport), SENDMODE_URL, SecretStr(API_KEY))
    yield client
    client.close()
