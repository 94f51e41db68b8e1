"""`python -m bench.dispatch [--quick]`: the per-connection drain against its baselines, into docs/benchmarks.md.

The figures issue 10 asks for, each measured with real `celery` worker and beat processes against the
sandbox served as its own process (`python -m sandbox --limit --period`), and always read from the
provider's side: the sandbox's call records (`GET /_sandbox/calls`: arrival time and status of every call)
and jobs (`GET /_sandbox/jobs`: recipients and customerRefs), never smsq's logs.

1. Backlog: N single-recipient jobs enqueued with the workers stopped, then workers and beat started;
   recipients a minute accepted by the provider, duplicates, 429s, against the same backlog sent one
   recipient per call (`SMSQ_BATCH_MAX_RECIPIENTS=1`) over a fixed window.
2. Saturation at batch size 1: provider calls per window against the send share, grants without a call
   (`granted_total()` minus the provider's count), broker messages and task runs per provider call, the
   most calls in any sliding provider window against the budget.
3. The same with CPU-burning neighbour processes: the budget at the provider, grant-to-wire delay.
4. Worker RSS with the backlog queued against idle.
5. Latency enqueue -> provider arrival on an idle system.

Redis: db 12 above `SMSQ_TEST_REDIS_URL` (flushed before and after each run). PostgreSQL: databases
named `smsq_bench_dispatch*` on 127.0.0.1:5432, dropped at the end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import func
from sqlmodel import col, select

from bench.report import nearest_rank, notes_and_run, write_section
from bench.throughput import flush_redis, machine_info, request, runtime_for, settings_env
from bench.workers import ROOT, WorkerFleet
from models.db import transaction
from models.enums import JobState
from models.migrate import upgrade
from models.tables import Job
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME
from tests import redis_dbs
from worker.producer import enqueue, enqueue_many
from worker.rate_limit.limiter import send_slots
from worker.settings import Settings, load_settings

REDIS_URL = redis_dbs.url_for(redis_dbs.BENCH)
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_PREFIX = "smsq_bench_dispatch"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SECTION = "bench.dispatch"
#: Recipients one Retarus call may carry (the physical ceiling per call).
CALL_MAX_RECIPIENTS = 3000
ENQUEUE_CHUNK = 5000


@dataclass(frozen=True)
class Limit:
    calls: int
    period_s: float

    def __str__(self) -> str:
        return f"{self.calls} calls / {self.period_s:g} s"


#: 100 calls / 60 s scaled down ten times in time: the same calls per second, shorter windows.
BACKLOG_LIMIT = Limit(10, 6.0)
SATURATION_LIMIT = Limit(50, 10.0)
LATENCY_LIMIT = Limit(100, 60.0)


@dataclass(frozen=True)
class FleetShape:
    processes: int
    concurrency: int
    pool: str

    def __str__(self) -> str:
        return f"{self.processes} worker processes × `-P {self.pool} -c {self.concurrency}`"


FLEET = FleetShape(4, 4, "threads")


@dataclass(frozen=True)
class Profile:
    name: str
    backlog_jobs: int
    #: Longest the coalescing run may take to submit the whole backlog.
    backlog_cap_s: float
    #: Whole provider windows the one-recipient-per-call baseline is measured over.
    baseline_windows: int
    saturation_jobs: int
    saturation_windows: int
    latency_samples: int
    latency_pause_s: float
    burners: int = 2


FULL = Profile("full", 100_000, 300.0, 5, 2000, 6, 30, 1.0)
QUICK = Profile("quick", 10_000, 120.0, 2, 600, 3, 8, 0.5)


# --- the sandbox, as its own process --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SandboxProcess:
    """`python -m sandbox` on a free port with its own limit; its control API is the witness."""

    def __init__(self, limit: Limit, log_dir: Path) -> None:
        self.limit = limit
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "sandbox", "--port", str(self.port)]
        args += ["--limit", str(limit.calls), "--period", str(limit.period_s)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
        self._log = (log_dir / f"sandbox-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                self._get("/_sandbox/clock")
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)

    @property
    def rest_url(self) -> str:
        return f"{self.url}/rest/v1"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=120) as answer:
            return json.loads(answer.read())

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/_sandbox/reset", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def calls(self, path_prefix: str | None = None, *, since: int = 0) -> list[dict[str, Any]]:
        """The sandbox's call records, oldest first; `since` skips the first records (all paths counted),
        so a poller that waits for a count reads each record once."""
        query = "&".join(([f"path_prefix={path_prefix}"] if path_prefix else []) + [f"since={since}"])
        return [c for c in self._get("/_sandbox/calls?" + query) if c["api"] != "control"]

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._get("/_sandbox/jobs"))

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


# --- what the provider saw (pure functions over the sandbox's records) -----------------------------


def is_send(call: dict[str, Any]) -> bool:
    return bool(call["method"] == "POST" and str(call["path"]).rstrip("/").endswith("/jobs"))


def accepted_sends(calls: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send calls the provider accepted (2xx), by arrival."""
    found = [
        c for c in calls if is_send(c) and c["status_code"] is not None and 200 <= c["status_code"] < 300
    ]
    return sorted(found, key=lambda c: c["real_ts"])


