"""`python -m bench.database [--quick]`: the database's share of enqueue and send, beside raw Celery.

The first two figures issue 13 asks for, each measured against raw Celery in the same run, into the
`bench.database` section of docs/benchmarks.md:

1. Enqueue: `enqueue_many` of N single-recipient jobs on PostgreSQL (rows and the wake-up publish
   included) against raw Celery `apply_async` of N no-op tasks from one process, through one producer
   (one broker connection), to the same Redis broker; `enqueue()` one job at a time for context.
2. Send path: a backlog of single-recipient jobs drained one recipient per provider call
   (`SMSQ_BATCH_MAX_RECIPIENTS=1`) by 2 real `celery -A worker.app worker` processes against an
   unthrottled sandbox (`python -m sandbox --limit 1000000 --period 60`), counted as accepted send calls at
   the sandbox (`GET /_sandbox/calls`), against 2 worker processes of the same pool type draining the same
   number of raw Celery no-op tasks (each run appends its time to a Redis list). The database's
   transactions during the drain (`pg_stat_database`) and the statements of one provider call (SQLAlchemy
   events around `submit_next` in this process, on the same database) are reported per call. For scale,
   the host's ceiling: 2 processes doing nothing but httpx posts of one-recipient sends to the sandbox.

Redis: db 12 above `SMSQ_TEST_REDIS_URL` (flushed before and after each part). PostgreSQL: databases
named `smsq_bench_database*` on 127.0.0.1:5432 (trust auth), dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
import redis
from celery import Celery
from sqlalchemy import event, func, text
from sqlmodel import col, select

import bench.throughput as throughput
from bench.dispatch import Limit, SandboxProcess, accepted_sends, count_429, dispatch_settings, duplicates
from bench.report import notes_and_run, write_section
from bench.throughput import machine_info, request, runtime_for, settings_env
from bench.workers import ROOT, WorkerFleet, _wait_for
from models.db import transaction
from models.enums import JobState
from models.migrate import upgrade
from models.tables import Job
from tests import redis_dbs
from worker.producer import enqueue, enqueue_many
from worker.runtime import Runtime
from worker.submit.dispatch import submit_next

REDIS_URL = redis_dbs.url_for(redis_dbs.BENCH)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_PREFIX = "smsq_bench_database"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SECTION = "bench.database"
#: The sandbox and smsq's limiter alike: a limit no run comes near.
UNTHROTTLED = Limit(1_000_000, 60.0)
WORKER_PROCESSES = 2
#: The raw Celery app's queue (never one of smsq's), and where its workers find their broker.
RAW_QUEUE = "bench_database_noop"
RAW_BROKER_ENV = "BENCH_DATABASE_BROKER_URL"
#: The Redis list each raw no-op run appends its time to.
RAW_RUNS_KEY = "bench:database:noop:runs"
#: Provider calls whose statements are counted in this process after the drain.
STATEMENT_SAMPLES = 20


@dataclass(frozen=True)
class Profile:
    name: str
    enqueue_jobs: int
    enqueue_repeats: int
    single_jobs: int
    drain_jobs: int
    #: Longest either drain may take.
    drain_cap_s: float


FULL = Profile("full", 10_000, 3, 1_000, 10_000, 240.0)
QUICK = Profile("quick", 2_000, 2, 200, 600, 90.0)


# --- raw Celery: a no-op task on the same broker ---------------------------------------------------


def make_raw_app(broker_url: str) -> Celery:
    """A plain Celery app: same broker, JSON, no result backend, Celery's defaults otherwise."""
    app = Celery("bench_database_raw", set_as_current=False)
    app.conf.update(
        broker_url=broker_url,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=RAW_QUEUE,
        worker_hijack_root_logger=False,
    )
    runs: list[redis.Redis[Any]] = []

    @app.task(name="bench.noop", ignore_result=True, shared=False)  # type: ignore[untyped-decorator]
    def noop(index: int) -> None:
        if not runs:
            runs.append(redis.Redis.from_url(broker_url))
        runs[0].rpush(RAW_RUNS_KEY, repr(time.time()))

    return app


#: `celery -A bench.database:raw_app worker` (its broker from BENCH_DATABASE_BROKER_URL).
raw_app = make_raw_app(os.environ.get(RAW_BROKER_ENV) or REDIS_URL)


