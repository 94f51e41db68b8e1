"""Running the sandbox: in a background thread on an ephemeral loopback port (tests), or blocking in the
foreground (`python -m sandbox`, `smsq sandbox`).

uvicorn's access log is off: HTTP Simple carries `pass`, `dst` and `msg` in the query string, and
passwords, phone numbers and message text never go to logs.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette

from models.clock import Clock, make_clock
from sandbox.app import create_app
from sandbox.config import SandboxConfig
from sandbox.state import SandboxState

#: How long to wait for the thread server to start, and to stop gracefully before forcing it.
STARTUP_TIMEOUT_S = 10.0
SHUTDOWN_TIMEOUT_S = 5.0


@contextmanager
def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve `app` from a daemon thread; yields its base URL ("http://127.0.0.1:PORT")."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when proto says TCP,
    # and without it every answer waits ~40 ms for a delayed ACK (headers and body are two writes).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=int(SHUTDOWN_TIMEOUT_S),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the sandbox server did not start")
        time.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    try:
        yield f"http://{bound_host}:{bound_port}"
    finally:
        state = getattr(app.state, "sandbox", None)
        if isinstance(state, SandboxState):
            state.release()  # held calls would otherwise keep the server from stopping
        server.should_exit = True
        thread.join(SHUTDOWN_TIMEOUT_S)
        if thread.is_alive():
            server.force_exit = True
            thread.join(SHUTDOWN_TIMEOUT_S)
        sock.close()


def run(host: str, port: int, config: SandboxConfig | None = None, clock: Clock | None = None) -> None:
    """Serve the sandbox in the foreground until interrupted."""
    app = create_app(config or SandboxConfig.from_env(), clock=clock)
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False)).run()


def main(
    host: str, port: int, limit_calls: int, limit_period_s: float, speed: float, epoch: float | None
) -> None:
    """Entry point for `smsq sandbox` and `python -m sandbox`: credentials from SMSQ_PROVIDER_*, its own
    per-credential limit, and a clock `speed` times faster than real time from `epoch` (UNIX seconds)."""
    config = SandboxConfig.from_env(limit_calls=limit_calls, limit_period_s=limit_period_s)
    run(host, port, config, make_clock(speed, epoch))
