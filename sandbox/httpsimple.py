"""Retarus HTTP Simple (legacy, PROVIDERS.md section 2), served under `/httpsimple/v1`.

Parameters come as query parameters, an `application/x-www-form-urlencoded` body or `multipart/form-data`
(query and body may be combined; body values win). `user` and `pass` authenticate every call.

    POST /sms      user, pass, dst, msg; optional src, bc (billcode), dn (true/false: statusRequested),
                   qos (EXPRESS|NORMAL), ref (customerRef). 201 text/plain: the job id.
    GET /reports   jobid, user, pass. 200 text/plain "<processStatus> <status>", or just
                   "<processStatus>" while the status is empty (e.g. "OPEN").

Every send is a one-recipient job in the primary data center's store, progressing exactly like a REST v1
job (so REST v1 lookups see it too). Errors are text/plain with the HTTP status: 400 for a missing or
invalid parameter, 401 for wrong credentials, 404 for an unknown job id. The optional parameter names,
the 201 and the report body format are the ASSUMPTIONs of PROVIDERS.md 2.1 / 2.2.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from models.enums import Qos
from sandbox.config import SandboxConfig
from sandbox.forms import FormError, request_params
from sandbox.pipeline import Api, Call, endpoint
from sandbox.retarus import build_job
from sandbox.retarus_request import MAX_BILLCODE_CHARS, SRC_PATTERN, JobSpec, MessageSpec, RecipientSpec
from sandbox.state import PRIMARY_DATACENTER

_TRUE = {"true", "1", "on", "yes"}
_FALSE = {"false", "0", "off", "no", ""}


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
    qos_text = params.get("qos", "").strip().upper() or Qos.NORMAL.value
    if qos_text not in {q.value for q in Qos}:
        raise _Invalid("Invalid parameter: qos (EXPRESS or NORMAL)")
    ref = params.get("ref") or None
    return JobSpec(
        messages=(MessageSpec(msg, (RecipientSpec(dst, ref),)),),
        src=src,
        billcode=billcode,
        status_requested=dn in _TRUE,
        customer_ref=ref,
        qos=Qos(qos_text),
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
    job_id = (await request_params(request)).get("jobid", "").strip()
    if not job_id:
        return HTTP_SIMPLE.error(400, "Missing parameter: jobid")
    call.concerns(job_id)
    job = call.state.job(PRIMARY_DATACENTER, job_id)
    if job is None:
        return HTTP_SIMPLE.error(404, "Not Found")
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