def raw_publish(app: Celery, count: int, *, start: int = 0) -> float:
    """`apply_async` of `count` no-op tasks through one producer (one connection); seconds taken."""
    task = app.tasks["bench.noop"]
    with app.producer_or_acquire() as producer:
        started = time.perf_counter()
        for index in range(start, start + count):
            task.apply_async(args=(index,), producer=producer)
        return time.perf_counter() - started


def redis_client() -> redis.Redis[Any]:
    return redis.Redis.from_url(REDIS_URL)


def flush_redis() -> None:
    client = redis_client()
    try:
        client.flushdb()
    finally:
        client.close()


def queue_length(name: str) -> int:
    client = redis_client()
    try:
        return int(client.llen(name))
    finally:
        client.close()


# --- PostgreSQL -----------------------------------------------------------------------------------


class Databases:
    """Fresh, migrated smsq databases named `<prefix>_<name>`; all dropped on close."""

    def __init__(self, prefix: str = PG_PREFIX) -> None:
        self.prefix = prefix
        self.admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
        self._made: list[str] = []

    def create(self, name: str) -> tuple[str, str]:
        """(SQLAlchemy URL, database name) of a new migrated database (a leftover of that name dropped first)."""
        db = f"{self.prefix}_{name}"
        self.admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.admin.execute(f'CREATE DATABASE "{db}"')
        self._made.append(db)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        upgrade(url)
        return url, db

    def transactions(self, db: str) -> int:
        """Committed plus rolled-back transactions of `db` so far (the statistics collector's count)."""
        self.admin.execute("SELECT pg_stat_clear_snapshot()")
        row = self.admin.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", (db,)
        ).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        for db in reversed(self._made):
            with contextlib.suppress(psycopg.Error):
                self.admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.admin.close()


def server_version(dbs: Databases) -> str:
    row = dbs.admin.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


# --- 1. enqueue -----------------------------------------------------------------------------------


@dataclass
class EnqueueResult:
    jobs: int
    smsq_s: list[float] = field(default_factory=list)
    raw_s: list[float] = field(default_factory=list)
    #: Jobs stored and tasks found in the broker after each repetition (each must equal `jobs`).
    smsq_stored: list[int] = field(default_factory=list)
    smsq_wakeups: list[int] = field(default_factory=list)
    raw_queued: list[int] = field(default_factory=list)
    single_jobs: int = 0
    single_s: float = 0.0
    single_stored: int = 0

    @property
    def smsq_rate(self) -> float:
        return self.jobs / statistics.median(self.smsq_s)

    @property
    def raw_rate(self) -> float:
        return self.jobs / statistics.median(self.raw_s)

    @property
    def ratio(self) -> float:
        return self.smsq_rate / self.raw_rate

    @property
    def single_rate(self) -> float:
        return self.single_jobs / self.single_s if self.single_s else 0.0


