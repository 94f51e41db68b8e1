"""Shared fixtures: the real Redis and PostgreSQL, a SQLite file, the sandbox over HTTP, smsq runtimes,
and real Celery worker/beat processes.

Redis comes from `SMSQ_TEST_REDIS_URL` (tests/redis_dbs.py): these fixtures use db base+5, other test
areas other offsets. PostgreSQL tests get a database of their own, created for the session and dropped at
its end.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from models.clock import Clock
from models.migrate import upgrade
from tests import redis_dbs
from tests.scaling import broker as test_broker
from worker.cli.processes import stop_process_groups
from worker.runtime import Runtime, set_runtime
from worker.settings import Settings, load_settings, settings_environment

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = redis_dbs.url_for(redis_dbs.SHARED)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SANDBOX_USER, SANDBOX_PASS, SANDBOX_KEY = "sandbox-user", "sandbox-pass", "sandbox-key"


# --- Redis ----------------------------------------------------------------------------------------


def redis_db_for_session(url: str) -> Iterator[str]:
    """Yield `url` after checking Redis answers; its db is emptied before and after (one area's db only)."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(
            f"Redis is not answering on {redis_dbs.server(url)} (see README: the tests need a real Redis; "
            f"{redis_dbs.VARIABLE} says which)"
        )
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if test_broker.kind() == "amqp":  # SMSQ_TEST_BROKER=amqp: RabbitMQ is the broker (tests/scaling/broker.py)
        test_broker.purge()
    yield from redis_db_for_session(REDIS_URL)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis[Any]]:
    client = test_broker.redis_client_for(redis_url)  # with RabbitMQ: llen/flushdb reach its queues
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


# --- Databases ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    name = f"smsq_test_{os.getpid()}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError:
        pytest.fail("PostgreSQL is not answering on 127.0.0.1:5432 (see README: the tests need it)")
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def _fresh_postgres(url: str) -> None:
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'smsq.db'}"
    else:
        url = request.getfixturevalue("pg_database")
        _fresh_postgres(url)
    upgrade(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'smsq.db'}"
    upgrade(url)
    return url


@pytest.fixture
def postgres_url(pg_database: str) -> str:
    _fresh_postgres(pg_database)
    upgrade(pg_database)
    return pg_database


# --- The sandbox ----------------------------------------------------------------------------------


@dataclass
class Sandbox:
    url: str
    app: Any

    @property
    def state(self) -> Any:
        return self.app.state.sandbox

    @property
    def rest_url(self) -> str:
        return f"{self.url}/rest/v1"

    @property
    def http_simple_url(self) -> str:
        return f"{self.url}/httpsimple/v1"

    @property
    def sendmode_url(self) -> str:
        return f"{self.url}/v2"

    def url_for(self, provider: str) -> str:
        return {
            "retarus": self.rest_url,
            "retarus_http": self.http_simple_url,
            "sendmode": self.sendmode_url,
        }[provider]


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes on ephemeral loopback ports: `sandbox_factory(clock=..., **config_fields)`."""
    from sandbox.app import create_app
    from sandbox.config import SandboxConfig
    from sandbox.server import serve_in_thread

    stack = contextlib.ExitStack()

    def start(*, clock: Clock | None = None, **config: Any) -> Sandbox:
        app = create_app(SandboxConfig(**config), clock=clock)
        url = stack.enter_context(serve_in_thread(app))
        return Sandbox(url, app)

    with stack:
        yield start


@pytest.fixture
def sandbox(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    return sandbox_factory()


# --- smsq settings and runtimes -------------------------------------------------------------------


def smsq_settings(
    sandbox: Sandbox, database_url: str, provider: str = "retarus", **overrides: Any
) -> Settings:
    """Settings pointing smsq at the sandbox, the test Redis and `database_url`."""
    values: dict[str, Any] = {
        **test_broker.overrides(REDIS_URL),  # Redis, or RabbitMQ with Redis for the limiter and locks
        "database_url": database_url,
        "provider": provider,
        "provider_url": sandbox.url_for(provider),
        "provider_username": SANDBOX_USER,
        "provider_password": SANDBOX_PASS,
        "provider_api_key": SANDBOX_KEY,
        "poll_interval_s": 1.0,
        "poll_max_interval_s": 5.0,
        "release_interval_s": 1.0,
        "reconcile_interval_s": 1.0,
        "queued_grace_s": 5.0,
        "submit_timeout_s": 5.0,
        "retry_backoff_max_s": 4.0,
    }
    values.update(overrides)
    return load_settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces `settings` in another process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(settings_environment(settings))
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.fixture
def runtime_factory(redis_url: str) -> Iterator[Callable[..., Runtime]]:
    """Build runtimes (closed at the end); the last one built is installed as the process runtime."""
    made: list[Runtime] = []

    def make(settings: Settings, *, clock: Clock | None = None, transport: Any = None) -> Runtime:
        from worker.celery_app import create_celery_app

        rt = Runtime(settings, clock=clock, celery=create_celery_app(settings), transport=transport)
        made.append(rt)
        set_runtime(rt)
        return rt

    yield make
    set_runtime(None)
    for rt in made:
        rt.close()


# --- Celery processes -----------------------------------------------------------------------------


@dataclass
class Processes:
    """Real `celery` processes started by a test, each in its own process group; all stopped at teardown."""

    tmp: Path
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def _spawn(self, args: list[str], env: dict[str, str], name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.tmp / f"{name}-{len(self.started)}.log"
        handle = log.open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.app", *args],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        self.started.append((proc, log))
        return proc, log

    def worker(
        self, env: dict[str, str], *, name: str = "w", concurrency: int = 1, queues: str | None = None
    ) -> subprocess.Popen[bytes]:
        args = ["worker", "-P", "prefork", "-c", str(concurrency), "-n", f"{name}{len(self.started)}@%h"]
        args += ["--loglevel=INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        if queues:
            args += ["-Q", queues]
        proc, log = self._spawn(args, env, name)
        self._wait_for(proc, log, b"ready.")
        return proc

    def beat(self, env: dict[str, str]) -> subprocess.Popen[bytes]:
        schedule = self.tmp / f"beat-{len(self.started)}.db"
        proc, log = self._spawn(["beat", "--loglevel=INFO", "--schedule", str(schedule)], env, "beat")
        self._wait_for(proc, log, b"beat: Starting")
        return proc

    def _wait_for(
        self, proc: subprocess.Popen[bytes], log: Path, marker: bytes, timeout_s: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if marker in log.read_bytes():
                return
            if proc.poll() is not None:
                raise RuntimeError(f"celery exited early:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"celery did not become ready:\n{log.read_text()[-3000:]}")

    def kill(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        stop_process_groups(proc for proc, _ in self.started)

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-4000:]}" for _, log in self.started)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def wait_until(
    predicate: Callable[[], Any], timeout_s: float = 60, interval_s: float = 0.2, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what or predicate}")
