"""`smsq demo`: smsq end to end on one machine, in well under a minute, leaving nothing behind.

It starts, as subprocesses in their own process groups:

- the provider sandbox (`smsq sandbox`) on a free loopback port, its clock `DEMO_SPEED` times faster
  than real time (one real second is one sandbox minute), so hour-long windows pass in seconds;
- a Celery worker (`celery -A worker.app worker -c 2`) and beat, with the same sped-up clock, short
  sweep intervals and few retries;
- a private `redis-server` when none answers at the broker URL and one is installed.

Then it migrates a SQLite file in a temporary directory (unless SMSQ_DATABASE_URL is set), enqueues a
realistic mix on three connections (Retarus REST v1, HTTP Simple, Sendmode): several messages and
recipients, an express job, a future jobPeriod, a blackout in force, a suppressed number, and the
sandbox's magic numbers that fail in each way (sandbox/scenarios.py; the never-final 0004 and the
endless 0429 are left out so the demo finishes). It shows live counts until every job is final,
prints a table of outcomes, and stops every process it started (SIGTERM, then SIGKILL after a
grace), also on Ctrl-C or a timeout.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import redis
from rich.console import Console
from rich.live import Live

from worker.cli.demo_show import SUPPRESSED_NUMBER, DemoJob, demo_mix, progress_view, snapshot, summary_table
from worker.cli.processes import stop_process_groups
from worker.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent

#: The sandbox's and smsq's clock speed: one real second is one minute of message time.
DEMO_SPEED = 60.0
#: The broker when SMSQ_BROKER_URL is unset: the local Redis, a db index of the demo's own.
DEFAULT_DEMO_BROKER = "redis://127.0.0.1:6379/9"
#: Seconds a process gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 10.0
#: Seconds to wait for the sandbox or a private Redis to answer.
START_TIMEOUT_S = 20.0

#: Environment variable marking every process of one demo run.
RUN_ID_VARIABLE = "SMSQ_DEMO_RUN_ID"

SANDBOX_USER, SANDBOX_PASS, SANDBOX_KEY = "sandbox-user", "sandbox-pass", "sandbox-key"

REDIS_HELP = (
    "the demo needs Redis. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: "
    "`brew install redis`) so the demo can start a private one, or run one (`docker run -p 6379:6379 "
    "redis:7`), or point SMSQ_BROKER_URL at one"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoError(Exception):
    """The demo could not be set up (no Redis, a process that would not start, ...)."""


@dataclass
class Processes:
    """Subprocesses in their own process groups, all stopped by `stop_all` (SIGTERM, then SIGKILL)."""

    log_dir: Path
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.log_dir / f"{name}.log").open("wb")
        try:
            proc = subprocess.Popen(
                args,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.started.append((name, proc))
        return proc

    def check_alive(self) -> None:
        for name, proc in self.started:
            if proc.poll() is not None:
                raise DemoError(f"the {name} process exited early ({proc.returncode}); {self.tail(name)}")

    def tail(self, name: str, lines: int = 15) -> str:
        path = self.log_dir / f"{name}.log"
        text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else []
        return f"last lines of {path}:\n" + "\n".join(text)

    def stop_all(self) -> None:
        stop_process_groups((proc for _, proc in reversed(self.started)), STOP_GRACE_S)


def _redis_answers(url: str) -> bool:
    client: redis.Redis[bytes] = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _wait_for(check: Any, what: str, procs: Processes, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        procs.check_alive()
        time.sleep(0.1)
    raise DemoError(f"{what} did not answer within {timeout_s:.0f} s")


def ensure_redis(procs: Processes, environ: dict[str, str], out: Console) -> tuple[str, bool]:
    """The broker URL to use and whether it is the demo's own (flushable); may start a private Redis."""
    url = environ.get("SMSQ_BROKER_URL") or DEFAULT_DEMO_BROKER
    own = "SMSQ_BROKER_URL" not in environ
    if _redis_answers(url):
        return url, own
    server = shutil.which("redis-server")
    if server is None:
        raise DemoError(
            f"no Redis answers at {_redacted(url)} and redis-server is not installed: {REDIS_HELP}"
        )
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs.start("redis", args, {**os.environ, RUN_ID_VARIABLE: environ[RUN_ID_VARIABLE]})
    private = f"redis://127.0.0.1:{port}/0"
    _wait_for(lambda: _redis_answers(private), "the private redis-server", procs)
    out.print(f"no Redis at {_redacted(url)}: started a private redis-server on port {port}")
    return private, True


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def demo_environment(
    environ: dict[str, str], *, broker_url: str, database_url: str, sandbox_url: str, epoch: float, tmp: Path
) -> dict[str, str]:
    """The SMSQ_ environment of the demo's worker and beat (and of the demo's own runtime)."""
    env = {key: value for key, value in environ.items() if not key.startswith("SMSQ_")}
    for key in ("SMSQ_REDIS_URL", "SMSQ_DEFAULT_COUNTRY", RUN_ID_VARIABLE):
        if key in environ:
            env[key] = environ[key]
    connections = tmp / "connections.yaml"
    connections.write_text(
        "http-simple:\n"
        "  provider: retarus_http\n"
        f"  url: {sandbox_url}/httpsimple/v1\n"
        f"  username: {SANDBOX_USER}\n"
        f"  password: {SANDBOX_PASS}\n"
        "sendmode:\n"
        "  provider: sendmode\n"
        f"  url: {sandbox_url}/v2\n"
        f"  api_key: {SANDBOX_KEY}\n"
    )
    env.update(
        {
            "SMSQ_BROKER_URL": broker_url,
            "SMSQ_DATABASE_URL": database_url,
            "SMSQ_PROVIDER": "retarus",
            "SMSQ_PROVIDER_URL": f"{sandbox_url}/rest/v1",
            "SMSQ_PROVIDER_USERNAME": SANDBOX_USER,
            "SMSQ_PROVIDER_PASSWORD": SANDBOX_PASS,
            "SMSQ_PROVIDER_API_KEY": SANDBOX_KEY,
            "SMSQ_CONNECTIONS_FILE": str(connections),
            "SMSQ_CLOCK_SPEED": str(DEMO_SPEED),
            "SMSQ_CLOCK_EPOCH": repr(epoch),
            # Beat intervals are real seconds; the others are message time (DEMO_SPEED x faster).
            "SMSQ_POLL_INTERVAL_S": "1",
            "SMSQ_POLL_MAX_INTERVAL_S": "60",
            "SMSQ_RELEASE_INTERVAL_S": "1",
            "SMSQ_RECONCILE_INTERVAL_S": "2",
            "SMSQ_QUEUED_GRACE_S": "300",
            "SMSQ_SUBMIT_TIMEOUT_S": "600",
            "SMSQ_SEND_MAX_RETRIES": "2",
            "SMSQ_RETRY_BACKOFF_MAX_S": "2",
        }
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    return env


def _settings_from(env: dict[str, str]) -> Any:
    from worker.settings import load_settings

    saved = {key: os.environ.pop(key) for key in list(os.environ) if key.startswith("SMSQ_")}
    try:
        os.environ.update({k: v for k, v in env.items() if k.startswith("SMSQ_")})
        return load_settings()
    finally:
        for key in [k for k in os.environ if k.startswith("SMSQ_")]:
            del os.environ[key]
        os.environ.update(saved)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM to the demo stops it like Ctrl-C does, so its processes are cleaned up too."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (tests): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(
    timeout_s: float = 60.0, *, environ: dict[str, str] | None = None, out: Console | None = None
) -> int:
    """Run the demo; returns the exit code (0 all final, 1 timeout, 130 interrupted)."""
    env_in = dict(os.environ if environ is None else environ)
    # Every process the demo starts carries this mark, so a leftover would be easy to find.
    env_in.setdefault(RUN_ID_VARIABLE, uuid.uuid4().hex)
    out = out or Console(highlight=False)
    tmp = Path(tempfile.mkdtemp(prefix="smsq-demo-"))
    procs = Processes(tmp)
    keep_logs = True
    runtimes: list[Runtime] = []
    try:
        with _sigterm_as_interrupt():
            code = _run(env_in, out, tmp, procs, timeout_s, runtimes)
        keep_logs = code != 0
        return code
    except KeyboardInterrupt:
        out.print("interrupted: stopping the demo's processes")
        keep_logs = False
        return 130
    finally:
        for rt in runtimes:
            rt.close()
        procs.stop_all()
        if keep_logs and procs.started:
            out.print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _start_worker_and_beat(procs: Processes, env: dict[str, str], tmp: Path) -> None:
    celery = [sys.executable, "-m", "celery", "-A", "worker.app"]
    name = f"smsq-demo-{os.getpid()}@%h"
    worker_args = [
        "worker",
        "--loglevel=WARNING",
        "-c",
        "2",
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
    ]
    procs.start("worker", [*celery, *worker_args], env)
    procs.start(
        "beat", [*celery, "beat", "--loglevel=WARNING", "--schedule", str(tmp / "beat-schedule")], env
    )


