"""Building provider calls: which recipients of the claimed jobs go together, and how each API is called.

Retarus REST v1 carries every claimed recipient in one job (messages grouped by job and message, each
recipient's customerRef = its row id, duplicateDetection on as a second net); Sendmode one call per
distinct text; HTTP Simple one call per recipient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from models.db import json_loads
from models.enums import ProviderKey
from models.retarus import MAX_RECIPIENTS_PER_JOB, JobRequest, Message, Options
from models.sendmode import SendmodeMessage
from worker.providers import RetarusClient, RetarusHttpClient, SendmodeClient

#: Messages of a Retarus body validated at a time (`_retarus_call`).
_VALIDATE_SLICE = 250
_MESSAGES = TypeAdapter(list[Message])
_OPTIONS = TypeAdapter(Options)


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a round needs of a claimed job (read as columns, not ORM rows: a batch holds 3,000). Its
    request is kept as its texts (one per message) and options, both shared among the claim's jobs when
    equal (`claimed_job`), not as a parsed copy of the whole request per job."""

    id: str
    texts: tuple[str, ...]
    options: dict[str, Any]
    created_at: datetime
    due_at: datetime


@dataclass
class Interned:
    """One claim's texts, and its options by `options_key` (equal keys: equal options), each kept once."""

    texts: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def claimed_job(
    id_: str,
    request_json: str,
    options_key: str,
    created_at: datetime,
    due_at: datetime,
    shared: Interned,
) -> ClaimedJob:
    """A claimed job from its stored request (JSON text, parsed here and dropped); `shared` holds the
    texts and options already seen in this claim."""
    request = json_loads(request_json)
    texts = tuple(shared.texts.setdefault(m["text"], m["text"]) for m in request["messages"])
    options = shared.options.setdefault(options_key, request.get("options", {}))
    return ClaimedJob(id_, texts, options, created_at, due_at)


@dataclass(frozen=True, slots=True)
class Pending:
    """A recipient of a claimed job that has not gone out yet."""

    id: str
    job_id: str
    message_index: int
    position: int
    dst: str
    blackouts: list[str] | None


@dataclass
class ProviderCall:
    """One provider call to make: its recipients and how to make it.

    `body` (Retarus REST) is the exact request body, stored with the submission before the call so that
    a resend after "absent" repeats it unchanged (`resend_call`).
    """

    recipients: list[Pending]
    job_ids: list[str]
    run: Callable[[Any], str | None]  # client -> provider job id (None: the API returns none)
    body: dict[str, Any] | None = None


def resend_call(body: dict[str, Any]) -> Callable[[Any], str | None]:
    """How to send a stored Retarus body again, unchanged (checked once more, then posted as stored)."""
    JobRequest.model_validate(body)

    def run(client: RetarusClient) -> str:
        return client.post_job(body)

    return run


def build_calls(
    provider: ProviderKey, jobs: Sequence[ClaimedJob], ready: list[Pending], per_call: int
) -> list[ProviderCall]:
    """The provider calls that carry `ready` recipients of the claimed `jobs` (Retarus: whole jobs, in
    claim order, up to `per_call` recipients a call; a larger job goes alone)."""
    if not ready:
        return []
    by_id = {job.id: job for job in jobs}
    if provider is ProviderKey.RETARUS:
        checked: dict[int, dict[str, Any]] = {}  # a claim's jobs share their options: checked once
        return [_retarus_call(by_id, chunk, checked) for chunk in _whole_jobs(jobs, ready, per_call)]
    if provider is ProviderKey.SENDMODE:
        return _sendmode_calls(by_id, ready)
    return [_http_simple_call(by_id[row.job_id], row) for row in ready]


def _whole_jobs(jobs: Sequence[ClaimedJob], ready: list[Pending], per_call: int) -> list[list[Pending]]:
    by_job: dict[str, list[Pending]] = {}
    for row in ready:
        by_job.setdefault(row.job_id, []).append(row)
    chunks: list[list[Pending]] = [[]]
    for job in jobs:
        rows = by_job.get(job.id)
        if not rows:
            continue
        if chunks[-1] and len(chunks[-1]) + len(rows) > per_call:
            chunks.append([])
        chunks[-1].extend(rows)
    return chunks


def _retarus_call(
    jobs: dict[str, ClaimedJob], ready: list[Pending], checked: dict[int, dict[str, Any]]
) -> ProviderCall:
    head = jobs[ready[0].job_id]
    options = dict(head.options)
    # Second net against duplicates: an equal request within 10 minutes is refused with 409.
    options.setdefault("duplicateDetection", True)
    if id(head.options) not in checked:  # the options as posted (`claimed_job` interns them per claim)
        checked[id(head.options)] = _OPTIONS.dump_python(
            _OPTIONS.validate_python(options), mode="json", exclude_none=True
        )
    groups: dict[tuple[str, int], list[Pending]] = {}
    for row in ready:
        groups.setdefault((row.job_id, row.message_index), []).append(row)
    items = list(groups.items())
    del groups
    # Validated here, a slice of messages at a time, so a 3,000-message body never exists three times at
    # once (as built, as models, as dumped); the call posts exactly the body stored with its submission.
    messages: list[dict[str, Any]] = []
    for start in range(0, len(items), _VALIDATE_SLICE):
        built = [
            _message(jobs[job_id].texts[index], rows)
            for (job_id, index), rows in items[start : start + _VALIDATE_SLICE]
        ]
        messages.extend(
            _MESSAGES.dump_python(_MESSAGES.validate_python(built), mode="json", exclude_none=True)
        )
    if not messages or len(ready) > MAX_RECIPIENTS_PER_JOB:  # refused by the whole model, with its error
        JobRequest.model_validate({"messages": messages, "options": options})
    body = {"messages": messages, "options": checked[id(head.options)]}

    def run(client: RetarusClient) -> str:
        return client.post_job(body)

    return ProviderCall(ready, sorted({row.job_id for row in ready}), run, body)


def _message(text: str, rows: list[Pending]) -> dict[str, Any]:
    recipients = []
    for row in rows:
        item: dict[str, Any] = {"dst": row.dst, "customerRef": row.id}
        if row.blackouts is not None:
            item["blackoutPeriods"] = row.blackouts
        recipients.append(item)
    return {"text": text, "recipients": recipients}


def _sendmode_calls(jobs: dict[str, ClaimedJob], ready: list[Pending]) -> list[ProviderCall]:
    calls: list[ProviderCall] = []
    groups: dict[str, list[Pending]] = {}
    for row in ready:
        text = jobs[row.job_id].texts[row.message_index]
        groups.setdefault(text, []).append(row)
    for text, rows in groups.items():
        options = jobs[rows[0].job_id].options
        message = SendmodeMessage(
            messagetext=text,
            recipients=[row.dst for row in rows],
            senderid=options.get("src"),
            customerid=options.get("customerRef"),
        )

        def run(client: SendmodeClient, message: SendmodeMessage = message) -> None:
            client.send(message)
            return None

        calls.append(ProviderCall(rows, sorted({row.job_id for row in rows}), run))
    return calls


def _http_simple_call(job: ClaimedJob, row: Pending) -> ProviderCall:
    options = job.options
    text = job.texts[row.message_index]

    def run(client: RetarusHttpClient) -> str:
        return client.send(
            row.dst,
            text,
            src=options.get("src"),
            bc=options.get("billcode"),
            dn=options.get("statusRequested"),
            qos=options.get("qos"),
            ref=row.id,
        )

    return ProviderCall([row], [job.id], run)