def max_in_window(times: Sequence[float], period_s: float) -> int:
    """The most arrivals in any window (t - period, t], the sandbox's own sliding window."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - period_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def per_window(times: Sequence[float], start: float, period_s: float, windows: int) -> list[int]:
    """Arrivals in each of `windows` consecutive windows [start + i*period, start + (i+1)*period)."""
    counts = [0] * windows
    for t in times:
        index = math.floor((t - start) / period_s)
        if 0 <= index < windows:
            counts[index] += 1
    return counts


def recipients_by_job(jobs: Sequence[dict[str, Any]]) -> dict[str, int]:
    return {j["jobId"]: len(j["recipients"]) for j in jobs if "jobId" in j}


def duplicates(jobs: Sequence[dict[str, Any]]) -> int:
    """Recipients (customerRefs) the provider accepted more than once."""
    refs = collections.Counter(
        r["customerRef"] for j in jobs for r in j.get("recipients", []) if r.get("customerRef")
    )
    return sum(n - 1 for n in refs.values() if n > 1)


def count_429(calls: Sequence[dict[str, Any]]) -> int:
    return sum(1 for c in calls if c["status_code"] == 429)


# --- worker logs, metrics -------------------------------------------------------------------------

_RECEIVED = re.compile(rb"Task (smsq\.[\w.]+)\[[^\]]+\] received")
_SUCCEEDED = re.compile(rb"Task (smsq\.[\w.]+)\[[^\]]+\] succeeded in [\d.]+s: ([^\n]*)")
_WORD = re.compile(r"^'?(\w+)'?$")


def task_counts(fleet: WorkerFleet) -> tuple[collections.Counter[str], collections.Counter[str]]:
    """(messages received by task name, task runs by "name result") over every worker log."""
    received: collections.Counter[str] = collections.Counter()
    runs: collections.Counter[str] = collections.Counter()
    for proc, log in fleet.procs:
        if proc not in fleet.workers:
            continue
        text = log.read_bytes()
        received.update(m.group(1).decode() for m in _RECEIVED.finditer(text))
        for m in _SUCCEEDED.finditer(text):
            word = _WORD.match(m.group(2).decode(errors="replace").strip())
            runs[f"{m.group(1).decode()} {word.group(1) if word else 'done'}"] += 1
    return received, runs


def lpush_calls() -> int:
    """LPUSH calls the Redis server has served (all dbs, all clients)."""
    client: redis.Redis[Any] = redis.Redis.from_url(REDIS_URL)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


@dataclass
class GrantToWire:
    count: int
    sum_s: float
    #: (upper bound in seconds, cumulative count) per histogram bucket.
    buckets: list[tuple[float, int]]
    stale: int

    def quantile_bound(self, q: float) -> float | None:
        """The smallest bucket bound under which at least a fraction q of the observations fall."""
        if not self.count:
            return None
        for bound, cumulative in self.buckets:
            if cumulative >= q * self.count:
                return bound
        return math.inf

    @property
    def max_bound(self) -> float | None:
        return self.quantile_bound(1.0)


def read_grant_to_wire(prom_dir: Path) -> GrantToWire | None:
    """The worker's grant-to-wire histogram and stale-grant counter from its multiprocess files."""
    try:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector
    except ImportError:
        return None
    if not any(prom_dir.glob("*.db")):
        return None
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(prom_dir))  # type: ignore[no-untyped-call]
    buckets: dict[float, float] = collections.defaultdict(float)
    count, total, stale = 0.0, 0.0, 0.0
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "smsq_limiter_grant_to_wire_seconds_bucket":
                buckets[float(sample.labels["le"])] += sample.value
            elif sample.name == "smsq_limiter_grant_to_wire_seconds_count":
                count += sample.value
            elif sample.name == "smsq_limiter_grant_to_wire_seconds_sum":
                total += sample.value
            elif sample.name == "smsq_limiter_stale_grants_total":
                stale += sample.value
    return GrantToWire(int(count), total, sorted((b, int(v)) for b, v in buckets.items()), int(stale))


# --- databases ------------------------------------------------------------------------------------