def _stored_jobs(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        return int(session.exec(select(func.count()).select_from(Job)).one())


def _empty_tables(rt: Runtime) -> None:
    with transaction(rt.sessions) as session:
        session.execute(text("TRUNCATE smsq_recipient, smsq_submission, smsq_job CASCADE"))


def run_enqueue(dbs: Databases, profile: Profile) -> EnqueueResult:
    """Repetitions alternate raw Celery and smsq (same broker, flushed before each), so both see the same noise."""
    url, _ = dbs.create("enqueue")
    settings = dispatch_settings(url, "http://127.0.0.1:9/rest/v1", UNTHROTTLED, broker_url=REDIS_URL)
    result = EnqueueResult(profile.enqueue_jobs)
    app = make_raw_app(REDIS_URL)
    n = profile.enqueue_jobs
    with runtime_for(settings) as rt:
        # Warm-up, both sides: connections, the schema check, Celery's app finalised.
        enqueue(request(99_999), runtime=rt)
        raw_publish(app, 1)
        for _ in range(profile.enqueue_repeats):
            flush_redis()
            result.raw_s.append(raw_publish(app, n))
            result.raw_queued.append(queue_length(RAW_QUEUE))
            flush_redis()
            _empty_tables(rt)
            items = [request(i) for i in range(n)]  # built outside the timing, as a caller holds them
            started = time.perf_counter()
            handles = enqueue_many(items, runtime=rt)
            result.smsq_s.append(time.perf_counter() - started)
            assert len(handles) == n
            result.smsq_stored.append(_stored_jobs(rt))
            result.smsq_wakeups.append(queue_length("smsq.send") + queue_length("smsq.express"))
        flush_redis()
        _empty_tables(rt)
        result.single_jobs = profile.single_jobs
        items = [request(i) for i in range(profile.single_jobs)]
        started = time.perf_counter()
        for item in items:
            enqueue(item, runtime=rt)
        result.single_s = time.perf_counter() - started
        result.single_stored = _stored_jobs(rt)
    flush_redis()
    return result


# --- 2. the send path -----------------------------------------------------------------------------


def steady_rate(times: Sequence[float]) -> float | None:
    """Events per second between the 10th and the 90th percentile event (start-up and tail left out)."""
    ordered = sorted(times)
    if len(ordered) < 10:
        return (len(ordered) - 1) / (ordered[-1] - ordered[0]) if len(ordered) > 1 else None
    lo, hi = len(ordered) // 10, len(ordered) * 9 // 10 - 1
    span = ordered[hi] - ordered[lo]
    return (hi - lo) / span if span > 0 else None


def overall_rate(times: Sequence[float]) -> float | None:
    if len(times) < 2:
        return None
    return (len(times) - 1) / (max(times) - min(times))


@dataclass
class DrainRun:
    label: str
    jobs: int
    #: Seconds since the workers were started of each counted event (accepted send call / no-op run).
    times: list[float]
    startup_s: float
    duplicates: int = 0
    throttled_429: int = 0
    #: Transactions of the database during the drain, workers and beat, polls and sweeps included.
    transactions: int | None = None

    @property
    def count(self) -> int:
        return len(self.times)

    @property
    def steady(self) -> float | None:
        return steady_rate(self.times)

    @property
    def overall(self) -> float | None:
        return overall_rate(self.times)


@dataclass
class StatementCount:
    calls: int = 0
    commits: int = 0
    statements: int = 0
    rounds: int = 0
    #: Statement kinds of one round (the last one counted), in order.
    sample: list[str] = field(default_factory=list)


class StatementCounter:
    """Statements (their first word) and commits on an engine, from SQLAlchemy events."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.statements: list[str] = []
        self.commits = 0
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "commit", self._commit)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement.split(None, 1)[0].upper())

    def _commit(self, conn: Any) -> None:
        self.commits += 1

    def reset(self) -> None:
        self.statements, self.commits = [], 0

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def count_statements(rt: Runtime, first: int, calls: int) -> StatementCount:
    """Statements and transactions of `calls` provider calls of one recipient each, in this process."""
    enqueue_many([request(first + i) for i in range(calls)], runtime=rt)
    cast(Any, rt).wake = lambda *args, **kwargs: False  # broker messages are not the database's cost
    rt.limiter("default").peek()
    counted = StatementCount()
    counter = StatementCounter(rt.engine)
    try:
        for _ in range(calls):
            counter.statements, counter.commits = [], 0
            made = submit_next("default", rt).calls
            if not made:
                break
            counted.calls += made
            counted.rounds += 1
            counted.commits += counter.commits
            counted.statements += len(counter.statements)
            counted.sample = list(counter.statements)
    finally:
        counter.close()
    return counted


def _queued(rt: Runtime) -> int:
    with transaction(rt.sessions) as session:
        query = select(func.count()).select_from(Job).where(col(Job.state) == JobState.QUEUED)
        return int(session.exec(query).one())


def _raw_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env[RAW_BROKER_ENV] = REDIS_URL
    return env


def start_raw_workers(fleet: WorkerFleet, count: int, pool: str) -> float:
    """`count` workers of the raw app on its queue, started like WorkerFleet.start starts smsq's."""
    started = time.monotonic()
    for index in range(count):
        log = fleet.log_dir / f"raw-worker-{len(fleet.procs)}.log"
        args = [sys.executable, "-m", "celery", "-A", "bench.database:raw_app", "worker", "-P", pool]
        args += ["-c", "1", "-Q", RAW_QUEUE, "-n", f"raw{len(fleet.procs)}-{index}@%h", "--loglevel=INFO"]
        args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=fleet.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        fleet.procs.append((proc, log))
        fleet.workers.append(proc)
    for proc, log in fleet.procs[-count:]:
        _wait_for(proc, log, b"ready.")
    return time.monotonic() - started


def run_raw_drain(jobs: int, pool: str, workdir: Path, cap_s: float) -> DrainRun:
    flush_redis()
    app = make_raw_app(REDIS_URL)
    raw_publish(app, jobs)
    rundir = workdir / "raw-drain"
    rundir.mkdir()
    client = redis_client()
    try:
        with WorkerFleet(_raw_env(), rundir) as fleet:
            t0 = time.time()
            startup_s = start_raw_workers(fleet, WORKER_PROCESSES, pool)
            deadline = time.time() + cap_s
            while time.time() < deadline and int(client.llen(RAW_RUNS_KEY)) < jobs:
                time.sleep(0.2)
        times = [float(t) - t0 for t in client.lrange(RAW_RUNS_KEY, 0, -1)]
    finally:
        client.close()
    flush_redis()
    return DrainRun("raw Celery no-op", jobs, sorted(times), startup_s)


def _post_sends(url: str, first: int, count: int) -> None:
    """One client process of the bare-HTTP run: `count` single-recipient Retarus sends, one at a time."""
    import httpx

    from sandbox.config import DEFAULT_PASSWORD, DEFAULT_USERNAME

    with httpx.Client(base_url=url, auth=(DEFAULT_USERNAME, DEFAULT_PASSWORD), timeout=30) as client:
        for i in range(first, first + count):
            recipient = {"dst": request(i)["messages"][0]["recipients"][0]["dst"], "customerRef": f"bare-{i}"}
            body = {"messages": [{"text": "Bench", "recipients": [recipient]}], "options": {"src": "BENCH"}}
            client.post("/rest/v1/jobs", json=body).raise_for_status()


def run_bare_http(jobs: int, workdir: Path) -> DrainRun:
    """The ceiling the host sets before any smsq code: WORKER_PROCESSES processes posting one-recipient
    sends to the same sandbox with httpx, one at a time, no database, broker or limiter."""
    import multiprocessing

    sandbox = SandboxProcess(UNTHROTTLED, workdir)
    try:
        sandbox.reset()
        share = jobs // WORKER_PROCESSES
        context = multiprocessing.get_context("spawn")
        t0 = time.time()
        procs = [
            context.Process(target=_post_sends, args=(sandbox.url, n * share, share))
            for n in range(WORKER_PROCESSES)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        sends = accepted_sends(sandbox.calls("/rest/v1/jobs"))
        return DrainRun("httpx posts to the sandbox, no smsq (the host's ceiling)", share * WORKER_PROCESSES,
                        [c["real_ts"] - t0 for c in sends], 0.0)  # fmt: skip
    finally:
        sandbox.stop()


def run_smsq_drain(
    dbs: Databases, jobs: int, pool: str, workdir: Path, cap_s: float
) -> tuple[DrainRun, StatementCount]:
    url, db = dbs.create("send")
    rundir = workdir / "smsq-drain"
    rundir.mkdir()
    sandbox = SandboxProcess(UNTHROTTLED, workdir)
    try:
        flush_redis()
        sandbox.reset()
        settings = dispatch_settings(
            url, sandbox.rest_url, UNTHROTTLED, batch_max_recipients=1, broker_url=REDIS_URL
        )
        with runtime_for(settings) as rt:
            rt.limiter("default").reset()
            enqueue_many([request(i) for i in range(jobs)], runtime=rt)  # its wake-up waits in the broker
            xact_before = dbs.transactions(db)
            with WorkerFleet(settings_env(settings), rundir) as fleet:
                t0 = time.time()
                startup_s = fleet.start(WORKER_PROCESSES, concurrency=1, pool=pool)
                fleet.start_beat()
                deadline, seen, sent = time.time() + cap_s, 0, 0
                while time.time() < deadline and sent < jobs:
                    time.sleep(1.0)
                    new = sandbox.calls(since=seen)  # only the records that arrived since the last look
                    seen, sent = seen + len(new), sent + len(accepted_sends(new))
                fleet.stop()
            time.sleep(1.5)  # backends report their counts when they exit
            xact = dbs.transactions(db) - xact_before
            calls = sandbox.calls()
            sandbox_jobs = sandbox.jobs()
            sends = accepted_sends(calls)
            run = DrainRun(
                "smsq, one recipient per call",
                jobs,
                [c["real_ts"] - t0 for c in sends],
                startup_s,
                duplicates=duplicates(sandbox_jobs),
                throttled_429=count_429(calls),
                transactions=xact,
            )
            left = _queued(rt)
            if left:
                print(f"      {left} jobs still queued after the drain", flush=True)
            counted = count_statements(rt, jobs, STATEMENT_SAMPLES)
    finally:
        sandbox.stop()
        flush_redis()
    return run, counted


# --- report ---------------------------------------------------------------------------------------


@dataclass
class DatabaseReport:
    command: str
    mode: str
    pool: str
    date_utc: str
    machine: dict[str, str]
    profile: Profile
    postgres: str = "?"
    redis_offset: int = redis_dbs.BENCH
    enqueue: EnqueueResult | None = None
    smsq_drain: DrainRun | None = None
    raw_drain: DrainRun | None = None
    bare_http: DrainRun | None = None
    statements: StatementCount | None = None
    part_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    total_s: float = 0.0


def _r(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def headlines(report: DatabaseReport) -> list[str]:
    lines: list[str] = []
    e = report.enqueue
    if e and e.smsq_s and e.raw_s:
        verdict = "met" if e.ratio >= 1.0 else "**missed**"
        lines.append(
            f"Enqueue, {e.jobs:,} single-recipient jobs on PostgreSQL: `enqueue_many` **{e.smsq_rate:,.0f} jobs/s** "
            f"against raw Celery `apply_async` {e.raw_rate:,.0f} tasks/s from one process = **{e.ratio:.2f}×** "
            f"(target ≥ 1.0×, {verdict}); `enqueue()` one at a time {e.single_rate:,.0f} jobs/s."
        )
    s, r = report.smsq_drain, report.raw_drain
    if s and r:
        ratio = _ratio(s.steady, r.steady)
        verdict = "n/a" if ratio is None else ("met" if ratio >= 0.5 else "**missed**")
        lines.append(
            f"Send path, one recipient per call, unthrottled sandbox, {WORKER_PROCESSES} worker processes "
            f"(`-P {report.pool} -c 1`): **{_r(s.steady)} provider calls/s** against raw Celery's no-op drain "
            f"{_r(r.steady)} tasks/s = **{'n/a' if ratio is None else f'{ratio * 100:.0f} %'}** (target ≥ 50 %, "
            f"{verdict})"
            + (
                f"; bare `httpx` clients reach {_r(report.bare_http.steady)} calls/s against the same sandbox "
                f"on this host (smsq: {_pct(_ratio(s.steady, report.bare_http.steady))} of that)."
                if report.bare_http
                else "."
            )
        )
    st = report.statements
    if st and st.calls:
        per_call = (
            f"; all transactions of the database during the drain (workers, beat, polls, sweeps): "
            f"{s.transactions / s.count:.2f} per provider call"
            if s and s.transactions is not None and s.count
            else ""
        )
        lines.append(
            f"Database cost of one provider call on PostgreSQL: **{st.commits / st.calls:.2f} transactions, "
            f"{st.statements / st.calls:.2f} statements** (over {st.calls} calls; "
            "tests/integration/test_statements.py pins a coalesced call, and a Retarus REST round of 8 "
            "one-recipient calls, at 2 transactions and 10 statements)" + per_call + "."
        )
    return lines


def _samples(values: Sequence[float], jobs: int) -> str:
    return ", ".join(f"{jobs / v:,.0f}" for v in values)


def render(report: DatabaseReport) -> str:
    out: list[str] = []
    add = out.append
    p = report.profile
    add("## The database's share of enqueue and send (`bench/database.py`)")
    add("")
    add(
        "Written by `python -m bench.database` (do not edit by hand; re-run it). The first two figures of "
        f"issue 13, each beside raw Celery measured in the same run on the same Redis broker (db {report.redis_offset} "
        f"above `SMSQ_TEST_REDIS_URL`) and the same PostgreSQL server ({report.postgres}, 127.0.0.1:5432, a "
        "database of the bench's own, created and dropped)."
    )
    add("")
    add("```")
    add(".venv/bin/python -m bench.database            # full: 10,000 jobs enqueued, a 10,000-job drain")
    add(".venv/bin/python -m bench.database --quick    # 2,000 and 600")
    add("```")
    add("")
    add("### Results")
    add("")
    for line in headlines(report):
        add(f"- {line}")
    add("")
    e = report.enqueue
    if e:
        add("### 1. Enqueue")
        add("")
        add(
            f"*smsq*: `enqueue_many` of {e.jobs:,} single-recipient Retarus jobs in one call on PostgreSQL: "
            "validation, one transaction with one executemany INSERT per table, then one wake-up per "
            "connection on the broker; the request dicts are built before the clock starts. *Raw Celery*: a "
            "Celery app of the bench's own (same broker URL, JSON, no result backend, Celery's defaults "
            f"otherwise) publishing {e.jobs:,} `apply_async` calls of a no-op task through one producer "
            "(`app.producer_or_acquire()`: one connection, as a careful user would). Both warmed up by one "
            f"call first; the broker flushed and the tables emptied before each of {len(e.smsq_s)} "
            "repetitions, raw Celery and smsq alternating; the median is shown. *Stored / in the broker* is "
            "checked after each repetition: every job stored once, every task queued once."
        )
        add("")
        add("| | jobs | median rate | every repetition | stored / in the broker | broker messages |")
        add("|---|---:|---:|---|---:|---:|")
        add(
            f"| raw Celery `apply_async`, one producer | {e.jobs:,} | {e.raw_rate:,.0f} tasks/s | "
            f"{_samples(e.raw_s, e.jobs)} | {', '.join(f'{n:,}' for n in e.raw_queued)} | "
            f"{', '.join(f'{n:,}' for n in e.raw_queued)} |"
        )
        add(
            f"| smsq `enqueue_many` | {e.jobs:,} | {e.smsq_rate:,.0f} jobs/s | {_samples(e.smsq_s, e.jobs)} | "
            f"{', '.join(f'{n:,}' for n in e.smsq_stored)} | {', '.join(map(str, e.smsq_wakeups))} (wake-ups) |"
        )
        add(
            f"| smsq `enqueue()` one at a time | {e.single_jobs:,} | {e.single_rate:,.0f} jobs/s | "
            f"{e.single_jobs / e.single_s if e.single_s else 0:,.0f} | {e.single_stored:,} | "
            "≤ 1 waiting wake-up |"
        )
        add("")
        add(f"Ratio smsq / raw Celery: **{e.ratio:.2f}×** (target ≥ 1.0×).")
        add("")
    s, r = report.smsq_drain, report.raw_drain
    if s or r:
        add("### 2. The send path at one recipient per call")
        add("")
        add(
            f"*smsq*: {p.drain_jobs:,} single-recipient Retarus jobs enqueued with no worker running, then "
            f"{WORKER_PROCESSES} `celery -A worker.app worker -P {report.pool} -c 1` processes and beat "
            "started; the sandbox is its own process (`python -m sandbox --limit 1000000 --period 60`) and "
            "smsq's limit is the same (`SMSQ_RATE_LIMIT_CALLS=1000000`, `SMSQ_RATE_LIMIT_PERIOD_S=60`), "
            "`SMSQ_BATCH_MAX_RECIPIENTS=1`. Counted: send calls the sandbox accepted (`GET /_sandbox/calls`, "
            "their arrival times). *Raw Celery*: the bench's own app with a no-op task that appends its run "
            f"time to a Redis list (one RPUSH); {p.drain_jobs:,} tasks published first, then "
            f"{WORKER_PROCESSES} `celery -A bench.database:raw_app worker -P {report.pool} -c 1` processes "
            "(Celery's defaults: prefetch 4, early acknowledgement; smsq's own app uses late acknowledgement "
            "and prefetch 1). *Steady rate* = events between the 10th and the 90th percentile event over the "
            "time between them (worker start-up and the tail left out); *overall* = first to last event."
        )
        add("")
        add(
            "| | jobs / tasks | counted | duplicates | 429 | worker start | first → last | overall rate | "
            "steady rate |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for run in (x for x in (r, report.bare_http, s) if x is not None):
            span = f"{run.times[0]:.1f} → {run.times[-1]:.1f} s" if run.times else "none"
            unit = "tasks/s" if run is r else "calls/s"
            add(
                f"| {run.label} | {run.jobs:,} | {run.count:,} | {run.duplicates} | {run.throttled_429} | "
                f"{run.startup_s:.1f} s | {span} | {_r(run.overall)} {unit} | **{_r(run.steady)} {unit}** |"
            )
        add("")
        if s and r:
            ratio = _ratio(s.steady, r.steady)
            add(
                f"Ratio smsq / raw Celery (steady): **{'n/a' if ratio is None else f'{ratio * 100:.0f} %'}** "
                "(target ≥ 50 %)."
            )
            add("")
        b = report.bare_http
        if b and r and s:
            add(
                f"*The host's ceiling*: {WORKER_PROCESSES} processes doing nothing but `httpx` posts of one-recipient "
                f"sends to the same sandbox reach {_r(b.steady)} calls/s, so 50 % of raw Celery's no-op drain "
                f"({_r(r.steady * 0.5 if r.steady else None)}/s) would be "
                f"{_pct(_ratio((r.steady or 0) * 0.5, b.steady))} of what the sandbox accepts from bare HTTP "
                f"clients on these {os.cpu_count()} cores, where the sandbox, PostgreSQL, Redis and the workers "
                f"share the CPU; smsq reaches {_pct(_ratio(s.steady, b.steady))} of that ceiling."
            )
            add("")
    st = report.statements
    if st:
        add("### SQL per provider call")
        add("")
        add(
            f"After the drain, {STATEMENT_SAMPLES} more single-recipient jobs were enqueued on the same "
            "PostgreSQL database and sent with `submit_next` in the bench process, with SQLAlchemy's "
            "`before_cursor_execute` and `commit` events counting (broker wake-ups stubbed out, as in "
            "tests/integration/test_statements.py). With one recipient per call a round claims several calls' "
            "worth of jobs (`SMSQ_ROUND_MAX_CALLS`, 64), made up to `SMSQ_ROUND_PARALLEL_CALLS` (4) at a time. "
            "On Retarus REST the claim's transaction (claim, read "
            "the rows, every call's evidence: one INSERT and one UPDATE) and the recording transaction (every "
            "acceptance in one UPDATE, the claim moved in another) are shared by the round's calls; HTTP "
            "Simple, which cannot look a call up, commits each next call's evidence with the previous call's "
            "acceptance (one transaction per call). The test pins a coalesced call at **2 transactions and 10 "
            "statements**, and a Retarus REST round of 8 one-recipient calls at the same 2 and 10, on SQLite."
        )
        add("")
        if st.calls:
            add(
                f"- Measured: {st.calls} calls in {st.rounds} rounds, {st.commits / st.calls:.2f} transactions and "
                f"{st.statements / st.calls:.2f} statements per call; the last round: {', '.join(st.sample)}."
            )
        if s and s.transactions is not None and s.count:
            add(
                f"- During the drain, `pg_stat_database` counted {s.transactions:,} transactions on the bench's "
                f"database for {s.count:,} accepted send calls = {s.transactions / s.count:.2f} per call; this "
                "includes beat's sweeps and polls and the workers' own checks, not only the send path."
            )
        add("")
    notes_and_run(
        add,
        report,
        f"This is a {os.cpu_count()}-core host shared with other engineers' test suites, which ran during "
        "the run: rates are noisy (the two sides of each ratio were measured minutes apart at most, "
        "alternating where repeated); the counts (stored, queued, duplicates, statements) are not.",
    )
    add("")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def timed(report: DatabaseReport, part: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"[{part}] ...", flush=True)
    try:
        yield
    finally:
        report.part_s[part] = time.monotonic() - started
        print(f"[{part}] {report.part_s[part]:.0f} s", flush=True)


def add_notes(report: DatabaseReport) -> None:
    e = report.enqueue
    if e:
        if any(n != e.jobs for n in e.smsq_stored + e.raw_queued):
            report.notes.append("A repetition did not store or queue every job exactly once (see the table).")
        if e.smsq_s and e.raw_s and e.ratio < 1.0:
            report.notes.append(
                f"Enqueue target missed: {e.ratio:.2f}× raw Celery. `enqueue_many` still builds and validates "
                "an `SmsRequest` per job (pydantic, phonenumbers, segment counting) that raw Celery does not."
            )
    s, r = report.smsq_drain, report.raw_drain
    if s and s.count < s.jobs:
        report.notes.append(f"Only {s.count:,} of {s.jobs:,} jobs reached the sandbox within the cap.")
    if s and s.duplicates:
        report.notes.append(f"{s.duplicates} recipient(s) accepted twice by the sandbox.")
    if r and r.count < r.jobs:
        report.notes.append(f"Only {r.count:,} of {r.jobs:,} no-op tasks ran within the cap.")
    if s and r:
        ratio = _ratio(s.steady, r.steady)
        if ratio is not None and ratio < 0.5:
            report.notes.append(
                f"Send-path target missed: {ratio * 100:.0f} % of raw Celery's no-op drain rate."
            )


def run(report: DatabaseReport, workdir: Path, parts: set[str], *, prefix: str = PG_PREFIX) -> DatabaseReport:
    p = report.profile
    dbs = Databases(prefix)
    try:
        report.postgres = f"PostgreSQL {server_version(dbs)}"
        if "enqueue" in parts:
            with timed(report, "1. enqueue"):
                report.enqueue = run_enqueue(dbs, p)
                e = report.enqueue
                print(
                    f"      enqueue_many {e.smsq_rate:,.0f}/s, raw {e.raw_rate:,.0f}/s ({e.ratio:.2f}x), "
                    f"enqueue() {e.single_rate:,.0f}/s",
                    flush=True,
                )
        if "send" in parts:
            with timed(report, "2. raw Celery drain"):
                report.raw_drain = run_raw_drain(p.drain_jobs, report.pool, workdir, p.drain_cap_s)
                print(f"      raw drain {_r(report.raw_drain.steady)} tasks/s", flush=True)
            with timed(report, "2. bare HTTP"):
                report.bare_http = run_bare_http(p.drain_jobs, workdir)
                print(f"      bare HTTP {_r(report.bare_http.steady)} calls/s", flush=True)
            with timed(report, "2. smsq drain"):
                report.smsq_drain, report.statements = run_smsq_drain(
                    dbs, p.drain_jobs, report.pool, workdir, p.drain_cap_s
                )
                print(f"      smsq drain {_r(report.smsq_drain.steady)} calls/s", flush=True)
    finally:
        dbs.close()
        flush_redis()
    return report


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog="python -m bench.database", description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 jobs enqueued, a 600-job drain")
    parser.add_argument("--pool", choices=("prefork", "threads"), default="prefork", help="the workers' -P")
    parser.add_argument("--only", default="enqueue,send", help="comma-separated parts (enqueue, send)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the Markdown section goes")
    parser.add_argument("--keep", type=Path, default=None, help="keep worker and sandbox logs here")
    parser.add_argument(
        "--redis-offset",
        type=int,
        default=redis_dbs.BENCH,
        help="the Redis db above SMSQ_TEST_REDIS_URL (default 12, shared with bench.dispatch and "
        "bench.throughput, which flush it: never run them at the same time on one db)",
    )
    args = parser.parse_args(argv)
    global REDIS_URL
    REDIS_URL = redis_dbs.url_for(args.redis_offset)
    signal.signal(signal.SIGTERM, _terminate)
    profile = QUICK if args.quick else FULL
    started = time.monotonic()
    throughput.REDIS_URL = REDIS_URL  # machine_info reads the Redis version through it
    report = DatabaseReport(
        command="python -m bench.database"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        mode=profile.name,
        pool=args.pool,
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        machine=machine_info(),
        profile=profile,
        redis_offset=args.redis_offset,
    )
    with tempfile.TemporaryDirectory(prefix="smsq-bench-database-") as tmp:
        workdir = Path(tmp)
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.keep))
        run(report, workdir, set(args.only.split(",")))
    report.total_s = time.monotonic() - started
    add_notes(report)
    write_section(args.output, SECTION, render(report))
    for line in headlines(report):
        print(line.replace("**", ""))
    print(f"written to {args.output} in {report.total_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
