"""`python -m bench.throughput [--quick]`: smsq against its baseline, in one run, into docs/benchmarks.md.

1. Send throughput under a provider limit: N single-recipient jobs enqueued at once and drained by
   real worker processes against the sandbox over HTTP, once with smsq's coalescing (default settings)
   and once as the naive one-call-per-recipient baseline (`SMSQ_BATCH_MAX_RECIPIENTS=1`). The sandbox's
   call records are the witness for what reached the provider, the database for completion.
2. Enqueue cost: `enqueue_many` of N jobs against N separate `enqueue()` calls, broker publish
   included, on a SQLite file (and PostgreSQL when it answers).
3. Peak RSS of the worker pool processes during each send run.

One Redis database is touched (flushed before, between and after the runs): the db 12 above the one
`SMSQ_TEST_REDIS_URL` names (default redis://127.0.0.1:6379, so db 12; see tests/redis_dbs.py).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import func
from sqlmodel import col, select

from bench.report import BenchReport, EnqueueRun, SendRun, render_markdown, summary_lines, write_section
from bench.workers import ROOT, WorkerFleet
from models.db import transaction
from models.enums import JobState
from models.migrate import upgrade
from models.tables import Job
from sandbox.app import create_app
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from sandbox.server import serve_in_thread
from tests import redis_dbs
from worker.producer import enqueue, enqueue_many
from worker.queues import Queue
from worker.rate_limit.limiter import send_slots
from worker.runtime import Runtime
from worker.settings import Settings, load_settings, settings_environment

REDIS_URL = redis_dbs.url_for(redis_dbs.BENCH)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DATABASE = "smsq_bench"
#: The provider limit for the send runs: the sandbox's and smsq's limiter alike.
LIMIT_CALLS = 30
LIMIT_PERIOD_S = 3.0
WORKER_PROCESSES = 2
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
#: How often completion is checked in the database during a send run.
POLL_INTERVAL_S = 0.05
#: Longest enqueue_many of a send run may take.
ENQUEUE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Profile:
    """Sizes and time caps of one benchmark mode."""

    name: str
    send_jobs: int
    #: Longest a send run is measured for; the baseline is limit-bound and usually stops here.
    send_cap_s: float
    enqueue_jobs: int
    enqueue_repeats: int


FULL = Profile("full", send_jobs=2000, send_cap_s=45.0, enqueue_jobs=500, enqueue_repeats=3)
QUICK = Profile("quick", send_jobs=300, send_cap_s=15.0, enqueue_jobs=200, enqueue_repeats=3)
ENQUEUE_METHODS = ("enqueue_many", "enqueue")


def number(i: int) -> str:
    """A German mobile number that is none of the sandbox's magic ones (they end in 0001..0007, 0429, 0500)."""
    return f"+49176{i:05d}88"


def request(i: int) -> dict[str, Any]:
    return {"messages": [{"text": "Your code is 1234", "recipients": [{"dst": number(i)}]}]}


# --- settings, environments, stores --------------------------------------------------------------


def bench_settings(database_url: str, provider_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_url": REDIS_URL,
        "database_url": database_url,
        "provider": "retarus",
        "provider_url": provider_url,
        "provider_username": DEFAULT_USERNAME,
        "provider_password": DEFAULT_PASSWORD,
        "provider_api_key": DEFAULT_API_KEY,
        "rate_limit_calls": LIMIT_CALLS,
        "rate_limit_period_s": LIMIT_PERIOD_S,
    }
    values.update(overrides)
    return load_settings(**values)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces `settings` in a worker process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMSQ_")}
    env.update(settings_environment(settings))
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def flush_redis() -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def runtime_for(settings: Settings) -> Iterator[Runtime]:
    from worker.celery_app import create_celery_app

    rt = Runtime(settings, celery=create_celery_app(settings))
    try:
        yield rt
    finally:
        rt.close()


def sqlite_url(directory: Path, name: str) -> str:
    url = f"sqlite:///{directory / name}.db"
    upgrade(url)
    return url


@contextlib.contextmanager
def postgres_database() -> Iterator[Callable[[], str]]:
    """Create `smsq_bench` (dropped at the end); yields a function giving a fresh, migrated schema."""
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"
    try:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')

        def fresh() -> str:
            with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
                conn.execute("DROP SCHEMA public CASCADE")
                conn.execute("CREATE SCHEMA public")
            upgrade(url)
            return url

        yield fresh
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.close()


# --- 1. send throughput --------------------------------------------------------------------------


def count_submitted(rt: Runtime) -> int:
    done = (JobState.SUBMITTED, JobState.FINISHED)
    with transaction(rt.sessions) as session:
        query = select(func.count()).select_from(Job).where(col(Job.state).in_(done))
        return int(session.exec(query).one())


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float:
    started = time.time()
    fn(*args, **kwargs)
    return time.time() - started


