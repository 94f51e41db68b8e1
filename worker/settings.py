"""Settings from the environment (prefix `SMSQ_`), validated once at start-up.

The `SMSQ_PROVIDER*` and `SMSQ_RATE_LIMIT_*` variables define the connection named "default". More
connections (several accounts or providers, each with its own limiter) come from a YAML or JSON file
named by `SMSQ_CONNECTIONS_FILE`: a mapping of name -> {provider, url, username, password, api_key,
rate_limit_calls, rate_limit_period_s, poll_share, callback_url | callback_task + callback_queue,
callback_events, callback_secret}.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.enums import ProviderKey
from worker.callbacks.spec import CallbackSpec
from worker.errors import ConfigurationError

#: Where each API lives when no URL is configured (PROVIDERS.md). Retarus lookups try de2, then de1.
DEFAULT_PROVIDER_URLS: dict[ProviderKey, str] = {
    ProviderKey.RETARUS: "https://sms4a.de2.retarus.com/rest/v1,https://sms4a.de1.retarus.com/rest/v1",
    ProviderKey.RETARUS_HTTP: "https://sms4a.retarus.com/httpsimple/v1",
    ProviderKey.SENDMODE: "https://rest.sendmode.com/v2",
}


class ConnectionSettings(BaseModel):
    """One provider connection: provider key + base URL(s) + credentials + rate limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    provider: ProviderKey
    urls: tuple[str, ...]
    username: str = ""
    password: SecretStr = SecretStr("")
    api_key: SecretStr = SecretStr("")
    rate_limit_calls: int = Field(100, ge=1)
    rate_limit_period_s: float = Field(60.0, gt=0)
    poll_share: float = Field(0.1, ge=0, lt=1)
    send_floor: float = Field(0.5, ge=0, lt=1)
    timeout_s: float = Field(10.0, gt=0)
    connect_timeout_s: float = Field(3.0, gt=0)
    # Default outcome callback of the connection's jobs (worker/callbacks/spec.py); the secret signs webhooks.
    callback_url: str | None = None
    callback_task: str | None = None
    callback_queue: str | None = None
    callback_events: Literal["final", "all"] = "final"
    callback_secret: SecretStr = SecretStr("")

    @field_validator("urls", mode="before")
    @classmethod
    def _split_urls(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one base URL is required")
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"must be an http(s) URL, got {url!r}")
        return tuple(url.rstrip("/") for url in value)

    @model_validator(mode="after")
    def _check_credentials(self) -> ConnectionSettings:
        if self.provider is ProviderKey.SENDMODE:
            if not self.api_key.get_secret_value():
                raise ValueError("provider sendmode needs an api_key (SMSQ_PROVIDER_API_KEY)")
        elif not self.username or not self.password.get_secret_value():
            raise ValueError(
                f"provider {self.provider} needs a username and a password "
                "(SMSQ_PROVIDER_USERNAME, SMSQ_PROVIDER_PASSWORD)"
            )
        if self.provider is not ProviderKey.RETARUS and len(self.urls) > 1:
            raise ValueError(f"provider {self.provider} takes one base URL, got {len(self.urls)}")
        spec = self.default_callback()
        if spec is not None and spec.kind == "webhook" and not self.callback_secret.get_secret_value():
            raise ValueError("callback_url needs a callback_secret to sign webhooks (SMSQ_CALLBACK_SECRET)")
        return self

    def default_callback(self) -> CallbackSpec | None:
        """The callback of jobs enqueued without one (ValueError when the fields make no valid callback)."""
        if self.callback_url is None and self.callback_task is None:
            return None
        try:
            return CallbackSpec(
                url=self.callback_url,
                task=self.callback_task,
                queue=self.callback_queue,
                events=self.callback_events,
            )
        except ValidationError as exc:
            raise ValueError(f"callback: {_first(exc)}") from None


#: Database URL schemes smsq runs on (SQLite embedded, PostgreSQL through psycopg 3).
SUPPORTED_DATABASE_SCHEMES = frozenset({"sqlite", "postgresql", "postgresql+psycopg"})
#: URL schemes that name a Redis server (sentinel: its master, found through Sentinel; worker/redis_client.py).
REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "sentinel://", "sentinels://")


