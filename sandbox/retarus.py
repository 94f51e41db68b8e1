"""Retarus SMS for Applications REST v1 (PROVIDERS.md section 1), served under `/rest/v1` and, as a
second data center, under `/<name>/rest/v1` for every name in `SandboxConfig.extra_datacenters`
(default: `/dc2/rest/v1`).

Data centers: each prefix has a job store of its own. A job POSTed to one prefix is listed and found
only there; the other answers 404 `{"code":404,"message":"Not Found"}` for it, which is what tells a
Retarus client to try its next data center. So a client configured with
[`<base>/dc2/rest/v1`, `<base>/rest/v1`] must fail over to find jobs it sent to the second.

Errors: `{"code": <status>, "message": "<text>"}` (ASSUMPTION, PROVIDERS.md 1.7). Basic auth; 401 for
missing or wrong credentials. `GET /version` needs no credentials and is not rate limited.

Strictness (PROVIDERS.md 1.3, 1.7): `GET /jobs` needs `jobIdsOnly=true` (400 when missing or anything
else), `limit` 0..1000 (0 answers an empty list), `offset` >= 0, fromTs..toTs at most 30 days; `GET /sms`
needs a `jobId` matching `J.` and 18..38 more characters (400 otherwise). Every unknown or wrongly cased key, in a query
string or anywhere in a JobRequest body, gets 400 naming the key. ASSUMPTION: a job's `qos` defaults to
NORMAL.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from models.intervals import parse_datetime
from sandbox.config import SandboxConfig
from sandbox.jobs import RetarusJob, RetarusRecipient, new_id
from sandbox.pipeline import Api, Call, endpoint
from sandbox.progress import DEFAULT_VALIDITY_MIN, effective_blackouts, plan
from sandbox.retarus_request import BadRequest, JobSpec, check_keys, parse_job_request
from sandbox.scenarios import outcome_for
from sandbox.state import PRIMARY_DATACENTER, SandboxState

#: GET /jobs: the largest fromTs..toTs interval, and the default page size.
MAX_LISTING_SPAN = timedelta(days=30)
DEFAULT_LISTING_LIMIT = 100
MAX_LISTING_LIMIT = 1000
#: The query keys each GET accepts.
LISTING_KEYS = frozenset({"jobIdsOnly", "fromTs", "toTs", "open", "offset", "limit"})
SMS_KEYS = frozenset({"jobId"})
#: GET /sms `jobId` (PROVIDERS.md 1.3), matched against the whole value.
JOB_ID_PATTERN = re.compile(r"J\..{18,38}")
#: GET /version body: the SOAP getVersionInfo fields (PROVIDERS.md 1.7).
VERSION_INFO = {
    "buildNumber": 1,
    "buildTimestamp": "2030-01-01T00:00:00.000Z",
    "majorVersion": 2030,
    "minorVersion": 1,
    "versionInfo": "smsq sandbox (Retarus SMS4A REST v1 simulator)",
    "message": "OK",
}


class RetarusApi(Api):
    name = "retarus"

    async def authenticate(self, request: Request, config: SandboxConfig) -> str | None:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            username, sep, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep or not config.check_password(username, password):
            return None
        return username

    def error(self, status: int, message: str) -> Response:
        return JSONResponse({"code": status, "message": message}, status_code=status)

    def unauthorized(self) -> Response:
        response = self.error(401, "Unauthorized")
        response.headers["WWW-Authenticate"] = 'Basic realm="sandbox"'
        return response


RETARUS = RetarusApi()


def build_job(
    state: SandboxState, spec: JobSpec, *, datacenter: str, api: str, credential: str
) -> RetarusJob:
    """Plan every recipient of an accepted request and wrap them in a job received now."""
    now = state.now()
    recipients = []
    for message in spec.messages:
        for spec_recipient in message.recipients:
            timeline = plan(
                receipt=now,
                job_period=spec.job_period,
                blackouts=effective_blackouts(spec.blackouts, spec_recipient.blackouts),
                validity_min=spec.validity_min,
                timing=state.timing,
                outcome=outcome_for(spec_recipient.dst, status_requested=spec.status_requested),
            )
            ref = spec_recipient.customer_ref or spec_recipient.dst  # the contract's default
            recipients.append(RetarusRecipient(new_id("S", now), spec_recipient.dst, ref, timeline))
    options: dict[str, object] = {
        "src": spec.src,
        "encoding": spec.encoding.value.lower(),
        "billcode": spec.billcode,
        "statusRequested": spec.status_requested,
        "flash": spec.flash,
        "validityMin": spec.validity_min or DEFAULT_VALIDITY_MIN,
        "customerRef": spec.customer_ref,
        "qos": spec.qos.value,
    }
    return RetarusJob(new_id("J", now), datacenter, api, credential, now, options, tuple(recipients))


def canonical_json(body: object) -> str:
    """The form in which two requests are "equal" for duplicateDetection."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


async def _post_job(datacenter: str, request: Request, call: Call) -> Response:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return RETARUS.error(400, "Request body is not valid JSON")
    try:
        spec = parse_job_request(body)
    except BadRequest as exc:
        return RETARUS.error(exc.status, exc.message)
    dsts = [r.dst for m in spec.messages for r in m.recipients]
    fault = RETARUS.magic_send_fault(dsts, call)
    if fault is not None:
        return fault
    state = call.state
    if spec.duplicate_detection and state.is_duplicate(call.credential, canonical_json(body), state.now()):
        return RETARUS.error(409, "Conflict: an equal request was accepted within the last 10 minutes")
    job = build_job(state, spec, datacenter=datacenter, api="rest", credential=call.credential)
    state.add_job(job)
    call.concerns(job.job_id)
    return JSONResponse({"jobId": job.job_id}, status_code=201)