def run_send(label: str, jobs: int, cap_s: float, workdir: Path, **overrides: Any) -> SendRun:
    """Enqueue `jobs` jobs at once while WORKER_PROCESSES workers run; measure until done or `cap_s`."""
    flush_redis()
    app = create_app(SandboxConfig(limit_calls=LIMIT_CALLS, limit_period_s=LIMIT_PERIOD_S))
    state = app.state.sandbox
    rundir = workdir / label
    rundir.mkdir()
    with serve_in_thread(app) as url:
        settings = bench_settings(sqlite_url(rundir, "smsq"), f"{url}/rest/v1", **overrides)
        with runtime_for(settings) as rt, WorkerFleet(settings_env(settings), rundir) as fleet:
            startup_s = fleet.start(WORKER_PROCESSES)
            requests = [request(i) for i in range(jobs)]
            # The producer runs in a thread so that completion is seen as soon as the database shows
            # it, even while enqueue_many is still publishing the rest of the send tasks.
            with ThreadPoolExecutor(max_workers=1) as pool:
                t0 = time.time()
                producing = pool.submit(_timed, enqueue_many, requests, runtime=rt)
                deadline = t0 + cap_s
                submitted = 0
                while time.time() < deadline:
                    submitted = count_submitted(rt)
                    if submitted >= jobs:
                        break
                    time.sleep(POLL_INTERVAL_S)
                t_end = min(time.time(), deadline)
                enqueue_s = producing.result(timeout=ENQUEUE_TIMEOUT_S)
            completed = submitted >= jobs
            peak_rss = fleet.peak_rss_kib()
            if not completed and submitted == 0:
                raise RuntimeError(f"{label}: nothing was submitted in {cap_s} s\n{fleet.logs_tail()}")
        # Workers are stopped here: what the sandbox saw is final.
        calls = [c for c in state.calls() if c.api != "control"]
        sizes = {job.job_id: len(job.recipients) for job in state.jobs()}
        refs = collections.Counter(
            r.customer_ref for job in state.jobs() for r in job.recipients if r.customer_ref
        )
    flush_redis()
    accepted = [
        c
        for c in calls
        if c.method == "POST"
        and c.path.endswith("/jobs")
        and c.status_code is not None
        and 200 <= c.status_code < 300
        and c.real_ts <= t_end
    ]
    accepted.sort(key=lambda c: c.real_ts)
    accepted_at = [c.real_ts - t0 for c in accepted]
    steady = None
    if len(accepted) >= 2 and accepted_at[-1] > accepted_at[0]:
        after_first = sum(sizes.get(job_id, 0) for c in accepted[1:] for job_id in c.job_ids)
        steady = after_first / (accepted_at[-1] - accepted_at[0])
    return SendRun(
        label=label,
        first_call_s=accepted_at[0] if accepted_at else None,
        last_call_s=accepted_at[-1] if accepted_at else None,
        steady_recipients_per_s=steady,
        batch_max_recipients=settings.batch_max_recipients,
        jobs=jobs,
        window_s=(t_end - t0),
        completed=completed,
        recipients_delivered=sum(sizes.get(job_id, 0) for c in accepted for job_id in c.job_ids),
        provider_calls=len(accepted),
        throttled_429=sum(1 for c in calls if c.status_code == 429),
        duplicates=sum(n - 1 for n in refs.values() if n > 1),
        jobs_submitted_db=submitted,
        enqueue_s=enqueue_s,
        worker_startup_s=startup_s,
        peak_rss_kib=peak_rss,
        cap_s=cap_s,
    )


# --- 2. enqueue cost -----------------------------------------------------------------------------


def run_enqueue(method: str, jobs: int, database_url: str) -> tuple[float, int, int]:
    """Time `jobs` jobs through `enqueue_many` (one call) or `enqueue` (one call each), publish included.

    Returns (seconds, drain wake-ups in the broker: at most one waiting per connection and queue, jobs
    queued), the warm-up job excluded from the jobs.
    """
    flush_redis()
    # No provider call is made here: any well-formed URL will do.
    settings = bench_settings(database_url, "http://127.0.0.1:9/rest/v1")
    requests = [request(i) for i in range(jobs + 1)]
    with runtime_for(settings) as rt:
        enqueue(requests[-1], runtime=rt)  # warm-up: engine, broker connection, imports
        started = time.perf_counter()
        if method == "enqueue_many":
            enqueue_many(requests[:jobs], runtime=rt)
        else:
            for item in requests[:jobs]:
                enqueue(item, runtime=rt)
        total_s = time.perf_counter() - started
        broker_messages = int(rt.redis.llen(Queue.SEND.value))
        with transaction(rt.sessions) as session:
            queued = select(func.count()).select_from(Job).where(col(Job.state) == JobState.QUEUED)
            published_jobs = int(session.exec(queued).one()) - 1
    flush_redis()
    return total_s, broker_messages, published_jobs


def measure_enqueue(database: str, jobs: int, repeats: int, fresh_url: Callable[[], str]) -> list[EnqueueRun]:
    """Both methods `repeats` times, alternating, each on a fresh database from `fresh_url()`."""
    runs = {method: EnqueueRun(database, method, jobs, [], [], []) for method in ENQUEUE_METHODS}
    for _ in range(repeats):
        for method, run in runs.items():
            total_s, messages, published = run_enqueue(method, jobs, fresh_url())
            run.samples_s.append(total_s)
            run.broker_messages.append(messages)
            run.published_jobs.append(published)
    return list(runs.values())