class Settings(BaseSettings):
    """Every SMSQ_ variable. Defaults run locally: Redis on localhost, a SQLite file."""

    model_config = SettingsConfigDict(env_prefix="SMSQ_", extra="ignore", frozen=True)

    broker_url: str = "redis://localhost:6379/0"
    redis_url: str | None = None
    database_url: str = "sqlite:///./smsq.db"

    provider: ProviderKey = ProviderKey.RETARUS
    provider_url: str | None = None
    provider_username: str = ""
    provider_password: SecretStr = SecretStr("")
    provider_api_key: SecretStr = SecretStr("")
    rate_limit_calls: int = Field(100, ge=1)
    rate_limit_period_s: float = Field(60.0, gt=0)
    poll_share: float = Field(0.1, ge=0, lt=1)
    send_floor: float = Field(0.5, ge=0, lt=1)
    rate_limit_margin_s: float = Field(0.25, ge=0)
    provider_timeout_s: float = Field(10.0, gt=0)
    provider_connect_timeout_s: float = Field(3.0, gt=0)
    connections_file: Path | None = None

    default_country: str = Field("DE", pattern=r"^[A-Z]{2}$")

    poll_interval_s: float = Field(10.0, gt=0)
    poll_max_interval_s: float = Field(300.0, gt=0)
    long_open_refresh_s: float = Field(120.0, gt=0)
    release_interval_s: float = Field(5.0, gt=0)
    reconcile_interval_s: float = Field(30.0, gt=0)
    submit_timeout_s: float = Field(120.0, gt=0)
    provider_accept_allowance_s: float = Field(30.0, ge=0)
    drain_max_s: float = Field(10.0, gt=0)
    drain_concurrency: int = Field(4, ge=1, le=64)
    queued_grace_s: float = Field(60.0, gt=0)
    validity_grace_s: float = Field(3600.0, ge=0)

    visibility_timeout_s: int = Field(3600, ge=60)
    send_max_retries: int = Field(8, ge=0)
    retry_backoff_max_s: float = Field(300.0, gt=0)
    batch_max_recipients: int = Field(3000, ge=1, le=3000)
    #: Most provider calls one claim (a round) carries when calls are small: a round claims up to this many
    #: calls' worth of jobs, never more than `ROUND_MAX_RECIPIENTS` recipients, and never more than a tenth
    #: of the window's send share (`submit.claim.round_calls`).
    round_max_calls: int = Field(64, ge=1, le=100)
    #: Retarus REST: how many of a round's calls are made at the same time (threads of the worker process;
    #: 1 makes them one after another). A round of one call (a coalesced batch) never starts a thread.
    round_parallel_calls: int = Field(4, ge=1, le=16)

    clock_speed: float = Field(1.0, gt=0)
    clock_epoch: float | None = None
    clock_resync_s: float = Field(30.0, gt=0)
    host_clock_offset_s: float = 0.0

    metrics_port: int | None = None
    #: The by-name `smsq.enqueue` task carries numbers and text through the broker: off unless enabled.
    enqueue_by_name: bool = False

    # Outcome callbacks (worker/callbacks/): the default connection's default callback, and delivery.
    callback_url: str | None = None
    callback_task: str | None = None
    callback_queue: str | None = None
    callback_events: Literal["final", "all"] = "final"
    callback_secret: SecretStr = SecretStr("")
    callback_interval_s: float = Field(1.0, gt=0)
    callback_timeout_s: float = Field(10.0, gt=0)
    callback_concurrency: int = Field(4, ge=1, le=64)
    callback_retry_period_s: float = Field(86400.0, gt=0)
    callback_backoff_max_s: float = Field(600.0, gt=0)

    # Retention (worker/retention.py): final jobs older than this many days are deleted; 0 keeps them forever.
    retention_days: float = Field(30.0, ge=0)
    retention_interval_s: float = Field(300.0, gt=0)
    retention_batch: int = Field(1000, ge=1, le=100_000)  # jobs per batch (one transaction each)
    retention_max_batches: int = Field(20, ge=1)  # batches per sweep run

    #: Beat's leader lease (worker/beat_leader.py): a standby beat takes over at most a lease and a quarter
    #: after the leader stopped renewing it, so a sweep's gap is at most its interval plus that: with the
    #: 5 s release interval, 6 s keeps it within three intervals (12.5 s).
    beat_lease_s: float = Field(6.0, ge=1)

    @field_validator("default_country", mode="before")
    @classmethod
    def _upper_country(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].lower()
        if scheme not in SUPPORTED_DATABASE_SCHEMES:
            raise ValueError(
                f"unsupported scheme {scheme!r}: use sqlite:///path/to/file.db or "
                "postgresql+psycopg://user@host/db"
            )
        return value

    @model_validator(mode="after")
    def _check_redis(self) -> Settings:
        # The limiter, locks and wake-up records need Redis: with another broker (amqp://) name it.
        if self.redis_url is None and not self.broker_url.startswith(REDIS_SCHEMES):
            raise ValueError(
                "a broker other than Redis (amqp://...) needs SMSQ_REDIS_URL for the limiter and locks"
            )
        if self.redis_url is not None and not self.redis_url.startswith(REDIS_SCHEMES):
            raise ValueError("SMSQ_REDIS_URL must be redis://, rediss://, unix:// or sentinel://")
        return self

    @model_validator(mode="after")
    def _check_intervals(self) -> Settings:
        if self.retry_backoff_max_s * 4 > self.visibility_timeout_s:
            raise ValueError(
                "retry_backoff_max_s must stay far below visibility_timeout_s (at most a quarter)"
            )
        return self

    @property
    def redis(self) -> str:
        """The Redis URL for the limiter and locks (the broker's unless SMSQ_REDIS_URL is set)."""
        return self.redis_url or self.broker_url

    def default_connection(self) -> ConnectionSettings:
        try:
            return ConnectionSettings(
                name="default",
                provider=self.provider,
                urls=self.provider_url or DEFAULT_PROVIDER_URLS[self.provider],
                username=self.provider_username,
                password=self.provider_password,
                api_key=self.provider_api_key,
                rate_limit_calls=self.rate_limit_calls,
                rate_limit_period_s=self.rate_limit_period_s,
                poll_share=self.poll_share,
                send_floor=self.send_floor,
                callback_url=self.callback_url,
                callback_task=self.callback_task,
                callback_queue=self.callback_queue,
                callback_events=self.callback_events,
                callback_secret=self.callback_secret,
                timeout_s=self.provider_timeout_s,
                connect_timeout_s=self.provider_connect_timeout_s,
            )
        except ValidationError as exc:
            raise ConfigurationError(f"connection 'default': {_first(exc)}") from None

    def connections(self) -> dict[str, ConnectionSettings]:
        """Every configured connection by name; raises ConfigurationError on a bad or missing value."""
        found = {"default": self.default_connection()}
        if self.connections_file is not None:
            found.update(load_connections_file(self.connections_file))
        return found

    def connection(self, name: str) -> ConnectionSettings:
        connections = self.connections()
        if name not in connections:
            raise ConfigurationError(
                f"unknown connection {name!r}; configured: {', '.join(sorted(connections))}"
            )
        return connections[name]


