"""The provider clients and their one construction site, `build_client(connection)`.

Each client takes a ready `httpx.Client` and never reads settings; `build_client` makes that
client from a `ConnectionSettings` (timeouts, Basic auth for Retarus REST, User-Agent). Tests pass
`transport=httpx.MockTransport(...)`; nothing else changes. Build clients in the worker's child
process (never before fork) and `close()` them on shutdown.
"""

from __future__ import annotations

from typing import TypeAlias

import httpx

from models.enums import ProviderKey
from worker.providers.base import install_log_redaction, map_http_errors, parse_retry_after, raise_for_status
from worker.providers.retarus import RetarusClient
from worker.providers.retarus_http import RetarusHttpClient
from worker.providers.sendmode import InsufficientCredits, SendmodeClient
from worker.settings import ConnectionSettings

__all__ = [
    "USER_AGENT",
    "InsufficientCredits",
    "ProviderClient",
    "RetarusClient",
    "RetarusHttpClient",
    "SendmodeClient",
    "build_client",
    "install_log_redaction",
    "map_http_errors",
    "parse_retry_after",
    "raise_for_status",
]

#: The User-Agent every provider call carries.
USER_AGENT = "smsq/0.1"

#: Any of the three clients.
ProviderClient: TypeAlias = RetarusClient | RetarusHttpClient | SendmodeClient


def build_client(
    connection: ConnectionSettings, *, transport: httpx.BaseTransport | None = None
) -> ProviderClient:
    """The client for `connection`, with its own `httpx.Client` (close it with `client.close()`)."""
    auth = None
    if connection.provider is ProviderKey.RETARUS:
        auth = httpx.BasicAuth(connection.username, connection.password.get_secret_value())
    http = httpx.Client(
        auth=auth,
        timeout=httpx.Timeout(connection.timeout_s, connect=connection.connect_timeout_s),
        headers={"User-Agent": USER_AGENT},
        transport=transport,
    )
    if connection.provider is ProviderKey.RETARUS:
        return RetarusClient(http, connection.urls, name=connection.provider.value)
    if connection.provider is ProviderKey.RETARUS_HTTP:
        return RetarusHttpClient(
            http, connection.urls[0], connection.username, connection.password, name=connection.provider.value
        )
    return SendmodeClient(http, connection.urls[0], connection.api_key, name=connection.provider.value)