def _watch(rt: Runtime, job_ids: list[str], out: Console, procs: Processes, timeout_s: float) -> int:
    """Show live counts until every job is final or the timeout; returns how many are still open."""
    started = time.monotonic()
    snap = snapshot(rt, job_ids)
    with Live(
        progress_view(snap, 0.0, timeout_s), console=out, refresh_per_second=4, transient=False
    ) as live:
        while snap.open_jobs and time.monotonic() - started <= timeout_s:
            procs.check_alive()
            time.sleep(0.5)
            snap = snapshot(rt, job_ids)
            live.update(progress_view(snap, time.monotonic() - started, timeout_s))
    return snap.open_jobs


def _run(
    env_in: dict[str, str],
    out: Console,
    tmp: Path,
    procs: Processes,
    timeout_s: float,
    runtimes: list[Runtime],
) -> int:
    from models.migrate import upgrade
    from worker.celery_app import create_celery_app
    from worker.policy.suppression import suppress
    from worker.producer import enqueue

    broker_url, own_broker = ensure_redis(procs, env_in, out)
    if own_broker:
        redis.Redis.from_url(broker_url).flushdb()  # the demo's own db index: leftovers of earlier runs go
    database_url = env_in.get("SMSQ_DATABASE_URL") or f"sqlite:///{tmp / 'smsq-demo.db'}"
    epoch = time.time()
    port = free_port()
    sandbox_url = f"http://127.0.0.1:{port}"
    env = demo_environment(env_in, broker_url=broker_url, database_url=database_url, sandbox_url=sandbox_url,
                           epoch=epoch, tmp=tmp)  # fmt: skip

    out.print(f"starting the sandbox on {sandbox_url} (clock x{DEMO_SPEED:g}), a worker and beat")
    procs.start("sandbox", [sys.executable, "-m", "worker.cli", "sandbox", "--host", "127.0.0.1", "--port",
                            str(port), "--speed", str(DEMO_SPEED), "--epoch", repr(epoch)], env)  # fmt: skip

    def sandbox_up() -> bool:
        try:
            return httpx.get(f"{sandbox_url}/rest/v1/version", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait_for(sandbox_up, "the sandbox", procs)
    upgrade(database_url)
    _start_worker_and_beat(procs, env, tmp)
    settings = _settings_from(env)
    rt = Runtime(settings, celery=create_celery_app(settings))
    runtimes.append(rt)
    suppress(SUPPRESSED_NUMBER, "demo: opted out", rt)
    handles: list[tuple[DemoJob, str]] = []
    for demo_job in demo_mix(rt.clock.now()):
        handle = enqueue(demo_job.request, connection=demo_job.connection, runtime=rt)
        handles.append((demo_job, handle.id))
    recipients = sum(len(m["recipients"]) for j, _ in handles for m in j.request["messages"])
    out.print(f"enqueued {len(handles)} jobs for {recipients} recipients on 3 connections")
    started = time.monotonic()
    open_jobs = _watch(rt, [job_id for _, job_id in handles], out, procs, timeout_s)
    out.print()
    out.print(summary_table(rt, handles))
    if open_jobs:
        out.print(f"[red]timeout: {open_jobs} job(s) not final after {timeout_s:.0f} s[/]")
        out.print(procs.tail("worker"))
        return 1
    out.print(f"[green]all {len(handles)} jobs final in {time.monotonic() - started:.1f} s[/]")
    return 0
