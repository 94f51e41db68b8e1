"""Retarus HTTP Simple (legacy, PROVIDERS.md section 2, seed 002), served under `/httpsimple/v1`.

Parameters are query parameters (seed 002). The older body forms, `application/x-www-form-urlencoded`
and `multipart/form-data`, are still accepted (query and body may be combined; body values win), and
answered the same way. `user` and `pass` authenticate every call.

    POST /sms      user, pass, dst, msg; optional src, bc (<= 70), dn (true/false, default false),
                   qos (lowercase normal|express, default normal), ref (<= 192 US-ASCII, else <= 70).
                   201 text/plain: the job id.
    GET /reports   jobid, user, pass. 200 text/plain "<processStatus> <status>", or just
                   "<processStatus>" while the status is empty (e.g. "OPEN").

Every send is a one-recipient job in the primary data center's store, progressing exactly like a REST v1
job (so REST v1 lookups see it too); `dn` decides the rows that need a delivery notification
(scenarios.py). Errors are text/plain: 400 for a missing, invalid, unknown or wrongly cased parameter
(named in the text) and for an unknown job id (there is no 404 in seed 002), 401 for wrong
credentials, 405 for another method. ASSUMPTIONs (PROVIDERS.md 2.1 / 2.2): the report body format.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from models.enums import Qos
from models.retarus import SRC_PATTERN
from models.retarus_http import HttpSimpleQos, ref_rule
from sandbox.config import SandboxConfig
from sandbox.forms import FormError, request_params
from sandbox.pipeline import Api, Call, endpoint
from sandbox.retarus import build_job
from sandbox.retarus_request import (
    MAX_BILLCODE_CHARS,
    BadRequest,
    JobSpec,
    MessageSpec,
    RecipientSpec,
    check_keys,
)
from sandbox.state import PRIMARY_DATACENTER

_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}
#: The parameters each path takes (anything else: 400 naming it).
SEND_KEYS = frozenset({"user", "pass", "dst", "msg", "src", "bc", "dn", "qos", "ref"})
REPORT_KEYS = frozenset({"user", "pass", "jobid"})


class HttpSimpleApi(Api):
    name = "httpsimple"

    async def authenticate(self, request: Request, config: SandboxConfig) -> str | None:
        try:
            params = await request_params(request)
        except FormError:
            return None
        user, password = params.get("user"), params.get("pass")
        if not user or password is None or not config.check_password(user, password):
            return None
        return user

    def error(self, status: int, message: str) -> Response:
        return PlainTextResponse(message, status_code=status)


HTTP_SIMPLE = HttpSimpleApi()


class _Invalid(Exception):
    pass


def _parse_send(params: dict[str, str]) -> JobSpec:
    try:
        check_keys(params, SEND_KEYS, "")
    except BadRequest as exc:
        raise _Invalid(exc.message) from None
    dst, msg = params.get("dst", "").strip(), params.get("msg", "")
    if not dst:
        raise _Invalid("Missing parameter: dst")
    if not msg.strip():
        raise _Invalid("Missing parameter: msg")
    src = params.get("src") or None
    if src is not None and not SRC_PATTERN.fullmatch(src):
        raise _Invalid("Invalid parameter: src")
    billcode = params.get("bc") or None
    if billcode is not None and len(billcode) > MAX_BILLCODE_CHARS:
        raise _Invalid("Invalid parameter: bc")
    dn = params.get("dn", "").strip().lower()
    if dn not in _TRUE | _FALSE:
        raise _Invalid("Invalid parameter: dn (true or false)")
    qos_text = params.get("qos", HttpSimpleQos.NORMAL.value)
    if qos_text not in {q.value for q in HttpSimpleQos}:
        raise _Invalid("Invalid parameter: qos (normal or express, lowercase)")
    ref = params.get("ref") or None
    if ref is not None and ref_rule(ref) is not None:
        raise _Invalid(f"Invalid parameter: ref ({ref_rule(ref)})")
    return JobSpec(
        messages=(MessageSpec(msg, (RecipientSpec(dst, ref),)),),
        src=src,
        billcode=billcode,
        status_requested=dn in _TRUE,
        customer_ref=ref,
        qos=Qos(qos_text.upper()),
    )


async def send(request: Request, call: Call) -> Response:
    try:
        spec = _parse_send(await request_params(request))
    except _Invalid as exc:
        return HTTP_SIMPLE.error(400, str(exc))
    fault = HTTP_SIMPLE.magic_send_fault([spec.messages[0].recipients[0].dst], call)
    if fault is not None:
        return fault
    job = build_job(
        call.state, spec, datacenter=PRIMARY_DATACENTER, api="httpsimple", credential=call.credential
    )
    call.state.add_job(job)
    call.concerns(job.job_id)
    return PlainTextResponse(job.job_id, status_code=201)


async def report(request: Request, call: Call) -> Response:
    params = await request_params(request)
    try:
        check_keys(params, REPORT_KEYS, "")
    except BadRequest as exc:
        return HTTP_SIMPLE.error(400, exc.message)
    job_id = params.get("jobid", "").strip()
    if not job_id:
        return HTTP_SIMPLE.error(400, "Missing parameter: jobid")
    call.concerns(job_id)
    job = call.state.job(PRIMARY_DATACENTER, job_id)
    if job is None:
        return HTTP_SIMPLE.error(400, "Invalid parameter: jobid (no such job)")
    # One recipient per HTTP Simple job; a REST job looked up here reports its first recipient.
    status = job.recipients[0].status(call.state.now())
    body = (
        status.process_status.value if not status.status else f"{status.process_status.value} {status.status}"
    )
    return PlainTextResponse(body)


def mounts() -> list[BaseRoute]:
    return [
        Mount(
            "/httpsimple/v1",
            routes=[
                Route("/sms", endpoint(HTTP_SIMPLE, send), methods=["POST"]),
                Route("/reports", endpoint(HTTP_SIMPLE, report), methods=["GET"]),
            ],
        )
    ]
