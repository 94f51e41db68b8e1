"""The sandbox ASGI app: Retarus REST v1 (`/rest/v1`, plus `/dc2/rest/v1` as a second data center),
Retarus HTTP Simple (`/httpsimple/v1`), Sendmode v2 (`/v2`) and the control API (`/_sandbox`), all over
one `SandboxState` reachable as `app.state.sandbox`.

Run it with `python -m sandbox`, `smsq sandbox`, or `uvicorn --factory sandbox.app:create_app_from_env`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from models.clock import Clock
from sandbox import control, httpsimple, retarus, sendmode
from sandbox.config import SandboxConfig
from sandbox.pipeline import RAW_SEND_KEY
from sandbox.state import SandboxState


class SandboxApp(Starlette):
    """Starlette that keeps the server's own `send` in the scope, so a fault can drop the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope[RAW_SEND_KEY] = send
        await super().__call__(scope, receive, send)


def create_app(
    config: SandboxConfig | None = None, *, clock: Clock | None = None, state: SandboxState | None = None
) -> Starlette:
    """The app over `state`, or over a fresh state built from `config` and `clock` (real time by default)."""
    if state is None:
        state = SandboxState(config, clock)
    elif config is not None or clock is not None:
        raise ValueError("pass either a state or a config/clock, not both")
    routes = [
        *retarus.mounts(state.config.extra_datacenters),
        *httpsimple.mounts(),
        *sendmode.mounts(),
        *control.mounts(),
    ]
    app = SandboxApp(routes=routes)
    app.state.sandbox = state
    return app


def create_app_from_env() -> Starlette:
    """The app accepting the credentials the SMSQ_PROVIDER_* variables name, on real time."""
    return create_app(SandboxConfig.from_env())
