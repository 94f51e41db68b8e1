"""The control API under `/_sandbox/` (no auth): lets tests in other processes and the demo read and steer
the sandbox over HTTP, mirroring the `SandboxState` methods.

    GET  /_sandbox/calls?credential=&path_prefix=&since=
                                                    call records, oldest first (since: skip the first n)
    POST /_sandbox/reset                            forget everything
    GET  /_sandbox/faults                           active fault knobs
    POST /_sandbox/faults                           {"kind": "fail_next"|"slow"|"drop"|"malformed"|"hold",
                                                     "late" (hold only: process on release even if the
                                                     caller left),
                                                     "n", "status", "seconds", "credential", "path_prefix"}
    POST /_sandbox/release                          {"path_prefix"} optional; lets held calls proceed
    GET  /_sandbox/jobs                             all Retarus jobs (recipients, states), Sendmode sends
    POST /_sandbox/credits                          {"api_key", "balance"}
    GET  /_sandbox/optouts                          {credential label: [opt-outs]}
    GET  /_sandbox/contacts                         {credential label: {group: [contacts]}}
    GET  /_sandbox/clock                            {"now": sandbox time}

These calls are not provider calls: they are neither recorded nor rate limited.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sandbox.faults import FaultKind
from sandbox.jobs import format_ts
from sandbox.pipeline import sandbox_state


class _BadControl(ValueError):
    pass


async def _json_object(request: Request) -> dict[str, object]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _BadControl("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise _BadControl("body must be a JSON object")
    return body


def _opt_str(body: dict[str, object], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _BadControl(f"{key} must be a string")
    return value


def _opt_int(body: dict[str, object], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _BadControl(f"{key} must be an integer")
    return value


def _opt_float(body: dict[str, object], key: str) -> float | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _BadControl(f"{key} must be a number")
    return None if value is None else float(value)


async def calls(request: Request) -> Response:
    state = sandbox_state(request)
    since = request.query_params.get("since", "0")
    if not since.isdecimal():
        return JSONResponse({"error": "since must be a whole number, 0 or more"}, status_code=400)
    found = state.calls(
        request.query_params.get("credential"), request.query_params.get("path_prefix"), int(since)
    )
    return JSONResponse([record.to_dict() for record in found])


async def reset(request: Request) -> Response:
    sandbox_state(request).reset()
    return JSONResponse({"ok": True})


async def list_faults(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).faults.active())


async def add_fault(request: Request) -> Response:
    state = sandbox_state(request)
    try:
        body = await _json_object(request)
        try:
            kind = FaultKind(str(body.get("kind")))
        except ValueError:
            raise _BadControl(f"kind must be one of {', '.join(k.value for k in FaultKind)}") from None
        n, credential, prefix = (
            _opt_int(body, "n"),
            _opt_str(body, "credential"),
            _opt_str(body, "path_prefix"),
        )
        if kind is FaultKind.FAIL_NEXT:
            state.fail_next(n or 1, _opt_int(body, "status") or 500, credential, prefix)
        elif kind is FaultKind.SLOW:
            state.slow(_opt_float(body, "seconds") or 0.0, credential, prefix, n)
        elif kind is FaultKind.DROP:
            state.drop(n or 1, credential, prefix)
        elif kind is FaultKind.MALFORMED:
            state.malformed(n or 1, credential, prefix)
        else:
            late = body.get("late", False)
            if not isinstance(late, bool):
                raise _BadControl("late must be a boolean")
            state.hold(prefix, credential, late=late, n=n)
    except (_BadControl, ValueError) as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"ok": True, "faults": state.faults.active()})


async def release(request: Request) -> Response:
    try:
        prefix = _opt_str(await _json_object(request), "path_prefix")
    except _BadControl as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({"released": sandbox_state(request).release(prefix)})


async def jobs(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).snapshot_jobs())


async def set_credits(request: Request) -> Response:
    try:
        body = await _json_object(request)
        api_key, balance = _opt_str(body, "api_key"), _opt_float(body, "balance")
        if api_key is None or balance is None:
            raise _BadControl("api_key (string) and balance (number) are required")
    except _BadControl as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    sandbox_state(request).set_credits(api_key, balance)
    return JSONResponse({"ok": True})


async def optouts(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).optouts())


async def contacts(request: Request) -> Response:
    return JSONResponse(sandbox_state(request).contacts())


async def clock(request: Request) -> Response:
    return JSONResponse({"now": format_ts(sandbox_state(request).now())})


def mounts() -> list[BaseRoute]:
    return [
        Mount(
            "/_sandbox",
            routes=[
                Route("/calls", calls, methods=["GET"]),
                Route("/reset", reset, methods=["POST"]),
                Route("/faults", list_faults, methods=["GET"]),
                Route("/faults", add_fault, methods=["POST"]),
                Route("/release", release, methods=["POST"]),
                Route("/jobs", jobs, methods=["GET"]),
                Route("/credits", set_credits, methods=["POST"]),
                Route("/optouts", optouts, methods=["GET"]),
                Route("/contacts", contacts, methods=["GET"]),
                Route("/clock", clock, methods=["GET"]),
            ],
        )
    ]
