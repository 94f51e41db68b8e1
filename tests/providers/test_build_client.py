"""build_client: one construction site turning a ConnectionSettings into a ready client."""

from __future__ import annotations

import base64

import httpx
import pytest
from pydantic import SecretStr

from models.enums import ProviderKey
from worker.providers import RetarusClient, RetarusHttpClient, SendmodeClient, build_client
from worker.settings import ConnectionSettings

from .conftest import Recorder


def connection(provider: ProviderKey, urls: str, **credentials) -> ConnectionSettings:
    return ConnectionSettings(
        name="default", provider=provider, urls=urls, timeout_s=7, connect_timeout_s=2, **credentials
    )


def test_retarus_gets_basic_auth_every_url_and_the_user_agent(recorder: Recorder):
    recorder.handler = lambda request: httpx.Response(200, json={"versionInfo": "1.0"})
    settings = connection(
        ProviderKey.RETARUS,
        "https://a.test/rest/v1, https://b.test/rest/v1/",
        username="u",
        password=SecretStr("p"),
    )

    client = build_client(settings, transport=recorder.transport)

    assert isinstance(client, RetarusClient)
    assert client.base_urls == ("https://a.test/rest/v1", "https://b.test/rest/v1")
    assert client.version().version_info == "1.0"
    request = recorder.requests[0]
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert request.headers["User-Agent"] == "smsq/0.1"
    timeout = client._http.timeout
    assert (timeout.read, timeout.connect) == (7, 2)
    client.close()
    assert client._http.is_closed


def test_http_simple_gets_no_basic_auth(recorder: Recorder):
    recorder.handler = lambda request: httpx.Response(201, text="J.1")
    settings = connection(
        ProviderKey.RETARUS_HTTP, "https://h.test/httpsimple/v1", username="u", password=SecretStr("p")
    )

    with build_client(settings, transport=recorder.transport) as client:
        assert isinstance(client, RetarusHttpClient)
        assert client.send("+49", "hi") == "J.1"

    assert "Authorization" not in recorder.requests[0].headers
    assert recorder.requests[0].headers["User-Agent"] == "smsq/0.1"


def test_sendmode_gets_the_api_key_header_only(recorder: Recorder):
    recorder.handler = lambda request: httpx.Response(
        200, json={"status": "OK", "statusCode": 0, "balance": 5}
    )
    settings = connection(ProviderKey.SENDMODE, "https://s.test/v2", api_key=SecretStr("key-1"))

    with build_client(settings, transport=recorder.transport) as client:
        assert isinstance(client, SendmodeClient)
        assert client.credits() == 5

    assert recorder.requests[0].headers["Authorization"] == "key-1"


@pytest.mark.parametrize("provider", list(ProviderKey))
def test_every_provider_key_builds_a_client_whose_repr_hides_secrets(provider):
    settings = connection(
        provider,
        "https://x.test/api",
        username="u",
        password=SecretStr("the-password-9"),
        api_key=SecretStr("the-api-key-9"),
    )
    client = build_client(settings)
    assert client.name == provider.value
    assert "the-password-9" not in repr(client) and "the-api-key-9" not in repr(client)
    client.close()