# --- machine --------------------------------------------------------------------------------------


def _first_line(path: str, prefix: str) -> str | None:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(prefix):
                return line.split(":", 1)[1].strip()
    return None


def machine_info() -> dict[str, str]:
    info: dict[str, str] = {}
    info["CPU"] = (
        f"{_first_line('/proc/cpuinfo', 'model name') or platform.processor() or '?'}, {os.cpu_count()} cores"
    )
    mem = _first_line("/proc/meminfo", "MemTotal")
    if mem:
        info["Memory"] = f"{int(mem.split()[0]) / 1024 / 1024:.1f} GiB"
    info["OS"] = f"{platform.system()} {platform.release()}"
    with contextlib.suppress(OSError):
        info["Load average at start (1/5/15 min)"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    info["Python"] = platform.python_version()
    versions = []
    for package in ("celery", "kombu", "redis", "sqlalchemy", "httpx", "uvicorn"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    info["Packages"] = ", ".join(versions)
    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL)
    try:
        info["Redis server"] = str(client.info("server").get("redis_version", "?"))
    finally:
        client.close()
    info["SQLite"] = sqlite3.sqlite_version
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        info["smsq commit"] = head + (" (with uncommitted changes)" if dirty else "")
    return info


# --- main -----------------------------------------------------------------------------------------


def check_redis() -> None:
    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        raise SystemExit(f"Redis is not answering on {redis_dbs.server()}: {exc}") from None
    finally:
        client.close()


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _since(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s in"


def _line(run: SendRun) -> str:
    return (
        f"{run.recipients_delivered} recipients in {run.provider_calls} calls, "
        f"{run.recipients_per_s:,.1f} recipients/s, 429s: {run.throttled_429}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller N and shorter caps (under a minute)")
    parser.add_argument("--no-postgres", action="store_true", help="skip the PostgreSQL enqueue rows")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the Markdown")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    # SIGTERM unwinds like Ctrl-C, so the worker processes are stopped and its Redis db is flushed.
    signal.signal(signal.SIGTERM, _terminate)
    check_redis()
    started = time.monotonic()
    command = "python -m bench.throughput" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    report = BenchReport(
        command=command,
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        mode=profile.name,
        machine=machine_info(),
        limit_calls=LIMIT_CALLS,
        limit_period_s=LIMIT_PERIOD_S,
        send_slots=send_slots(LIMIT_CALLS, load_settings().poll_share),
        workers=WORKER_PROCESSES,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="smsq-bench-") as tmp:
            workdir = Path(tmp)
            n, cap = profile.send_jobs, profile.send_cap_s
            print(f"[1/2] send throughput: {n} jobs, {WORKER_PROCESSES} workers, cap {cap:g} s", flush=True)
            report.send_runs.append(run_send("smsq (coalescing)", n, cap, workdir))
            print(f"      smsq: {_line(report.send_runs[-1])} ({_since(started)})", flush=True)
            report.send_runs.append(
                run_send("baseline (1 per call)", n, cap, workdir, batch_max_recipients=1)
            )
            print(f"      baseline: {_line(report.send_runs[-1])} ({_since(started)})", flush=True)
            m, repeats = profile.enqueue_jobs, profile.enqueue_repeats
            print(f"[2/2] enqueue cost: {m} jobs, {repeats} runs per method", flush=True)
            names = (f"enqueue-{i}" for i in range(1000))
            report.enqueue_runs += measure_enqueue(
                "SQLite file", m, repeats, lambda: sqlite_url(workdir, next(names))
            )
            if not args.no_postgres:
                try:
                    with postgres_database() as fresh:
                        print(f"      SQLite done ({_since(started)})", flush=True)
                        report.enqueue_runs += measure_enqueue("PostgreSQL", m, repeats, fresh)
                except psycopg.OperationalError as exc:
                    report.notes.append(f"PostgreSQL rows skipped: not reachable ({type(exc).__name__}).")
    finally:
        flush_redis()
    report.total_s = time.monotonic() - started
    for run in report.send_runs:
        if run.throttled_429:
            report.notes.append(f"{run.label}: the sandbox answered 429 {run.throttled_429} time(s).")
        if run.duplicates:
            report.notes.append(f"{run.label}: {run.duplicates} recipient(s) reached the sandbox twice.")
        if run.batch_max_recipients > 1 and not run.completed:
            report.notes.append(f"{run.label}: did not submit all {run.jobs} jobs within {run.cap_s:g} s.")
    write_section(args.output, "bench.throughput", render_markdown(report))
    for line in summary_lines(report):
        print(line.replace("**", ""))
    print(f"written to {args.output} in {report.total_s:.0f} s")
    bad = any(run.throttled_429 or run.duplicates for run in report.send_runs)
    smsq_runs = [run for run in report.send_runs if run.batch_max_recipients > 1]
    bad |= not all(run.completed for run in smsq_runs)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