class Databases:
    """Fresh smsq databases for the runs, and copies of a filled template; all removed on close."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self._made: list[str] = []
        self._admin: psycopg.Connection[Any] | None = None
        if kind == "PostgreSQL":
            self._admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
            self._drop_leftovers()

    def _drop_leftovers(self) -> None:
        assert self._admin is not None
        rows = self._admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (PG_PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            self._admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create(self, name: str, *, template: str | None = None) -> str:
        """A database called `name`: migrated and empty, or a copy of `template` (a name made here)."""
        if self._admin is None:
            path = self.workdir / f"{name}.db"
            if template is None:
                url = f"sqlite:///{path}"
                upgrade(url)
            else:
                shutil.copyfile(self.workdir / f"{template}.db", path)
            self._made.append(name)
            return f"sqlite:///{path}"
        db = f"{PG_PREFIX}_{name}"
        if template is None:
            self._admin.execute(f'CREATE DATABASE "{db}"')
        else:
            source = f"{PG_PREFIX}_{template}"
            self._admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (source,)
            )
            self._admin.execute(f'CREATE DATABASE "{db}" TEMPLATE "{source}"')
        self._made.append(db)
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
        if template is None:
            upgrade(url)
        return url

    def close(self) -> None:
        if self._admin is not None:
            for db in reversed(self._made):
                with contextlib.suppress(psycopg.Error):
                    self._admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            self._admin.close()


# --- settings, fleets -----------------------------------------------------------------------------


def dispatch_settings(database_url: str, provider_url: str, limit: Limit, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "broker_url": REDIS_URL,
        "database_url": database_url,
        "provider": "retarus",
        "provider_url": provider_url,
        "provider_username": DEFAULT_USERNAME,
        "provider_password": DEFAULT_PASSWORD,
        "provider_api_key": DEFAULT_API_KEY,
        "rate_limit_calls": limit.calls,
        "rate_limit_period_s": limit.period_s,
    }
    values.update(overrides)
    return load_settings(**values)


def count_queued(database_url: str, settings: Settings) -> int:
    """Jobs still `queued` (a fresh engine each time: the runs' own runtimes stay out of it)."""
    with runtime_for(settings) as rt, transaction(rt.sessions) as session:
        query = select(func.count()).select_from(Job).where(col(Job.state) == JobState.QUEUED)
        return int(session.exec(query).one())


class MemorySampler:
    """Samples VmRSS of the fleet's task-running processes twice a second; keeps the largest seen."""

    def __init__(self, fleet: WorkerFleet) -> None:
        self.fleet = fleet
        self.peak_rss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def sample(self) -> None:
        for _, rss, _hwm in self.fleet.memory_kib():
            self.peak_rss_kib = max(self.peak_rss_kib, rss or 0)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def peak_hwm_kib(self) -> int:
        return max((hwm or 0 for _, _, hwm in self.fleet.memory_kib()), default=0)


@contextlib.contextmanager
def burners(count: int) -> Iterator[None]:
    """`count` processes spinning in Python (a CPU-burning neighbour on the host)."""
    procs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def start_fleet(fleet: WorkerFleet, shape: FleetShape) -> float:
    started = time.monotonic()
    fleet.start(shape.processes, concurrency=shape.concurrency, pool=shape.pool)
    fleet.start_beat()
    return time.monotonic() - started


# --- 1. backlog -----------------------------------------------------------------------------------


@dataclass
class BacklogRun:
    label: str
    database: str
    batch_max_recipients: int
    jobs: int
    startup_s: float
    #: Accepted send calls: (seconds after the workers were ready, recipients).
    sends: list[tuple[float, int]]
    #: Whole provider windows from the first accepted send call that the rate is measured over.
    windows: int
    window_recipients: int
    period_s: float
    duplicates: int
    throttled_429: int
    max_calls_in_window: int
    jobs_left_queued: int
    completed: bool
    measured_s: float
    peak_rss_kib: int
    peak_hwm_kib: int
    granted: int
    provider_calls: int

    @property
    def recipients(self) -> int:
        return sum(n for _, n in self.sends)

    @property
    def per_minute(self) -> float | None:
        if not self.windows:
            return None
        return self.window_recipients / (self.windows * self.period_s) * 60

    @property
    def steady_per_minute(self) -> float | None:
        """Recipients of every call after the first over the time from the first call to the last: the
        rate sustained across the whole run, with no start-of-window burst in it."""
        span = self.first_to_last_s
        if not span:
            return None
        return sum(n for _, n in self.sends[1:]) / span * 60

    @property
    def first_to_last_s(self) -> float | None:
        return self.sends[-1][0] - self.sends[0][0] if len(self.sends) > 1 else None


def enqueue_backlog(url: str, jobs: int, settings: Settings) -> float:
    """`jobs` single-recipient jobs through enqueue_many in chunks, no worker running; seconds taken."""
    started = time.monotonic()
    with runtime_for(settings) as rt:
        for start in range(0, jobs, ENQUEUE_CHUNK):
            enqueue_many([request(i) for i in range(start, min(start + ENQUEUE_CHUNK, jobs))], runtime=rt)
    return time.monotonic() - started


def run_backlog(
    label: str,
    dbs: Databases,
    template: str,
    jobs: int,
    sandbox: SandboxProcess,
    workdir: Path,
    *,
    batch_max_recipients: int,
    cap_s: float,
    fixed_windows: int | None = None,
    shape: FleetShape = FLEET,
) -> BacklogRun:
    """Copy the filled template, wake the connection as enqueue did, start workers and beat, measure.

    With `fixed_windows` the run stops after that many provider windows from the first accepted send
    call (the baseline); otherwise when no job is left queued, or at `cap_s`.
    """
    limit = sandbox.limit
    name = re.sub(r"\W+", "_", label.lower()).strip("_") + "_" + dbs.kind[:2].lower()
    url = dbs.create(name, template=template)
    rundir = workdir / name
    rundir.mkdir()
    flush_redis()
    sandbox.reset()
    settings = dispatch_settings(url, sandbox.rest_url, limit, batch_max_recipients=batch_max_recipients)
    with runtime_for(settings) as rt:
        rt.limiter("default").reset()
        rt.wake("default")  # the wake-up enqueue_many published (the broker was flushed since)
        with WorkerFleet(settings_env(settings), rundir) as fleet:
            t0 = time.time()
            startup_s = start_fleet(fleet, shape)
            with MemorySampler(fleet) as memory:
                deadline = t0 + cap_s
                left = jobs
                while time.time() < deadline:
                    time.sleep(1.0)
                    if fixed_windows is not None:
                        sends = accepted_sends(sandbox.calls("/rest/v1/jobs"))
                        if sends and time.time() > sends[0]["real_ts"] + fixed_windows * limit.period_s + 0.5:
                            break
                    else:
                        left = count_queued(url, settings)
                        if left == 0:
                            # the last claimed batch may still be on its way: wait for its call
                            time.sleep(2.0)
                            break
                measured_s = time.time() - t0
                hwm = memory.peak_hwm_kib()
        granted = rt.limiter("default").granted_total()
    left = count_queued(url, settings)
    calls = sandbox.calls()
    sandbox_jobs = sandbox.jobs()
    flush_redis()
    sizes = recipients_by_job(sandbox_jobs)
    sends = accepted_sends(calls)
    timed = [(c["real_ts"] - t0, sum(sizes.get(j, 0) for j in c["job_ids"])) for c in sends]
    windows, in_windows = 0, 0
    if timed:
        first, last = timed[0][0], timed[-1][0]
        # At least one window: a backlog sent within the first window is measured over that window.
        windows = max(1, math.floor((last - first) / limit.period_s))
        if fixed_windows is not None:
            windows = min(windows, fixed_windows)
        in_windows = sum(n for t, n in timed if t < first + windows * limit.period_s)
    return BacklogRun(
        label=label,
        database=dbs.kind,
        batch_max_recipients=batch_max_recipients,
        jobs=jobs,
        startup_s=startup_s,
        sends=timed,
        windows=windows,
        window_recipients=in_windows,
        period_s=limit.period_s,
        duplicates=duplicates(sandbox_jobs),
        throttled_429=count_429(calls),
        max_calls_in_window=max_in_window([c["real_ts"] for c in calls], limit.period_s),
        jobs_left_queued=left,
        completed=left == 0,
        measured_s=measured_s,
        peak_rss_kib=memory.peak_rss_kib,
        peak_hwm_kib=hwm,
        granted=granted,
        provider_calls=len(calls),
    )


# --- 2./3. saturation at batch size 1 -------------------------------------------------------------


@dataclass
class SaturationRun:
    label: str
    burners: int
    startup_s: float
    period_s: float
    budget: int
    send_slots: int
    margin_s: float
    #: Accepted send calls in each whole window from the first one.
    window_sends: list[int]
    #: All calls of the credential (sends, polls, lookups) in the same windows.
    window_calls: list[int]
    max_calls_in_window: int
    max_sends_in_window: int
    provider_calls: int
    provider_sends: int
    granted: int
    throttled_429: int
    duplicates: int
    received: dict[str, int]
    runs: dict[str, int]
    lpush_delta: int
    grant_to_wire: GrantToWire | None
    measured_s: float

    @property
    def send_share_used(self) -> float | None:
        if not self.window_sends:
            return None
        return statistics.mean(self.window_sends) / self.send_slots

    @property
    def grants_without_call(self) -> int:
        return self.granted - self.provider_calls

    @property
    def messages_per_call(self) -> float:
        return sum(self.received.values()) / self.provider_sends if self.provider_sends else math.nan

    @property
    def task_runs_per_call(self) -> float:
        return sum(self.runs.values()) / self.provider_sends if self.provider_sends else math.nan


def run_saturation(
    label: str,
    dbs: Databases,
    jobs: int,
    windows: int,
    sandbox: SandboxProcess,
    workdir: Path,
    *,
    burn: int = 0,
    shape: FleetShape = FLEET,
) -> SaturationRun:
    """`jobs` jobs queued, then a fleet sending one recipient per call for `windows` provider windows."""
    limit = sandbox.limit
    name = re.sub(r"\W+", "_", label.lower()).strip("_")
    url = dbs.create(name)
    rundir = workdir / name
    rundir.mkdir()
    prom_dir = rundir / "prometheus"
    prom_dir.mkdir()
    flush_redis()
    sandbox.reset()
    settings = dispatch_settings(url, sandbox.rest_url, limit, batch_max_recipients=1)
    env = settings_env(settings) | {"PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}
    with runtime_for(settings) as rt:
        rt.limiter("default").reset()
        enqueue_many([request(i) for i in range(jobs)], runtime=rt)
        with burners(burn) if burn else contextlib.nullcontext(), WorkerFleet(env, rundir) as fleet:
            startup_s = start_fleet(fleet, shape)
            lpush_before = lpush_calls()
            t0 = time.time()
            deadline = t0 + windows * limit.period_s + 120
            while time.time() < deadline:
                time.sleep(1.0)
                sends = accepted_sends(sandbox.calls("/rest/v1/jobs"))
                if sends and time.time() > sends[0]["real_ts"] + windows * limit.period_s + 0.5:
                    break
            measured_s = time.time() - t0
            fleet.stop()
            lpush_delta = lpush_calls() - lpush_before
            received, runs = task_counts(fleet)
        granted = rt.limiter("default").granted_total()
    calls = sandbox.calls()
    sandbox_jobs = sandbox.jobs()
    flush_redis()
    sends = accepted_sends(calls)
    times = [c["real_ts"] for c in sends]
    window_sends = per_window(times, times[0], limit.period_s, windows) if times else []
    return SaturationRun(
        label=label,
        burners=burn,
        startup_s=startup_s,
        period_s=limit.period_s,
        budget=limit.calls,
        send_slots=send_slots(limit.calls, settings.poll_share),
        margin_s=settings.rate_limit_margin_s,
        window_sends=window_sends,
        window_calls=per_window([c["real_ts"] for c in calls], times[0], limit.period_s, windows)
        if times
        else [],
        max_calls_in_window=max_in_window([c["real_ts"] for c in calls], limit.period_s),
        max_sends_in_window=max_in_window([c["real_ts"] for c in calls if is_send(c)], limit.period_s),
        provider_calls=len(calls),
        provider_sends=len(sends),
        granted=granted,
        throttled_429=count_429(calls),
        duplicates=duplicates(sandbox_jobs),
        received=dict(received),
        runs=dict(runs),
        lpush_delta=lpush_delta,
        grant_to_wire=read_grant_to_wire(prom_dir),
        measured_s=measured_s,
    )


# --- 5. latency (and 4. idle memory) ---------------------------------------------------------------


@dataclass
class LatencyRun:
    samples: int
    pause_s: float
    latencies_s: list[float]
    missing: int
    idle_rss_kib: int
    idle_hwm_kib: int
    startup_s: float

    def percentile(self, q: float) -> float | None:
        return nearest_rank(self.latencies_s, q)


def run_latency(
    dbs: Databases, samples: int, pause_s: float, sandbox: SandboxProcess, workdir: Path
) -> LatencyRun:
    url = dbs.create("latency")
    rundir = workdir / "latency"
    rundir.mkdir()
    flush_redis()
    sandbox.reset()
    settings = dispatch_settings(url, sandbox.rest_url, sandbox.limit)
    enqueued: dict[str, float] = {}
    with runtime_for(settings) as rt, WorkerFleet(settings_env(settings), rundir) as fleet:
        rt.limiter("default").reset()
        startup_s = start_fleet(fleet, FLEET)
        time.sleep(5.0)  # idle: beat's sweeps run, nothing is queued
        idle = fleet.memory_kib()
        idle_rss = max((rss or 0 for _, rss, _ in idle), default=0)
        idle_hwm = max((hwm or 0 for _, _, hwm in idle), default=0)
        base = 50_000
        for i in range(samples):
            item = request(base + i)
            dst = item["messages"][0]["recipients"][0]["dst"]
            enqueued[dst] = time.time()
            enqueue(item, runtime=rt)
            time.sleep(pause_s)
        deadline = time.time() + 30
        while time.time() < deadline and len(accepted_sends(sandbox.calls("/rest/v1/jobs"))) < samples:
            time.sleep(0.5)
    arrival_by_job = {j: c["real_ts"] for c in accepted_sends(sandbox.calls()) for j in c["job_ids"]}
    arrivals: dict[str, float] = {}
    for job in sandbox.jobs():
        for recipient in job.get("recipients", []):
            if job.get("jobId") in arrival_by_job:
                arrivals[recipient["dst"]] = arrival_by_job[job["jobId"]]
    flush_redis()
    latencies = [arrivals[dst] - t for dst, t in enqueued.items() if dst in arrivals]
    return LatencyRun(samples, pause_s, latencies, samples - len(latencies), idle_rss, idle_hwm, startup_s)


# --- report ---------------------------------------------------------------------------------------


@dataclass
class DispatchReport:
    command: str
    mode: str
    date_utc: str
    machine: dict[str, str]
    profile: Profile
    margin_s: float
    poll_share: float
    enqueue_s: dict[str, float] = field(default_factory=dict)
    backlog: list[BacklogRun] = field(default_factory=list)
    saturation: list[SaturationRun] = field(default_factory=list)
    latency: LatencyRun | None = None
    part_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    total_s: float = 0.0


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "> 1 s" if math.isinf(value) else f"{value * 1000:.1f} ms"


def _mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB" if kib else "n/a"


def physical_per_minute(limit: Limit) -> float:
    return limit.calls * CALL_MAX_RECIPIENTS / limit.period_s * 60


def headlines(report: DispatchReport) -> list[str]:
    lines: list[str] = []
    physical = physical_per_minute(BACKLOG_LIMIT)
    for smsq in (r for r in report.backlog if r.batch_max_recipients > 1):
        base = next(
            (r for r in report.backlog if r.batch_max_recipients == 1 and r.database == smsq.database), None
        )
        rate = smsq.per_minute
        line = (
            f"Backlog ({smsq.database}, {smsq.jobs:,} jobs, {BACKLOG_LIMIT}): "
            f"**{rate or 0:,.0f} recipients/min** = **{_pct((rate or 0) / physical)}** of the physical "
            f"{physical:,.0f}/min (target ≥ 250,000, ≥ 83 %); duplicates {smsq.duplicates}, 429s "
            f"{smsq.throttled_429}"
        )
        if smsq.steady_per_minute:
            line += (
                f"; sustained from the first call to the last **{smsq.steady_per_minute:,.0f}/min** = "
                f"**{_pct(smsq.steady_per_minute / physical)}**"
            )
        if base and base.per_minute:
            line += (
                f"; baseline one recipient per call {base.per_minute:,.1f} recipients/min "
                f"(**{(rate or 0) / base.per_minute:,.0f}×**)"
            )
        lines.append(line + ".")
    for run in report.saturation:
        g2w = run.grant_to_wire
        lines.append(
            f"Saturation, batch size 1{', ' + str(run.burners) + ' CPU burners' if run.burners else ''}: "
            f"provider send calls **{_pct(run.send_share_used)}** of the send share (target ≥ 97 %); "
            f"grants without a call {run.grants_without_call} of {run.granted} "
            f"(**{_pct(run.grants_without_call / run.granted if run.granted else None)}**, target ≤ 1 %); "
            f"most calls in any provider window **{run.max_calls_in_window} / {run.budget}**; 429s "
            f"{run.throttled_429}; broker messages per call {run.messages_per_call:.2f}, task runs per call "
            f"{run.task_runs_per_call:.2f}"
            + (
                f"; grant-to-wire p99 ≤ {_ms(g2w.quantile_bound(0.99))}, stale grants {g2w.stale}"
                if g2w
                else ""
            )
            + "."
        )
    if report.latency and report.latency.latencies_s:
        lat = report.latency
        lines.append(
            f"Latency enqueue → provider, idle system: p50 **{_ms(lat.percentile(0.5))}**, p99 "
            f"**{_ms(lat.percentile(0.99))}** ({len(lat.latencies_s)} jobs)."
        )
        queued = [r for r in report.backlog if r.peak_hwm_kib]
        if queued and lat.idle_hwm_kib:
            worst = max(queued, key=lambda r: r.peak_hwm_kib)
            lines.append(
                f"Worker RSS: peak {_mib(worst.peak_hwm_kib)} with the backlog queued ({worst.label}, "
                f"{worst.database}) vs {_mib(lat.idle_hwm_kib)} idle = "
                f"**{worst.peak_hwm_kib / lat.idle_hwm_kib:.2f}×** (target ≤ 1.2×)."
            )
    return lines


def render(report: DispatchReport) -> str:
    out: list[str] = []
    add = out.append
    p = report.profile
    add("## Dispatch under backlog and saturation (`bench/dispatch.py`)")
    add("")
    add(
        "Written by `python -m bench.dispatch` (do not edit by hand; re-run it). The figures of issue 10, each "
        "beside its baseline from the same run, all read **at the provider**: the sandbox runs as its own "
        "process (`python -m sandbox --limit --period`) and its call records (`GET /_sandbox/calls`, arrival "
        "time and status of every call) and jobs (`GET /_sandbox/jobs`, recipients and customerRefs) are the "
        "witness, never smsq's logs. Workers and beat are real `celery` processes "
        f"({FLEET}, beat with its default intervals); Redis db 12 above `SMSQ_TEST_REDIS_URL`."
    )
    add("")
    add("```")
    add(".venv/bin/python -m bench.dispatch            # full: 100,000-job backlog, 6-window saturated runs")
    add(".venv/bin/python -m bench.dispatch --quick    # 10,000 jobs, 3 windows")
    add(".venv/bin/python -m bench.dispatch --sqlite   # also the backlog on SQLite")
    add("```")
    add("")
    add("### Results")
    add("")
    for line in headlines(report):
        add(f"- {line}")
    add("")
    if report.backlog:
        physical = physical_per_minute(BACKLOG_LIMIT)
        share = send_slots(BACKLOG_LIMIT.calls, report.poll_share)
        add("### 1. A backlog of single-recipient jobs")
        add("")
        add(
            f"Limit **{BACKLOG_LIMIT}** on both the sandbox and smsq (`SMSQ_RATE_LIMIT_CALLS`/`_PERIOD_S`): "
            "100 calls / 60 s scaled down ten times in time, the same calls per second, so recipients per "
            f"minute compare directly with the real limit. Physical ceiling: {BACKLOG_LIMIT.calls} calls × "
            f"{CALL_MAX_RECIPIENTS:,} recipients per {BACKLOG_LIMIT.period_s:g} s = {physical:,.0f} "
            f"recipients/min; smsq's send share is {share} of the {BACKLOG_LIMIT.calls} calls (the rest is kept "
            f"for polls, `SMSQ_POLL_SHARE` = {report.poll_share:g}), and its limiter window is the period plus "
            f"the margin ({report.margin_s:g} s), so smsq's own ceiling here is {share} × 3,000 per "
            f"{BACKLOG_LIMIT.period_s + report.margin_s:g} s = "
            f"{share * CALL_MAX_RECIPIENTS / (BACKLOG_LIMIT.period_s + report.margin_s) * 60:,.0f}/min "
            f"({share * CALL_MAX_RECIPIENTS / (BACKLOG_LIMIT.period_s + report.margin_s) * 60 / physical * 100:.1f} % "
            "of physical; at the unscaled 100 / 60 s the margin costs 0.4 % instead of 4 %). The backlog is "
            "enqueued once with `enqueue_many` in chunks of 5,000 with no worker running (into a template "
            "database; each run gets a copy and the one wake-up enqueue publishes), then the workers and beat "
            "are started. *Recipients/min* = recipients in the send calls the sandbox accepted during the "
            "whole provider windows from the first accepted call (the last, partial window is left out, so "
            "a burst at its start cannot inflate the rate); the first window starts with the limiter's whole "
            "send share at once, so this rate can exceed the steady ceiling by the margin's few per cent. "
            "*Sustained* leaves that out: recipients of every call after the first over the seconds from the "
            "first call to the last. The baseline is the same backlog with "
            f"`SMSQ_BATCH_MAX_RECIPIENTS=1`, measured over {p.baseline_windows} windows. *Duplicates*: "
            "customerRefs the sandbox accepted more than once; *max calls in a window*: all calls of the "
            "credential (sends and polls) in any sliding provider window, from their arrival times."
        )
        add("")
        add(
            "| run | database | jobs | accepted send calls | recipients / call | whole windows | "
            "recipients / min | % of physical | sustained / min (% of physical) | first → last call | "
            "duplicates | 429 | max calls in a "
            "window | jobs left queued | grants / provider calls | worker start | peak RSS (VmRSS / VmHWM) |"
        )
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for run in report.backlog:
            steady = run.steady_per_minute
            sustained = f"{steady:,.0f} ({_pct(steady / physical)})" if steady else "n/a"
            calls = len(run.sends)
            first_last = f"{run.sends[0][0]:.1f} → {run.sends[-1][0]:.1f} s" if run.sends else "no call"
            add(
                f"| {run.label} | {run.database} | {run.jobs:,} | {calls:,} | "
                f"{run.recipients / calls if calls else 0:,.1f} | {run.windows} | "
                f"{run.per_minute or 0:,.1f} | {_pct((run.per_minute or 0) / physical)} | {sustained} | "
                f"{first_last} | "
                f"{run.duplicates} | {run.throttled_429} | {run.max_calls_in_window} / {BACKLOG_LIMIT.calls} | "
                f"{run.jobs_left_queued:,} | {run.granted} / {run.provider_calls} | {run.startup_s:.1f} s | "
                f"{_mib(run.peak_rss_kib)} / {_mib(run.peak_hwm_kib)} |"
            )
        add("")
        add(
            "Call times are seconds after the workers and beat were started. Enqueue of the backlog (no worker "
            "running): " + ", ".join(f"{db} {s:.1f} s" for db, s in report.enqueue_s.items()) + "."
        )
        add("")
    if report.saturation:
        run0 = report.saturation[0]
        add("### 2. and 3. Saturated at one recipient per call, with and without a CPU-burning neighbour")
        add("")
        add(
            f"Limit **{SATURATION_LIMIT}** on both sides, `SMSQ_BATCH_MAX_RECIPIENTS=1`, {p.saturation_jobs:,} "
            f"jobs queued (more than the run can send), {FLEET}, PostgreSQL. Measured over "
            f"{p.saturation_windows} whole provider windows from the first accepted send call. The send share "
            f"is {run0.send_slots} calls per window. *Send share used* = mean accepted send calls per window "
            f"at the sandbox / send share; the limiter's window is {SATURATION_LIMIT.period_s:g} s + the "
            f"{run0.margin_s:g} s margin, so a perfect drain reaches "
            f"{SATURATION_LIMIT.period_s / (SATURATION_LIMIT.period_s + run0.margin_s) * 100:.1f} % by "
            "construction. *Grants without a call* = `RedisRateLimiter.granted_total()` minus every call the "
            "sandbox recorded for the credential (sends, polls, lookups; whole run, read after the workers "
            "stopped). *Broker messages* = task messages the workers received (their `received` log lines, "
            "all tasks: drains, sweeps, polls); the LPUSH delta of the Redis server is shown too but counts "
            "every client of the server (other tests share it). *Task runs* = `succeeded` log lines, all "
            "tasks. The neighbour is "
            f"{p.burners} processes spinning in Python (`while True: pass`) on this "
            f"{os.cpu_count()}-core host for the whole run. *Grant-to-wire* is the worker's histogram "
            '`smsq_limiter_grant_to_wire_seconds` (bucket bounds, so "≤"); grants older than half the '
            "margin are not used (*stale grants*, counted among the grants without a call)."
        )
        add("")
        add(
            "| run | send calls per window | all calls per window | send share used | max calls in any provider window (all / "
            "sends) | 429 | duplicates | grants | provider calls | grants without a call | broker messages "
            "received (per send call) | LPUSH, server-wide | task runs (per send call) | grant-to-wire "
            "p50 / p99 / max | stale grants | worker start |"
        )
        add("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for srun in report.saturation:
            g = srun.grant_to_wire
            g2w = (
                f"≤ {_ms(g.quantile_bound(0.5))} / ≤ {_ms(g.quantile_bound(0.99))} / ≤ {_ms(g.max_bound)} "
                f"({g.count} grants)"
                if g
                else "n/a"
            )
            add(
                f"| {srun.label} | {', '.join(map(str, srun.window_sends))} | "
                f"{', '.join(map(str, srun.window_calls))} | {_pct(srun.send_share_used)} | "
                f"{srun.max_calls_in_window} / {srun.budget} (sends {srun.max_sends_in_window} / "
                f"{srun.send_slots}) | {srun.throttled_429} | {srun.duplicates} | {srun.granted} | "
                f"{srun.provider_calls} | {srun.grants_without_call} "
                f"({_pct(srun.grants_without_call / srun.granted if srun.granted else None)}) | "
                f"{sum(srun.received.values())} ({srun.messages_per_call:.2f}) | {srun.lpush_delta} | "
                f"{sum(srun.runs.values())} ({srun.task_runs_per_call:.2f}) | {g2w} | "
                f"{g.stale if g else 'n/a'} | {srun.startup_s:.1f} s |"
            )
        add("")
        for srun in report.saturation:
            received = ", ".join(f"{k} {v}" for k, v in sorted(srun.received.items()))
            runs = ", ".join(f"{k} {v}" for k, v in sorted(srun.runs.items()))
            add(
                f"- {srun.label}: messages received: {received or 'none'}; task runs by result: {runs or 'none'}."
            )
        add("")
    if report.latency:
        lat = report.latency
        add("### 4. and 5. Idle memory and latency")
        add("")
        add(
            f"An idle system (limit {LATENCY_LIMIT}, PostgreSQL, {FLEET}, beat running): {lat.samples} "
            f"single-recipient jobs enqueued one at a time with `enqueue()`, {lat.pause_s:g} s apart. "
            "*Latency* = the sandbox's arrival time of the call carrying the job minus the time just before "
            "`enqueue()` was called (one host, one clock), so it includes the enqueue transaction, the "
            "wake-up through the broker, the claim and the HTTP request. With few samples p99 is the largest "
            "but one or the largest. *Idle RSS* is read 5 s after the workers were ready, before the first "
            "job; the backlog rows of part 1 show the same processes' RSS with the backlog queued "
            "(VmRSS sampled twice a second, VmHWM at the end; with `-P threads` the worker process itself "
            "runs the tasks, so it is the one measured)."
        )
        add("")
        add("| jobs | p50 | p99 | max | missing | idle RSS (VmRSS / VmHWM) |")
        add("|---:|---:|---:|---:|---:|---:|")
        add(
            f"| {len(lat.latencies_s)} | {_ms(lat.percentile(0.5))} | {_ms(lat.percentile(0.99))} | "
            f"{_ms(max(lat.latencies_s) if lat.latencies_s else None)} | {lat.missing} | "
            f"{_mib(lat.idle_rss_kib)} / {_mib(lat.idle_hwm_kib)} |"
        )
        add("")
    notes_and_run(
        add,
        report,
        "Other test suites were running on the same host during the run, so absolute times are noisy; "
        "the counts read at the provider (calls per window, duplicates, 429s) do not depend on it.",
    )
    add("")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------------------


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def timed(report: DispatchReport, part: str) -> Iterator[None]:
    started = time.monotonic()
    print(f"[{part}] ...", flush=True)
    try:
        yield
    finally:
        report.part_s[part] = time.monotonic() - started
        print(f"[{part}] {report.part_s[part]:.0f} s", flush=True)


def run_all(
    report: DispatchReport, workdir: Path, *, sqlite: bool, parts: set[str], on_part: Callable[[], None]
) -> None:
    p = report.profile
    databases = ["PostgreSQL"] + (["SQLite"] if sqlite else [])
    if "latency" in parts:
        with timed(report, "5. latency + idle memory"), contextlib.ExitStack() as stack:
            dbs = Databases("PostgreSQL", workdir)
            stack.callback(dbs.close)
            sandbox = SandboxProcess(LATENCY_LIMIT, workdir)
            stack.callback(sandbox.stop)
            report.latency = run_latency(dbs, p.latency_samples, p.latency_pause_s, sandbox, workdir)
        on_part()
    if "backlog" in parts:
        for kind in databases:
            with timed(report, f"1. backlog {kind}"), contextlib.ExitStack() as stack:
                dbs = Databases(kind, workdir)
                stack.callback(dbs.close)
                sandbox = SandboxProcess(BACKLOG_LIMIT, workdir)
                stack.callback(sandbox.stop)
                template_url = dbs.create("template")
                flush_redis()
                fill = dispatch_settings(template_url, sandbox.rest_url, BACKLOG_LIMIT)
                report.enqueue_s[kind] = enqueue_backlog(template_url, p.backlog_jobs, fill)
                print(f"      enqueued {p.backlog_jobs:,} in {report.enqueue_s[kind]:.1f} s", flush=True)
                run = run_backlog(
                    "smsq (drain, coalescing)",
                    dbs,
                    "template",
                    p.backlog_jobs,
                    sandbox,
                    workdir,
                    batch_max_recipients=CALL_MAX_RECIPIENTS,
                    cap_s=p.backlog_cap_s,
                )
                report.backlog.append(run)
                print(f"      smsq: {run.per_minute or 0:,.0f}/min, {len(run.sends)} calls", flush=True)
                base = run_backlog(
                    "baseline (1 recipient per call)",
                    dbs,
                    "template",
                    p.backlog_jobs,
                    sandbox,
                    workdir,
                    batch_max_recipients=1,
                    cap_s=p.baseline_windows * BACKLOG_LIMIT.period_s + 120,
                    fixed_windows=p.baseline_windows,
                )
                report.backlog.append(base)
                print(f"      baseline: {base.per_minute or 0:,.1f}/min", flush=True)
            on_part()
    if "saturation" in parts:
        for burn in (0, p.burners):
            label = f"batch 1, {burn} CPU burners" if burn else "batch 1, quiet host"
            with timed(report, f"{'3' if burn else '2'}. saturation{' + burners' if burn else ''}"):
                with contextlib.ExitStack() as stack:
                    dbs = Databases("PostgreSQL", workdir)
                    stack.callback(dbs.close)
                    sandbox = SandboxProcess(SATURATION_LIMIT, workdir)
                    stack.callback(sandbox.stop)
                    srun = run_saturation(
                        label, dbs, p.saturation_jobs, p.saturation_windows, sandbox, workdir, burn=burn
                    )
                    report.saturation.append(srun)
                    print(
                        f"      windows {srun.window_sends}, max {srun.max_calls_in_window}/{srun.budget}, "
                        f"429 {srun.throttled_429}, grants {srun.granted} vs calls {srun.provider_calls}",
                        flush=True,
                    )
            on_part()


def add_notes(report: DispatchReport) -> None:
    for run in report.backlog:
        if run.duplicates:
            report.notes.append(
                f"{run.label} ({run.database}): {run.duplicates} recipient(s) accepted twice."
            )
        if run.throttled_429:
            report.notes.append(
                f"{run.label} ({run.database}): the sandbox answered 429 {run.throttled_429} time(s)."
            )
        if run.batch_max_recipients > 1 and not run.completed:
            report.notes.append(
                f"{run.label} ({run.database}): {run.jobs_left_queued:,} jobs still queued after the "
                f"{report.profile.backlog_cap_s:g} s cap."
            )
    for srun in report.saturation:
        if srun.max_calls_in_window > srun.budget:
            report.notes.append(
                f"{srun.label}: the provider saw {srun.max_calls_in_window} calls in one window (budget {srun.budget})."
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dispatch", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000-job backlog, 3-window saturated runs")
    parser.add_argument("--sqlite", action="store_true", help="also run the backlog on SQLite")
    parser.add_argument(
        "--only",
        default="latency,backlog,saturation",
        help="comma-separated parts (latency, backlog, saturation)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the Markdown section goes")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep worker and sandbox logs in this directory"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    profile = QUICK if args.quick else FULL
    defaults = load_settings()
    started = time.monotonic()
    report = DispatchReport(
        command="python -m bench.dispatch"
        + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:])),
        mode=profile.name,
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        machine=machine_info(),
        profile=profile,
        margin_s=defaults.rate_limit_margin_s,
        poll_share=defaults.poll_share,
    )
    parts = set(args.only.split(","))
    try:
        with tempfile.TemporaryDirectory(prefix="smsq-bench-dispatch-") as tmp:
            workdir = Path(tmp)
            if args.keep is not None:
                args.keep.mkdir(parents=True, exist_ok=True)
                workdir = Path(tempfile.mkdtemp(prefix="run-", dir=args.keep))
            run_all(report, workdir, sqlite=args.sqlite, parts=parts, on_part=lambda: None)
    finally:
        flush_redis()
    report.total_s = time.monotonic() - started
    add_notes(report)
    write_section(args.output, SECTION, render(report))
    for line in headlines(report):
        print(line.replace("**", ""))
    print(f"written to {args.output} in {report.total_s:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
