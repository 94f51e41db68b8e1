"""The producer API: `enqueue` and `enqueue_many`.

A request is validated completely before anything is written. A good one is committed to the
database first (the job and one row per recipient), then the job's connection is woken: a drain task
carrying only the connection's name is published unless one is already waiting (worker/submit/wake.py),
so a burst of enqueues costs the broker a handful of messages, not one per job. If the broker is down
the job stays `queued` in the database and the release sweep wakes the connection later; the producer
still gets its handle, because the job is safe.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticUndefined
from sqlalchemy import insert
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from models.db import transaction
from models.enums import JobState, Outcome, ProviderKey, Qos
from models.request import SmsRequest, check_connection_name, check_idempotency_key
from models.request_errors import first_error
from models.segments import segments_for
from models.tables import Job, Recipient, new_id
from models.windows import send_decision, validity_deadline
from worker.callbacks.spec import CallbackLike, resolve_callback
from worker.errors import ConfigurationError, InvalidRequest
from worker.runtime import Runtime, get_runtime
from worker.settings import ConnectionSettings

log = logging.getLogger("smsq.producer")

RequestLike = SmsRequest | Mapping[str, Any] | str


@dataclass(frozen=True)
class JobHandle:
    """What enqueue returns: the job's id (a UUID string) and its state when enqueued."""

    id: str
    state: JobState
    created: bool = True  # False when an idempotency key returned an existing job

    def __str__(self) -> str:
        return self.id


#: Providers that apply jobPeriod, blackout periods and validity themselves.
PROVIDER_APPLIES_WINDOWS = frozenset({ProviderKey.RETARUS})


def parse_request(request: RequestLike, *, default_region: str) -> SmsRequest:
    """Validate a request given as a model, a mapping or JSON text; InvalidRequest names field and rule."""
    if isinstance(request, SmsRequest):
        return request
    try:
        return SmsRequest.from_json(request, default_region=default_region)
    except ValidationError as exc:
        field, rule = first_error(exc)
        raise InvalidRequest(field, rule) from None


def enqueue(
    request: RequestLike,
    *,
    connection: str = "default",
    idempotency_key: str | None = None,
    runtime: Runtime | None = None,
    callback: CallbackLike | bool | None = None,
) -> JobHandle:
    """Store one SMS job and publish its send task; returns its handle.

    The same `idempotency_key` returns the job it first created, whatever the request. `callback`
    ({"url": ...} or {"task": ..., "queue": ...}, plus "events": "final" | "all") says where outcome
    events go; None takes the connection's default, False none (worker/callbacks/).
    """
    return enqueue_many(
        [request],
        connection=connection,
        idempotency_keys=[idempotency_key],
        runtime=runtime,
        callback=callback,
    )[0]


