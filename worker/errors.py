"""The whole exception tree of smsq. Every error smsq raises on purpose descends from `SmsError`.

    SmsError
    ├── ConfigurationError                bad or missing settings, raised at start-up
    ├── InvalidRequest(field, rule)       a producer's request broke a rule; nothing was stored
    ├── JobNotFound(job_id)
    ├── IllegalTransition(kind, row_id, source, target)   a forbidden state move (worker/submit/submissions.py)
    ├── RateLimitExceeded(wait_s)         our own limiter said "not yet"
    └── ProviderError(provider, detail, status_code)
        ├── RetryableProviderError        safe to send again later
        │   ├── ProviderUnavailable       connect failure, 5xx
        │   ├── ProviderThrottled         429, carries retry_after_s
        │   └── InsufficientCredits       Sendmode balance too low (worker/providers/sendmode.py)
        ├── PermanentProviderError        sending again will never help: the job is rejected
        │   └── ProviderAuthError         401/403, Sendmode 14/16: wrong credentials; the send path
        │                                 keeps such jobs queued until the operator fixes them
        ├── DeliveryUnknown               the request may have reached the provider: never resend blindly
        └── DuplicateJob                  Retarus 409 under duplicateDetection: an equal job was accepted

Every constructor takes positional arguments only and stores all of them in `.args`, in order,
so an error survives pickle and Celery's JSON exception round trip (tests/test_errors.py).
"""

from __future__ import annotations


class SmsError(Exception):
    """Base class for every error smsq raises on purpose."""


class ConfigurationError(SmsError):
    """A setting is missing or invalid; raised at start-up, never per message."""


class InvalidRequest(SmsError, ValueError):
    """A request broke a rule of the contract. `field` is a dotted path, `rule` says what was wrong."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(field, rule)
        self.field = field
        self.rule = rule

    def __str__(self) -> str:
        return f"{self.field}: {self.rule}"


class JobNotFound(SmsError, LookupError):
    """No job with this id exists."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id

    def __str__(self) -> str:
        return f"no job with id {self.job_id!r}"


class IllegalTransition(SmsError, RuntimeError):
    """A job or submission was asked to make a move its state table forbids (a bug, never input)."""

    def __init__(self, kind: str, row_id: str, source: str, target: str) -> None:
        super().__init__(kind, row_id, source, target)
        self.kind, self.row_id, self.source, self.target = kind, row_id, source, target

    def __str__(self) -> str:
        return f"illegal {self.kind} transition {self.source} -> {self.target} ({self.row_id})"


class RateLimitExceeded(SmsError):
    """The connection's limiter has no call left now; `wait_s` says when to try again."""

    def __init__(self, wait_s: float) -> None:
        super().__init__(wait_s)
        self.wait_s = wait_s

    def __str__(self) -> str:
        return f"rate limit reached, retry in {self.wait_s:.3f} s"


class ProviderError(SmsError):
    """Base class for errors talking to an SMS provider."""

    def __init__(self, provider: str, detail: str, status_code: int | None = None) -> None:
        super().__init__(provider, detail, status_code)
        self.provider = provider
        self.detail = detail
        self.status_code = status_code

    def __str__(self) -> str:
        code = f" (HTTP {self.status_code})" if self.status_code is not None else ""
        return f"{self.provider}: {self.detail}{code}"


class RetryableProviderError(ProviderError):
    """The call may succeed if tried again later."""


class ProviderUnavailable(RetryableProviderError):
    """The provider could not be reached (connection refused, connect timeout) or answered 5xx."""


class ProviderThrottled(RetryableProviderError):
    """The provider answered 429; `retry_after_s` is its Retry-After when it sent one."""

    def __init__(self, provider: str, retry_after_s: float | None = None, detail: str = "throttled") -> None:
        super().__init__(provider, detail, 429)
        self.args = (provider, retry_after_s, detail)
        self.retry_after_s = retry_after_s


class PermanentProviderError(ProviderError):
    """The provider refused the request for good; sending it again will not help."""


class ProviderAuthError(PermanentProviderError):
    """The provider refused the credentials."""


class DeliveryUnknown(ProviderError):
    """The request may have reached the provider (read timeout, unreadable 2xx body).

    Never resend blindly: look the job up at the provider first.
    """


class DuplicateJob(ProviderError):
    """Retarus answered 409: an equal job was accepted within the last 10 minutes."""
