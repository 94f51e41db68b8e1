"""What a callback is: a webhook URL or a Celery task name and queue of the application, plus which
events it wants. Used per job (`enqueue(..., callback=...)`) and per connection (a default)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from worker.errors import InvalidRequest

#: Hosts a webhook may be reached over plain http (development); anything else needs https.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
NAME_PATTERN = r"^[A-Za-z0-9_.:-]+$"
Events = Literal["final", "all"]


def check_callback_url(url: str) -> str:
    """https, or http to localhost; a host; no credentials in the URL. Returns the URL unchanged."""
    if len(url) > 2000:
        raise ValueError("must be at most 2000 characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError("must be an https:// URL (http:// only to localhost)")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise ValueError("must use https (plain http is allowed to localhost only)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: the signature authenticates smsq")
    return url


class CallbackSpec(BaseModel):
    """Where a job's events go: exactly one of `url` (a signed webhook) or `task` + `queue`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str | None = None
    task: str | None = Field(None, min_length=1, max_length=200, pattern=NAME_PATTERN)
    queue: str | None = Field(None, min_length=1, max_length=200, pattern=NAME_PATTERN)
    #: "final": one event per recipient when it is final, and one when the job is; "all": also the
    #: intermediate outcomes `accepted` and `sent`.
    events: Events = "final"

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return check_callback_url(value) if value is not None else None

    @model_validator(mode="after")
    def _one_form(self) -> CallbackSpec:
        if (self.url is None) == (self.task is None):
            raise ValueError("give either url or task (with queue)")
        if self.url is not None:
            if self.queue is not None:
                raise ValueError("queue goes with task, not with url")
        elif self.queue is None:
            raise ValueError("task needs the queue the application consumes")
        elif self.queue.startswith("smsq."):
            raise ValueError("queue must be the application's own, not an smsq queue")
        return self

    @property
    def kind(self) -> Literal["webhook", "task"]:
        return "webhook" if self.url is not None else "task"

    @property
    def receiver(self) -> str:
        """The key per-receiver concurrency is bounded on: scheme://host:port, or task:queue."""
        if self.url is not None:
            parts = urlsplit(self.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return f"{parts.scheme}://{parts.hostname}:{port}"
        return f"task:{self.queue}"


CallbackLike = CallbackSpec | Mapping[str, Any]


def parse_callback(value: CallbackLike, field: str = "callback") -> CallbackSpec:
    """A spec from a model or a mapping; InvalidRequest names the field and the rule."""
    if isinstance(value, CallbackSpec):
        return value
    if not isinstance(value, Mapping):
        raise InvalidRequest(field, "must be a mapping with url, or task and queue")
    try:
        return CallbackSpec.model_validate(dict(value))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise InvalidRequest(f"{field}.{where}" if where else field, message) from None


def resolve_callback(
    given: CallbackLike | bool | None, *, default: CallbackSpec | None, has_secret: bool, connection: str
) -> dict[str, Any] | None:
    """The callback stored on a job: the job's own, else the connection's default; False: none at all.

    A webhook needs the connection's secret (every webhook is signed).
    """
    if given is False:
        return None
    if given is None or given is True:
        spec = default
    else:
        spec = parse_callback(given)
    if spec is None:
        if given is True:
            raise InvalidRequest("callback", f"connection {connection!r} has no default callback")
        return None
    if spec.kind == "webhook" and not has_secret:
        raise InvalidRequest(
            "callback.url",
            f"connection {connection!r} has no callback_secret to sign webhooks with (SMSQ_CALLBACK_SECRET)",
        )
    return spec.model_dump(exclude_none=True)


def callback_from_options(url: str | None, task: str | None, events: str = "final") -> dict[str, Any] | None:
    """The `callback=` of `smsq send --callback-url URL | --callback-task NAME@QUEUE [--callback-events]`."""
    if url is None and task is None:
        return None
    given: dict[str, Any] = {"events": events}
    if url is not None:
        given["url"] = url
    if task is not None:
        name, _, queue = task.partition("@")
        given.update(task=name, queue=queue or None)
    return given