def enqueue_many(
    requests: Sequence[RequestLike],
    *,
    connection: str = "default",
    idempotency_keys: Sequence[str | None] | None = None,
    runtime: Runtime | None = None,
    callback: CallbackLike | bool | None = None,
) -> list[JobHandle]:
    """Store many jobs in one transaction, then publish their send tasks over one broker connection.

    Every request is validated first: one bad request raises `InvalidRequest` (its field prefixed with
    `requests.N.`) and nothing at all is stored or published.
    """
    rt = runtime or get_runtime()
    keys = _checked_keys(idempotency_keys, len(requests))
    connection, conn = _checked_connection(rt, connection)
    stored_callback = resolve_callback(
        callback,
        default=conn.default_callback(),
        has_secret=bool(conn.callback_secret.get_secret_value()),
        connection=connection,
    )
    parsed = _parsed(requests, rt.settings.default_country)
    provider = ProviderKey(conn.provider)
    now = rt.clock.now()
    handles: list[JobHandle] = []
    wake_express: set[bool] = set()
    try:
        with transaction(rt.sessions) as session:
            known = _existing(session, [key for key in keys if key])
            job_rows: list[dict[str, Any]] = []
            recipient_rows: list[dict[str, Any]] = []
            for request, key in zip(parsed, keys, strict=True):
                existing = known.get(key) if key else None
                if existing is not None:
                    handles.append(existing)
                    continue
                job, recipients = build_job(request, connection=connection, provider=provider, now=now)
                job.idempotency_key = key
                job.callback, job.callback_open = stored_callback, stored_callback is not None
                if key:
                    known[key] = JobHandle(job.id, JobState(job.state), created=False)
                job_rows.append(vars(job))
                recipient_rows.extend(_recipient_row(row, job.callback_open) for row in recipients)
                handles.append(JobHandle(job.id, JobState(job.state)))
                if job.state == JobState.QUEUED:
                    wake_express.add(job.qos_rank == 0)
            if job_rows:  # one INSERT each (executemany), no ORM objects
                session.execute(insert(Job), job_rows)
                session.execute(insert(Recipient), recipient_rows)
    except IntegrityError:
        # A concurrent enqueue with the same idempotency key won the race: return its job.
        existing_handle = _winner(rt, keys) if len(parsed) == 1 else None
        if existing_handle is None:
            raise
        return [existing_handle]
    for express in sorted(wake_express, reverse=True):  # express first
        rt.wake(connection, express=express)
    return handles


def _recipient_row(row: Recipient, watched: bool) -> dict[str, Any]:
    """The row to insert. A recipient of a job with a callback starts noted as 'pending', so the callback
    sweep notes each change from there (`outbox._changed`); without a callback it stays NULL: never read."""
    if watched:
        row.notified_outcome = Outcome.PENDING
    return vars(row)


def _checked_keys(idempotency_keys: Sequence[str | None] | None, count: int) -> list[str | None]:
    if isinstance(idempotency_keys, str | bytes):
        raise InvalidRequest("idempotency_keys", "must be a list with one key (or None) per request")
    keys: list[str | None] = list(idempotency_keys) if idempotency_keys is not None else [None] * count
    if len(keys) != count:
        raise InvalidRequest("idempotency_keys", "must have one entry per request")
    for index, key in enumerate(keys):
        try:
            keys[index] = check_idempotency_key(key)
        except ValueError as exc:
            field = "idempotency_key" if count == 1 else f"idempotency_keys.{index}"
            raise InvalidRequest(field, str(exc)) from None
    return keys


def _checked_connection(rt: Runtime, name: object) -> tuple[str, ConnectionSettings]:
    try:
        checked = check_connection_name(name)
        return checked, rt.connection(checked)
    except (ValueError, ConfigurationError) as exc:
        raise InvalidRequest("connection", str(exc)) from None


def _parsed(requests: Sequence[RequestLike], region: str) -> list[SmsRequest]:
    parsed: list[SmsRequest] = []
    for index, request in enumerate(requests):
        try:
            parsed.append(parse_request(request, default_region=region))
        except InvalidRequest as exc:
            if len(requests) == 1:
                raise
            raise InvalidRequest(f"requests.{index}.{exc.field}", exc.rule) from None
    return parsed


def _winner(rt: Runtime, keys: list[str | None]) -> JobHandle | None:
    if not keys[0]:
        return None
    with transaction(rt.sessions) as session:
        existing = _find_by_key(session, keys[0])
        return None if existing is None else JobHandle(existing.id, JobState(existing.state), created=False)


def _existing(session: Session, keys: list[str]) -> dict[str, JobHandle]:
    """Jobs already created under these idempotency keys, by key (one query)."""
    if not keys:
        return {}
    rows = session.execute(
        sa_select(col(Job.idempotency_key), col(Job.id), col(Job.state)).where(
            col(Job.idempotency_key).in_(keys)
        )
    )
    return {key: JobHandle(id_, JobState(state), created=False) for key, id_, state in rows}


def _find_by_key(session: Session, key: str) -> Job | None:
    return session.exec(select(Job).where(Job.idempotency_key == key)).first()