async def _list_jobs(datacenter: str, request: Request, call: Call) -> Response:
    try:
        query = _ListingQuery.parse(request.query_params)
    except BadRequest as exc:
        return RETARUS.error(exc.status, exc.message)
    now = call.state.now()
    jobs = [job for job in call.state.jobs(datacenter) if query.selects(job, now)]
    page = jobs[query.offset : query.offset + query.limit]
    return JSONResponse([{"jobId": job.job_id} for job in page])


async def _get_job(datacenter: str, request: Request, call: Call) -> Response:
    try:
        check_keys(dict(request.query_params), frozenset(), "")
    except BadRequest as exc:
        return RETARUS.error(exc.status, exc.message)
    job_id = request.path_params["jobId"]
    call.concerns(job_id)
    job = call.state.job(datacenter, job_id)
    if job is None:
        return RETARUS.error(404, "Not Found")
    return JSONResponse(job.report(call.state.now()))


async def _recipient_reports(datacenter: str, request: Request, call: Call) -> Response:
    try:
        check_keys(dict(request.query_params), SMS_KEYS, "")
    except BadRequest as exc:
        return RETARUS.error(exc.status, exc.message)
    job_id = request.query_params.get("jobId")
    if not job_id:
        return RETARUS.error(400, "jobId is required")
    if not JOB_ID_PATTERN.fullmatch(job_id):
        return RETARUS.error(400, "jobId is malformed (J.<18..38 characters>)")
    call.concerns(job_id)
    job = call.state.job(datacenter, job_id)
    if job is None:
        return RETARUS.error(404, "Not Found")
    now = call.state.now()
    return JSONResponse([recipient.report(now) for recipient in job.recipients])


async def _version(datacenter: str, request: Request, call: Call) -> Response:
    try:
        check_keys(dict(request.query_params), frozenset(), "")
    except BadRequest as exc:
        return RETARUS.error(exc.status, exc.message)
    return JSONResponse(VERSION_INFO)


def routes(datacenter: str) -> list[BaseRoute]:
    """The REST v1 routes of one data center (the handlers take it as their first argument)."""
    return [
        # One route for both methods, so a 405 elsewhere names both in `Allow` (found by the fuzzer).
        Route(
            "/jobs",
            _by_method(
                post=endpoint(RETARUS, partial(_post_job, datacenter)),
                get=endpoint(RETARUS, partial(_list_jobs, datacenter)),
            ),
            methods=["GET", "POST"],
        ),  # fmt: skip
        Route("/jobs/{jobId}", endpoint(RETARUS, partial(_get_job, datacenter)), methods=["GET"]),
        Route("/sms", endpoint(RETARUS, partial(_recipient_reports, datacenter)), methods=["GET"]),
        Route("/version", endpoint(RETARUS, partial(_version, datacenter), public=True), methods=["GET"]),
    ]


def _by_method(
    *, post: Callable[[Request], Awaitable[Response]], get: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        return await (post if request.method == "POST" else get)(request)

    return run


def mounts(extra_datacenters: tuple[str, ...]) -> list[BaseRoute]:
    """`/rest/v1` for the primary data center and `/<name>/rest/v1` for each extra one."""
    found: list[BaseRoute] = [Mount("/rest/v1", routes=routes(PRIMARY_DATACENTER))]
    found += [Mount(f"/{name}/rest/v1", routes=routes(name)) for name in extra_datacenters]
    return found


class _ListingQuery:
    """GET /jobs query parameters, validated."""

    def __init__(self, query: Mapping[str, str]) -> None:
        check_keys(dict(query), LISTING_KEYS, "")
        if query.get("jobIdsOnly") is None:
            raise BadRequest("jobIdsOnly is required (only 'true' is supported)")
        if _query_bool(query, "jobIdsOnly", None) is not True:
            raise BadRequest("jobIdsOnly: only 'true' is supported")
        self.open = _query_bool(query, "open", None)
        self.from_ts = _query_ts(query, "fromTs")
        self.to_ts = _query_ts(query, "toTs")
        self.offset = _query_int(query, "offset", 0, minimum=0)
        self.limit = _query_int(query, "limit", DEFAULT_LISTING_LIMIT, minimum=0)
        if self.limit > MAX_LISTING_LIMIT:
            raise BadRequest(f"limit must be between 0 and {MAX_LISTING_LIMIT}")
        if self.from_ts is not None and self.to_ts is not None:
            if self.from_ts > self.to_ts:
                raise BadRequest("fromTs must not be after toTs")
            if self.to_ts - self.from_ts > MAX_LISTING_SPAN:
                raise BadRequest("fromTs and toTs may be at most 30 days apart")

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> _ListingQuery:
        return cls(query)

    def selects(self, job: RetarusJob, now: datetime) -> bool:
        if self.from_ts is not None and job.receipt_ts < self.from_ts:
            return False
        if self.to_ts is not None and job.receipt_ts > self.to_ts:
            return False
        return self.open is None or (job.finished_ts(now) is None) == self.open


def _query_bool(query: Mapping[str, str], key: str, default: bool | None) -> bool | None:
    value = query.get(key)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"{key} must be true or false")
    return value.lower() == "true"


def _query_int(query: Mapping[str, str], key: str, default: int, *, minimum: int) -> int:
    value = query.get(key)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{key} must be an integer") from None
    if number < minimum:
        raise BadRequest(f"{key} must be at least {minimum}")
    return number


def _query_ts(query: Mapping[str, str], key: str) -> datetime | None:
    value = query.get(key)
    if value is None:
        return None
    try:
        # A `+` offset sent unencoded in a query string arrives as a space.
        return parse_datetime(value.replace(" ", "+"))
    except ValueError as exc:
        raise BadRequest(f"{key} {exc}") from None
