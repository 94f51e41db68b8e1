"""The path every provider call takes through the sandbox, the same for all three APIs:

    record -> authenticate -> rate limit -> fail_next -> hold -> process -> slow / drop / malformed

Each API supplies an `Api` (how it authenticates and how its errors look) and a handler that does the
real work. The call record is completed before the answer is sent, so a client that has its answer
(or timed out on a slow one) already finds the call in `state.calls()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from sandbox.config import SandboxConfig
from sandbox.limiter import retry_after_header
from sandbox.scenarios import MAGIC_RETRY_AFTER_S, send_fault_for
from sandbox.state import CallRecord, SandboxState

#: Scope key under which the app keeps the server's own `send` (see app.SandboxApp), needed to drop a
#: connection without answering.
RAW_SEND_KEY = "sandbox.raw_send"
#: How often a held call checks whether it was released or its caller went away.
HOLD_POLL_S = 0.01


@dataclass
class Call:
    """What a handler gets besides the request: the state, its call record and the caller's label."""

    state: SandboxState
    record: CallRecord
    credential: str

    def concerns(self, *job_ids: str) -> None:
        """Note the job id(s) this call is about in its record."""
        self.record.job_ids.extend(job_ids)


Handler = Callable[[Request, Call], Awaitable[Response]]


class Api:
    """How one provider API authenticates and writes its errors; subclassed per API."""

    name = "api"

    async def authenticate(self, request: Request, config: SandboxConfig) -> str | None:
        """The caller's credential label, or None when the credentials are missing or wrong."""
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        raise NotImplementedError

    def unauthorized(self) -> Response:
        return self.error(401, "Unauthorized")

    def too_many_requests(self, wait_s: float) -> Response:
        response = self.error(429, "Too Many Requests")
        response.headers["Retry-After"] = retry_after_header(wait_s)
        return response

    def magic_send_fault(self, numbers: Iterable[str], call: Call) -> Response | None:
        """The answer a send naming a magic fault number (scenarios.SEND_FAULTS) gets, or None."""
        status = send_fault_for(numbers)
        if status is None:
            return None
        call.record.fault = "magic"
        if status == 429:
            return self.too_many_requests(MAGIC_RETRY_AFTER_S)
        return self.error(status, "Internal Server Error")


def sandbox_state(request: Request) -> SandboxState:
    state = request.app.state.sandbox
    assert isinstance(state, SandboxState)
    return state


async def run_call(request: Request, api: Api, handler: Handler, *, public: bool = False) -> Response:
    """Run one provider call through the pipeline. `public` calls need no credentials and are not limited."""
    state = sandbox_state(request)
    await request.body()  # buffer it: handlers and authentication may read it again
    path = request.url.path
    record = state.begin_call(api.name, request.method, path)
    credential = ""
    if not public:
        label = await api.authenticate(request, state.config)
        if label is None:
            return _finish(record, api.unauthorized())
        credential = record.credential = label
        wait_s = state.limiter.try_acquire(label)
        if wait_s > 0:
            return _finish(record, api.too_many_requests(wait_s), "rate_limited")
    failure = state.faults.take_failure(record.credential, path)
    if failure is not None:
        return _finish(record, api.error(failure, "Injected failure"), "fail_next")
    hold = state.faults.take_hold(record.credential, path)
    if hold is not None:
        record.held, record.fault = True, "held"
        while state.faults.holding(hold):
            if not hold.late and await request.is_disconnected():
                # The caller is gone: nothing is processed, so nothing exists at the provider.
                record.fault = "disconnected"
                return Response(status_code=499)
            await asyncio.sleep(HOLD_POLL_S)
        record.fault = None  # released: from here on it is an ordinary call (`held` stays True)
    response = await handler(request, Call(state, record, credential))
    success = 200 <= response.status_code < 300
    effects = state.faults.take_after_effects(record.credential, path, malformable=success)
    fault = record.fault
    if effects.delay_s:
        fault = "slow"
    if effects.drop:
        fault = "drop"
    elif effects.malformed:
        fault = "malformed"
        response = _garbled(response)
    _finish(record, response, fault)
    if effects.delay_s:
        await asyncio.sleep(effects.delay_s)
    return DroppedConnection() if effects.drop else response


def _finish(record: CallRecord, response: Response, fault: str | None = None) -> Response:
    record.status_code = response.status_code
    if fault is not None:
        record.fault = fault
    return response


def _garbled(response: Response) -> Response:
    """Same status and media type, body cut in half behind two bytes that are neither UTF-8 nor JSON."""
    half = bytes(response.body[: len(response.body) // 2])
    return Response(b"\xff\x00" + half, status_code=response.status_code, media_type=response.media_type)


class DroppedConnection(Response):
    """Closes the TCP connection without sending a byte of an answer (needs uvicorn, which the sandbox
    runs on: its `send` is a method of the request cycle, which owns the transport)."""

    def __init__(self) -> None:
        super().__init__(status_code=499)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_send = scope.get(RAW_SEND_KEY)
        transport = getattr(getattr(raw_send, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("dropping a connection needs the uvicorn server")
        transport.close()
        # Wait until the server noticed, so it does not complain that no answer was started.
        while (await receive())["type"] != "http.disconnect":
            pass


def endpoint(api: Api, handler: Handler, *, public: bool = False) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint running `handler` through the pipeline."""

    async def run(request: Request) -> Response:
        return await run_call(request, api, handler, public=public)

    return run