def options_key(request: SmsRequest, *, connection: str, provider: ProviderKey) -> str:
    """Jobs with equal keys may share one provider call (identical options; Sendmode: identical texts)."""
    data: dict[str, Any] = {"connection": connection, "options": request.to_retarus_json().get("options", {})}
    if provider is ProviderKey.SENDMODE:
        data["texts"] = [message.text for message in request.messages]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return digest


@functools.cache
def _defaults(model: type[SQLModel]) -> dict[str, Any]:
    """A table's column defaults (a Core insert does not apply the model's own)."""
    return {
        name: field.default
        for name, field in model.model_fields.items()
        if field.default_factory is None and field.default is not PydanticUndefined
    }


def _row(model: type[SQLModel], **values: Any) -> Any:
    """A row as a plain namespace: building thousands of SQLModel objects is the slow part of an enqueue."""
    return SimpleNamespace(**{**_defaults(model), **values})


def build_job(
    request: SmsRequest, *, connection: str, provider: ProviderKey, now: datetime
) -> tuple[Any, list[Any]]:
    """The job row and its recipient rows (namespaces of column values, for one bulk insert each), with
    local windows applied for providers that lack them."""
    options = request.options
    job = _row(
        Job,
        id=new_id(),
        connection=connection,
        provider=provider.value,
        qos_rank=0 if options.qos is Qos.EXPRESS else 1,
        request=request.to_retarus_json(),
        options_key=options_key(request, connection=connection, provider=provider),
        solo=provider is ProviderKey.RETARUS_HTTP,
        recipient_count=request.recipient_count,
        created_at=now,
        updated_at=now,
        due_at=now,
    )
    recipients: list[Recipient] = []
    parts_total = 0
    due_times: list[datetime] = []
    for m_index, message in enumerate(request.messages):
        parts = segments_for(message.text, options.encoding, options.invalid_characters)
        parts_total += parts * len(message.recipients)
        for position, item in enumerate(message.recipients):
            row = _row(
                Recipient,
                id=new_id(),
                job_id=job.id,
                message_index=m_index,
                position=position,
                dst=item.dst,
                customer_ref=item.customer_ref,
                blackouts=[str(p) for p in item.blackout_periods]
                if item.blackout_periods is not None
                else None,
                updated_at=now,
            )
            if provider not in PROVIDER_APPLIES_WINDOWS:
                _apply_windows(row, request, item, now, due_times)
            recipients.append(row)
    job.parts = parts_total
    _set_state(job, request, provider, recipients, due_times, now)
    return job, recipients


def _apply_windows(row: Any, request: SmsRequest, item: Any, now: datetime, due: list[datetime]) -> None:
    """For providers without windows: the recipient's due time, or `expired` when its validity ends first."""
    options = request.options
    decision = send_decision(
        now,
        created_at=now,
        job_period=options.job_period,
        validity_min=options.validity_min,
        blackouts=request.effective_blackouts(item),
    )
    if decision.action == "expire":
        row.outcome, row.final, row.reason = Outcome.EXPIRED, True, decision.reason
    else:
        row.due_at = decision.at or now
        due.append(row.due_at)


def _set_state(
    job: Any,
    request: SmsRequest,
    provider: ProviderKey,
    recipients: list[Any],
    due_times: list[datetime],
    now: datetime,
) -> None:
    options = request.options
    # Never sent after its validity, whichever provider: the release sweep expires what is still waiting.
    start = max(now, options.job_period) if options.job_period is not None else now
    job.expires_at = validity_deadline(start, options.validity_min)
    if provider in PROVIDER_APPLIES_WINDOWS:
        job.state = JobState.QUEUED
    elif not due_times:
        job.state = JobState.EXPIRED
        job.reason = recipients[0].reason if recipients else "expired"
        job.finished_at = now
    else:
        job.due_at = min(due_times)
        job.state = JobState.QUEUED if job.due_at <= now else JobState.SCHEDULED