def load_connections_file(path: Path) -> dict[str, ConnectionSettings]:
    """Read extra connections from a YAML or JSON mapping of name -> connection fields."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigurationError(f"SMSQ_CONNECTIONS_FILE: cannot read {path}: {exc.strerror}") from None
    raw = _parse_connections(path, text)
    if not isinstance(raw, dict):
        raise ConfigurationError(f"SMSQ_CONNECTIONS_FILE: {path} must hold a mapping of name -> connection")
    result: dict[str, ConnectionSettings] = {}
    for name, fields in raw.items():
        if not isinstance(fields, dict):
            raise ConfigurationError(f"connection {name!r}: must be a mapping")
        data = {"name": name, **fields}
        if "url" in data:
            data["urls"] = data.pop("url")
        if "urls" not in data and "provider" in data:
            data["urls"] = DEFAULT_PROVIDER_URLS.get(data["provider"], "")
        try:
            result[str(name)] = ConnectionSettings.model_validate(data)
        except ValidationError as exc:
            raise ConfigurationError(f"connection {name!r}: {_first(exc)}") from None
    return result


def _parse_connections(path: Path, text: str) -> Any:
    """YAML or JSON; a syntax error names the file, line and column (1-based)."""
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where, problem = f"{path}:{exc.lineno}:{exc.colno}", exc.msg
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or "not valid YAML"
    raise ConfigurationError(f"SMSQ_CONNECTIONS_FILE: {where}: {problem}")


def _first(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (plus overrides); ConfigurationError names the bad variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        variable = f"SMSQ_{where.upper()}" if where else "settings"
        message = error["msg"].removeprefix("Value error, ")
        raise ConfigurationError(f"{variable}: {message}") from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once (the composition root calls this; nothing else should)."""
    return load_settings()


def settings_environment(settings: Settings) -> dict[str, str]:
    """The SMSQ_ variables that reproduce `settings` in a child process (secrets included, in clear:
    pass them only to processes you start)."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"SMSQ_{name.upper()}"] = str(value.value if isinstance(value, ProviderKey) else value)
    return env
