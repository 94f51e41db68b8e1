"""Every status, provider and option spelling smsq uses: the only source of these strings."""

from __future__ import annotations

from enum import StrEnum


class ProviderKey(StrEnum):
    """The three provider APIs smsq speaks."""

    RETARUS = "retarus"
    RETARUS_HTTP = "retarus_http"
    SENDMODE = "sendmode"


class JobState(StrEnum):
    """Local life cycle of a job (DESIGN.md "Job states")."""

    SCHEDULED = "scheduled"  # stored, not due yet (jobPeriod, blackout or its turn)
    QUEUED = "queued"  # due; a send task has been (or will be) published
    SUBMITTING = "submitting"  # claimed by a worker; the provider call may be in flight
    SUBMITTED = "submitted"  # the provider accepted it; polling until final
    FINISHED = "finished"  # every recipient final
    EXPIRED = "expired"  # validity passed before it could be sent
    REJECTED = "rejected"  # the provider refused it for good
    FAILED = "failed"  # retries exhausted
    CANCELED = "canceled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_JOB_STATES


TERMINAL_JOB_STATES = frozenset(
    {JobState.FINISHED, JobState.EXPIRED, JobState.REJECTED, JobState.FAILED, JobState.CANCELED}
)


class Outcome(StrEnum):
    """Normalised outcome of one recipient (PROVIDERS.md 1.6, mapped in models/status.py)."""

    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    SENT = "sent"
    PENDING = "pending"
    UNDELIVERABLE = "undeliverable"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    SUPPRESSED = "suppressed"
    UNKNOWN = "unknown"


class Qos(StrEnum):
    EXPRESS = "EXPRESS"
    NORMAL = "NORMAL"


class Encoding(StrEnum):
    STANDARD = "STANDARD"
    UTF16 = "UTF-16"


class InvalidCharacters(StrEnum):
    REFUSE = "REFUSE"
    REPLACE = "REPLACE"
    TO_UTF16 = "TO_UTF16"
    TRANSLITERATE = "TRANSLITERATE"


class ProcessStatus(StrEnum):
    """Retarus processStatus values (REST v1 and HTTP Simple share them)."""

    OPEN = "OPEN"
    RUNNING = "RUNNING"
    DONE = "DONE"
    CANCELED = "CANCELED"
    KILL = "KILL"
