"""`python -m bench.chaos [--quick]`: the reliability suite (issue 15), into docs/reliability.md.

Every experiment runs real processes of its own and breaks one thing on purpose:

- a private `redis-server` on a free port (no persistence), so it can be restarted *empty* without
  touching the shared Redis;
- a private PostgreSQL cluster (`initdb` into a temporary directory, `pg_ctl` on a free port), so it can
  be restarted fast or immediate without touching anyone's server; or a SQLite file (for the disk-full
  experiment, run as root only, on a size-limited tmpfs mounted for it and filled up mid-run);
- the sandbox as its own process (`python -m sandbox --limit --period`), faults set through its control
  API (`POST /_sandbox/faults`: fail_next, slow, drop, malformed, hold with late=True);
- real `celery -A worker.app worker` and `beat` processes, watched by a supervisor that restarts any
  that exits, as `Restart=always` (docs/deploy-systemd.md) or compose's `restart:` would. Every such
  restart is counted and reported.

The witness is always the provider: its call records (`GET /_sandbox/calls`) and accepted jobs
(`GET /_sandbox/jobs`). Per experiment:

- duplicates: recipient customerRefs (smsq's recipient ids) accepted more than once by the sandbox;
- lost: jobs not final in the database at the end, plus recipients of finished jobs the sandbox never
  accepted;
- overshoot: the most provider calls (every arrival, any status) in any sliding window of the period,
  minus smsq's budget (0 when the window never held more than the budget).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import functools
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import redis
from sqlalchemy import create_engine, text

from bench.dispatch import max_in_window
from bench.workers import ROOT
from models.migrate import upgrade
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME
from worker.cli.processes import stop_process_groups
from worker.settings import Settings, load_settings, settings_environment

DEFAULT_OUTPUT = ROOT / "docs" / "reliability.md"
JOBS_PATH = "/rest/v1/jobs"
TERMINAL = ("finished", "expired", "rejected", "failed", "canceled")
#: Short timeouts so that a trial takes seconds: the settle time is 2 + 1 + 1 = 4 s.
FAST: dict[str, Any] = {
    "provider_timeout_s": 2.0,
    "provider_connect_timeout_s": 1.0,
    "provider_accept_allowance_s": 1.0,
    "submit_timeout_s": 2.0,
    "reconcile_interval_s": 1.0,
    "release_interval_s": 1.0,
    "poll_interval_s": 1.0,
    "poll_max_interval_s": 3.0,
    "queued_grace_s": 3.0,
    "retry_backoff_max_s": 2.0,
    "drain_max_s": 5.0,
    "visibility_timeout_s": 60,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


# --- private infrastructure -----------------------------------------------------------------------


class PrivateRedis:
    """A `redis-server` of our own on a free port, without persistence: a restart comes back empty."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.restarts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (the chaos suite starts its own)")
        log = (self.workdir / f"redis-{self.port}.log").open("ab")
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir)]
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        client: redis.Redis[Any] = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        _wait(up, 20, "the private redis-server")
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def restart_empty(self) -> None:
        """SIGKILL and start again on the same port: every key, queue and unacked message is gone."""
        self.kill()
        self.start()
        self.restarts += 1

    def broker_messages(self) -> dict[str, int]:
        """Messages the broker holds: each queue's length and the unacked (reserved) ones."""
        client: redis.Redis[Any] = redis.Redis.from_url(self.url)
        try:
            found: dict[str, int] = {}
            for key in client.scan_iter(count=1000):
                name = key.decode()
                kind = str(client.execute_command("TYPE", key).decode())
                if kind == "list":
                    found[name] = int(client.llen(key))
                elif name == "unacked":
                    found[name] = int(client.hlen(key))
            return found
        finally:
            client.close()

    def reserved(self) -> tuple[int, dict[str, int]]:
        """Messages fetched by workers and not yet acknowledged: kombu's `unacked` hash, counted by task."""
        client: redis.Redis[Any] = redis.Redis.from_url(self.url)
        try:
            by_task: collections.Counter[str] = collections.Counter()
            for raw in client.hvals("unacked"):
                try:
                    task = str(json.loads(raw)[0]["headers"]["task"])
                except (ValueError, LookupError, TypeError):
                    task = "?"
                by_task[task] += 1
            return sum(by_task.values()), dict(by_task.most_common())
        finally:
            client.close()


class PrivatePostgres:
    """A PostgreSQL cluster of our own: `initdb` into a temporary directory, `pg_ctl` on a free port."""

    def __init__(self, workdir: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not bins:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = bins[-1].parent
        self.dir = workdir / "pg"
        self.dir.mkdir()
        self.data = self.dir / "data"
        self.port = free_port()
        self.log = self.dir / "postgres.log"
        if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
            shutil.chown(self.dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self.options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._ctl("start")
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.restarts: list[str] = []

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def _ctl(self, action: str, mode: str | None = None) -> None:
        args = [action, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60"]
        if action != "stop":
            args += ["-o", self.options]
        if mode:
            args += ["-m", mode]
        self._run("pg_ctl", *args)

    def restart(self, mode: str) -> None:
        """`pg_ctl restart -m fast|immediate`: every connection is cut; immediate skips the checkpoint."""
        self._ctl("restart", mode)
        self.restarts.append(mode)

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"
        upgrade(url)
        return url

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._ctl("stop", "immediate")


class Sandbox:
    """`python -m sandbox` on a free port with its own limit; its control API steers faults and is the witness."""

    def __init__(self, workdir: Path, calls: int, period_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "sandbox", "--port", str(self.port)]
        args += ["--limit", str(calls), "--period", str(period_s)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
        log = (workdir / f"sandbox-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()

        def up() -> bool:
            try:
                self._get("/_sandbox/clock")
                return True
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("the sandbox exited") from None
                return False

        _wait(up, 30, "the sandbox")

    @property
    def rest_url(self) -> str:
        return f"{self.url}/rest/v1"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as answer:
            return json.loads(answer.read())

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as answer:
            return json.loads(answer.read())

    def fault(self, kind: str, **knob: Any) -> None:
        self._post("/_sandbox/faults", {"kind": kind, **knob})

    def release(self) -> int:
        return int(self._post("/_sandbox/release", {})["released"])

    def calls(self) -> list[dict[str, Any]]:
        return [c for c in self._get("/_sandbox/calls") if c["api"] != "control"]

    def jobs(self) -> list[dict[str, Any]]:
        return list(self._get("/_sandbox/jobs"))

    def in_flight(self) -> int:
        """Provider calls that arrived and have no answer yet (held, or being processed)."""
        return sum(1 for c in self.calls() if c["status_code"] is None)

    def stop(self) -> None:
        stop_process_groups([self.proc], 10)


# --- supervised celery processes -------------------------------------------------------------------


@dataclass
class Supervised:
    kind: str  # "worker" or "beat"
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None


class Fleet:
    """Workers and one beat, restarted when they exit (as systemd `Restart=always` would)."""

    def __init__(self, env: dict[str, str], workdir: Path, *, loglevel: str = "INFO") -> None:
        self.env = env
        self.workdir = workdir
        self.loglevel = loglevel
        self.members: list[Supervised] = []
        self.restarts: collections.Counter[str] = collections.Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _spawn(self, member: Supervised) -> None:
        with member.log.open("ab") as handle:
            member.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "worker.app", *member.args],
                cwd=ROOT,
                env=self.env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def worker(self, concurrency: int = 2, prefetch: int | None = None) -> Supervised:
        """A prefork worker; `prefetch`: `--prefetch-multiplier` (smsq's default is 1)."""
        index = len(self.members)
        args = ["worker", "-P", "prefork", "-c", str(concurrency), "-n", f"chaos{index}@%h"]
        if prefetch is not None:
            args += ["--prefetch-multiplier", str(prefetch)]
        args += [f"--loglevel={self.loglevel}", "--without-gossip", "--without-mingle", "--without-heartbeat"]
        member = Supervised("worker", args, self.workdir / f"worker-{index}.log")
        self._start(member, b"ready.")
        return member

    def beat(self) -> Supervised:
        index = len(self.members)
        schedule = self.workdir / f"beat-{index}.db"
        args = ["beat", f"--loglevel={self.loglevel}", "--schedule", str(schedule)]
        member = Supervised("beat", args, self.workdir / f"beat-{index}.log")
        self._start(member, b"beat: Starting")
        return member

    def _start(self, member: Supervised, marker: bytes) -> None:
        with self._lock:
            self._spawn(member)
            self.members.append(member)
        size = 0

        def ready() -> bool:
            assert member.proc is not None
            data = member.log.read_bytes()
            return marker in data[size:]

        _wait(ready, 120, f"{member.kind} ready")

    def kill(self, member: Supervised) -> None:
        """SIGKILL the member's process group (main process and pool children); the supervisor restarts it."""
        with self._lock:
            if member.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(member.proc.pid, signal.SIGKILL)
                member.proc.wait(timeout=30)
                self.restarts[f"{member.kind} killed by the suite"] += 1
                self._spawn(member)

    def _watch(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for member in self.members:
                    if member.proc is not None and member.proc.poll() is not None:
                        self.restarts[f"{member.kind} exited (code {member.proc.returncode})"] += 1
                        self._spawn(member)

    def alive(self) -> bool:
        return all(m.proc is not None and m.proc.poll() is None for m in self.members)

    def logs(self) -> str:
        return "\n".join(m.log.read_text(errors="replace") for m in self.members)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        stop_process_groups([m.proc for m in self.members if m.proc is not None], 15)


# --- one experiment ---------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    trials: int
    database: str
    duplicates: int
    lost: int
    max_window: int
    budget: int
    period_s: float
    jobs: int
    recipients: int
    calls: int
    statuses: dict[str, int]
    states: dict[str, int]
    restarts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    skipped: str | None = None  # why the experiment could not run here (then nothing else is measured)

    @property
    def overshoot(self) -> int:
        return max(0, self.max_window - self.budget)

    @property
    def ok(self) -> bool:
        if self.skipped is not None:
            return True
        return self.error is None and self.duplicates == 0 and self.lost == 0 and self.overshoot == 0

    @property
    def verdict(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "pass" if self.ok else ("ERROR: " + self.error if self.error else "FAIL")


def skipped(name: str, database: str, why: str) -> Result:
    return Result(name, 0, database, 0, 0, 0, 0, 0.0, 0, 0, 0, {}, {}, {}, skipped=why)


def number(i: int) -> str:
    """Distinct numbers none of whose last four digits are a sandbox magic number."""
    return f"+49176{i:05d}88"


def requests_for(start: int, count: int, groups: int, recipients: int = 1) -> list[dict[str, Any]]:
    """`count` jobs in `groups` option groups (billcode): jobs of one group may share a provider call."""
    out = []
    for i in range(start, start + count):
        dsts = [{"dst": number(i * recipients + k)} for k in range(recipients)]
        out.append(
            {
                "messages": [{"text": f"Chaos {i % 7}", "recipients": dsts}],
                "options": {"billcode": f"chaos-{i % groups}"},
            }
        )
    return out


class Run:
    """The processes and stores of one experiment; `measure()` reads the verdict."""

    def __init__(
        self,
        workdir: Path,
        *,
        database: str = "postgresql",
        budget: int = 30,
        period_s: float = 5.0,
        sandbox_limit: int | None = None,
        loglevel: str = "INFO",
        pg: PrivatePostgres | None = None,
        sqlite_dir: Path | None = None,
        **overrides: Any,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.budget, self.period_s = budget, period_s
        self.redis = PrivateRedis(workdir)
        self.sandbox = Sandbox(workdir, sandbox_limit or budget, period_s)
        self.pg = pg
        if database == "postgresql":
            assert pg is not None
            self.database_url = pg.create_database(f"chaos_{workdir.name}".replace("-", "_"))
        else:
            self.database_url = f"sqlite:///{(sqlite_dir or workdir) / 'smsq.db'}"
            upgrade(self.database_url)
        self.database = database
        values: dict[str, Any] = {
            "broker_url": self.redis.url,
            "database_url": self.database_url,
            "provider": "retarus",
            "provider_url": self.sandbox.rest_url,
            "provider_username": DEFAULT_USERNAME,
            "provider_password": DEFAULT_PASSWORD,
            "provider_api_key": DEFAULT_API_KEY,
            "rate_limit_calls": budget,
            "rate_limit_period_s": period_s,
            **FAST,
        }
        values.update(overrides)
        self.settings: Settings = load_settings(**values)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
        env.update(settings_environment(self.settings))
        env["PYTHONPATH"] = str(ROOT)
        self.env = env
        self.fleet = Fleet(env, workdir, loglevel=loglevel)
        self.enqueued = 0
        self.notes: list[str] = []

    def enqueue(self, count: int, groups: int, recipients: int = 1) -> list[str]:
        """Enqueue in this process (its own runtime): stored in the database, the connection woken."""
        from worker.celery_app import create_celery_app
        from worker.producer import enqueue_many
        from worker.runtime import Runtime

        rt = Runtime(self.settings, celery=create_celery_app(self.settings))
        try:
            handles = enqueue_many(requests_for(self.enqueued, count, groups, recipients), runtime=rt)
        finally:
            rt.close()
        self.enqueued += count
        return [h.id for h in handles]

    def publish_sends(self, job_ids: Sequence[str]) -> None:
        """One `smsq.send(job_id)` per job, as producers of earlier versions published (the task is kept:
        it wakes the job's connection; the drain does the rest)."""
        from worker.celery_app import create_celery_app
        from worker.runtime import Runtime

        rt = Runtime(self.settings, celery=create_celery_app(self.settings))
        try:
            for job_id in job_ids:
                rt.publish_named("smsq.send", (job_id,))
        finally:
            rt.close()

    def _engine_query(self, sql: str) -> list[Any]:
        engine = create_engine(self.database_url.replace("sqlite:///", "sqlite:///", 1))
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(sql)))
        finally:
            engine.dispose()

    def states(self) -> dict[str, int]:
        try:
            rows = self._engine_query("SELECT state, count(*) FROM smsq_job GROUP BY state")
        except Exception as exc:  # the database may be down or locked right now
            return {"?": 0, type(exc).__name__: 1}
        return {str(state): int(n) for state, n in rows}

    def all_final(self) -> bool:
        states = self.states()
        return (
            "?" not in states and sum(states.values()) == self.enqueued and all(s in TERMINAL for s in states)
        )

    def wait_final(self, timeout_s: float = 180) -> bool:
        try:
            _wait(self.all_final, timeout_s, "every job final", interval_s=0.5)
            return True
        except TimeoutError:
            self.notes.append(f"not all jobs final after {timeout_s:.0f} s: {self.states()}")
            return False

    def wait_calls(self, n: int, timeout_s: float = 60) -> None:
        _wait(lambda: len(self.sandbox.calls()) >= n, timeout_s, f"{n} provider calls")

    def held_calls(self) -> int:
        return sum(1 for c in self.sandbox.calls() if c["held"])

    def more_held_than(self, before: int) -> bool:
        return self.held_calls() > before

    def measure(self, name: str, trials: int, started: float) -> Result:
        time.sleep(0.5)
        calls = self.sandbox.calls()
        jobs = self.sandbox.jobs()
        accepted: collections.Counter[str] = collections.Counter(
            r["customerRef"] for j in jobs for r in j.get("recipients", []) if r.get("customerRef")
        )
        duplicates = sum(n - 1 for n in accepted.values() if n > 1)
        rows = self._engine_query(
            "SELECT r.id, j.state FROM smsq_recipient r JOIN smsq_job j ON j.id = r.job_id"
        )
        states = self.states()
        not_final = sum(n for s, n in states.items() if s not in TERMINAL)
        unsent = sum(1 for rid, state in rows if state == "finished" and accepted[str(rid)] == 0)
        failed_reasons = self._engine_query(
            "SELECT reason, count(*) FROM smsq_job WHERE state IN ('failed', 'rejected') GROUP BY reason"
        )
        notes = list(self.notes)
        for reason, n in failed_reasons:
            notes.append(f"{n} job(s) ended failed/rejected: {reason}")
        statuses = collections.Counter(str(c["status_code"]) for c in calls)
        times = [float(c["real_ts"]) for c in calls]
        return Result(
            name=name,
            trials=trials,
            database=self.database,
            duplicates=duplicates,
            lost=not_final + unsent,
            max_window=max_in_window(times, self.period_s),
            budget=self.budget,
            period_s=self.period_s,
            jobs=self.enqueued,
            recipients=len(rows),
            calls=len(calls),
            statuses=dict(sorted(statuses.items())),
            states=states,
            restarts=dict(self.fleet.restarts),
            notes=notes,
            seconds=time.monotonic() - started,
        )

    def close(self) -> None:
        self.fleet.stop()
        self.sandbox.stop()
        self.redis.kill()


@contextlib.contextmanager
def run(workdir: Path, **kwargs: Any) -> Iterator[Run]:
    r = Run(workdir, **kwargs)
    try:
        yield r
    finally:
        r.close()


# --- the experiments ---------------------------------------------------------------------------------


def kill_mid_call(
    base: Path, pg: PrivatePostgres | None, trials: int, database: str = "postgresql"
) -> Result:
    """SIGKILL of a worker while its provider call is held at the provider (accepted late), `trials` times.

    Odd trials release the held call at once (the reconcile lookup finds it); even trials release it only
    after the settle time, when smsq may already have resent it with duplicateDetection (the late
    original is then refused).
    """
    started = time.monotonic()
    with run(base / "kill", database=database, pg=pg) as r:
        worker = r.fleet.worker()
        r.fleet.beat()
        waits: list[float] = []
        for trial in range(trials):
            before = r.held_calls()
            r.sandbox.fault("hold", path_prefix=JOBS_PATH, late=True, n=1)
            r.enqueue(5, groups=2)
            asked = time.monotonic()
            # A killed drain keeps its lease (drain_max_s + 60 s); with drain_concurrency (4) leases held by
            # dead drains, the next drain waits for one to expire: allow for it, and record the wait.
            _wait(functools.partial(r.more_held_than, before), 180, "a held call")
            waits.append(time.monotonic() - asked)
            r.fleet.kill(worker)
            if trial % 2 == 0:
                r.sandbox.release()
            else:
                time.sleep(5.0)  # past the settle time (4 s): a resend may be on its way
                r.sandbox.release()
        r.wait_final()
        r.notes.append(
            "seconds from enqueue to the next call reaching the provider, per trial: "
            + ", ".join(f"{w:.0f}" for w in waits)
        )
        return r.measure("kill -9 of a worker mid-call", trials, started)


def redis_restart_reserved(
    base: Path,
    pg: PrivatePostgres | None,
    trials: int,
    *,
    jobs: int = 150,
    groups: int = 5,
    prefetch: int = 100,
    want_reserved: int = 100,
    database: str = "postgresql",
) -> Result:
    """Redis restarted empty while the workers hold >= `want_reserved` fetched, unacknowledged messages.

    smsq's broker carries one drain wake-up per connection, and its workers prefetch one message per
    process, so on its own the broker never holds many. Here the two workers run with
    `--prefetch-multiplier {prefetch}` (an operator's flag) and every trial:

    1. holds every call to /jobs at the sandbox, enqueues `jobs` jobs (batches of at most 10 recipients,
       so a full batch invites helper drains) and waits until every pool process is inside a held call;
    2. publishes one `smsq.send(job_id)` per job, as producers of earlier versions did (smsq keeps that
       task: it wakes the job's connection). No pool process is free, so they stay reserved: fetched by
       the workers and not acknowledged, in kombu's `unacked` hash;
    3. when the hash holds >= `want_reserved` (measured, by task name), restarts Redis empty, releases the
       held calls and waits until every job is final.
    """
    started = time.monotonic()
    workers, concurrency = 2, 2
    name = f"Redis restarted empty with >= {want_reserved} reserved messages"
    with run(
        base / "redis-reserved",
        database=database,
        pg=pg,
        budget=30,
        period_s=5.0,
        provider_timeout_s=30.0,  # a held call waits for the restart (seconds), not for a timeout
        batch_max_recipients=10,
    ) as r:
        for _ in range(workers):
            r.fleet.worker(concurrency=concurrency, prefetch=prefetch)
        r.fleet.beat()
        r.notes.append(
            f"setup: {workers} workers (prefork, -c {concurrency}) with `--prefetch-multiplier {prefetch}` "
            "(smsq's default is 1); every call to /jobs held at the sandbox until the restart, so every pool "
            "process is inside a provider call; then one `smsq.send(job_id)` per job published, as earlier "
            "producers did (the task is kept: it wakes the job's connection); batches of at most 10 recipients"
        )
        reserved: list[int] = []
        short: list[int] = []
        for trial in range(trials):
            r.sandbox.fault("hold", path_prefix=JOBS_PATH)
            ids = r.enqueue(jobs, groups=groups)
            _wait(
                lambda: r.sandbox.in_flight() >= workers * concurrency,
                60,
                "every pool process in a held provider call",
            )
            busy = r.sandbox.in_flight()
            r.publish_sends(ids)
            with contextlib.suppress(TimeoutError):
                _wait(lambda: r.redis.reserved()[0] >= want_reserved, 20, f"{want_reserved} reserved")
            count, by_task = r.redis.reserved()
            reserved.append(count)
            if count < want_reserved:
                short.append(trial + 1)
            r.notes.append(
                f"trial {trial + 1}: {busy} provider calls held (every pool process busy); reserved "
                f"(`unacked` hash) right before the restart: {count} {by_task}; all broker keys: "
                f"{r.redis.broker_messages()}"
            )
            r.redis.restart_empty()
            r.sandbox.release()
            r.wait_final()
        logs = r.fleet.logs()
        unrecoverable = logs.count("Unrecoverable error")
        hostname = logs.count("'NoneType' object has no attribute 'hostname'")
        r.notes.append(
            f"reserved messages at each restart: {reserved} (required >= {want_reserved}); worker log lines "
            f"with 'Unrecoverable error': {unrecoverable}, with the kombu AttributeError ('NoneType' object "
            f"has no attribute 'hostname'): {hostname}"
        )
        result = r.measure(name, trials, started)
        if short:
            result.error = f"fewer than {want_reserved} messages reserved at the restart of trial(s) {short}"
        return result


def redis_restart_after_burst(base: Path, pg: PrivatePostgres | None, trials: int) -> Result:
    """A saturated burst fills the provider's window, then Redis is restarted empty at once."""
    started = time.monotonic()
    budget, period = 20, 5.0
    with run(base / "redis-burst", pg=pg, budget=budget, period_s=period) as r:
        r.fleet.worker(concurrency=2)
        r.fleet.beat()
        for trial in range(trials):
            calls = len(r.sandbox.calls())
            r.enqueue(30, groups=30)  # every job alone: one call each, more than one window's budget
            r.wait_calls(calls + budget - 2, timeout_s=60)
            r.redis.restart_empty()
            if trial < trials - 1:
                r.wait_final()
        r.wait_final(300)
        result = r.measure("Redis restarted empty right after a saturated burst", trials, started)
        result.notes.append(f"provider answered 429 {result.statuses.get('429', 0)} times")
        return result


def postgres_restart(base: Path, pg: PrivatePostgres, modes: Sequence[str]) -> Result:
    """The private PostgreSQL restarted mid-run, once per mode (fast, immediate)."""
    started = time.monotonic()
    with run(base / "pg-restart", pg=pg, budget=30, period_s=5.0) as r:
        r.fleet.worker(concurrency=2)
        r.fleet.beat()
        for mode in modes:
            calls = len(r.sandbox.calls())
            r.enqueue(120, groups=40)
            r.wait_calls(calls + 8)
            pg.restart(mode)
            time.sleep(2.0)
        r.wait_final(240)
        return r.measure(f"PostgreSQL restarted mid-run ({', '.join(modes)})", len(modes), started)


def provider_faults(base: Path, pg: PrivatePostgres | None, kind: str, jobs: int) -> Result:
    """One kind of provider misbehaviour during a run of `jobs` jobs (groups of ~3)."""
    started = time.monotonic()
    sandbox_limit = 12 if kind == "429" else None
    with run(base / f"provider-{kind}", pg=pg, budget=30, period_s=5.0, sandbox_limit=sandbox_limit) as r:
        r.fleet.worker(concurrency=2)
        r.fleet.beat()
        stop = threading.Event()
        injector: threading.Thread | None = None
        if kind == "5xx":
            injector = threading.Thread(target=_thirty_percent_5xx, args=(r.sandbox, stop), daemon=True)
            injector.start()
        elif kind == "timeouts":
            r.sandbox.fault("slow", path_prefix=JOBS_PATH, seconds=3.0, n=10)  # answer after the 2 s timeout
        elif kind == "malformed":
            r.sandbox.fault("malformed", path_prefix="/rest/v1", n=15)
        elif kind == "resets":
            r.sandbox.fault("drop", path_prefix="/rest/v1", n=15)
        r.enqueue(jobs, groups=max(1, jobs // 3))
        r.wait_final(240)
        stop.set()
        if injector is not None:
            injector.join(timeout=5)
        name = {
            "5xx": "provider answers 30 % 5xx",
            "429": "provider 429 with Retry-After (its limit 12 < smsq's budget 30 per 5 s)",
            "timeouts": "provider answers after smsq's read timeout (accepted, caller gone)",
            "malformed": "provider answers 2xx with malformed bodies",
            "resets": "provider resets the connection after processing",
        }[kind]
        result = r.measure(name, 1, started)
        if kind == "5xx":
            share = sum(n for s, n in result.statuses.items() if s.startswith("5")) / max(1, result.calls)
            result.notes.append(f"measured share of 5xx answers: {share:.0%} of {result.calls} calls")
        if kind == "429":
            result.notes.append(
                f"429 answers: {result.statuses.get('429', 0)}; overshoot is against smsq's budget (30), "
                "the provider's own limit (12) refuses the excess, as a misconfigured budget would see it"
            )
        return result


def _thirty_percent_5xx(sandbox: Sandbox, stop: threading.Event) -> None:
    """Keep about 30 % of the provider's calls answered 503: arm fail_next one call at a time."""
    rng = random.Random(15)
    seen = 0
    while not stop.wait(0.1):
        with contextlib.suppress(OSError):
            calls = sandbox.calls()
            new = len(calls) - seen
            seen = len(calls)
            armed = sum(1 for _ in range(new) if rng.random() < 0.3)
            if armed:
                sandbox.fault("fail_next", n=armed, status=503)


def sqlite_locked(base: Path, lock_s: float) -> Result:
    """SQLite: another process holds an exclusive lock on the database file for `lock_s` mid-run."""
    started = time.monotonic()
    with run(base / "sqlite-locked", database="sqlite", budget=30, period_s=5.0) as r:
        r.fleet.worker(concurrency=2)
        r.fleet.beat()
        r.enqueue(60, groups=20)
        r.wait_calls(3)
        path = r.database_url.removeprefix("sqlite:///")
        conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(lock_s)
        conn.execute("ROLLBACK")
        conn.close()
        r.notes.append(f"database file locked exclusively for {lock_s:.0f} s mid-run")
        r.wait_final(240)
        return r.measure(f"SQLite locked by another process for {lock_s:.0f} s", 1, started)


def fill(path: Path) -> int:
    """Write `path` until the filesystem refuses (ENOSPC): 1 MiB, then 4 KiB writes; returns bytes written."""
    written = 0
    with path.open("wb", buffering=0) as handle:
        for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
            while True:
                try:
                    written += handle.write(chunk) or 0
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    return written


def disk_full(base: Path, full_s: float, size_mb: int = 64) -> Result:
    """SQLite on a size-limited tmpfs that a filler file fills mid-run for `full_s`, then frees.

    Needs root (mount). Before filling, the WAL is checkpointed and truncated, so every commit during the
    full period needs new space and fails with "database or disk is full" (SQLITE_FULL) instead of
    reusing WAL pages already allocated. A provider call held while the disk fills is answered once it is
    full; an enqueue is tried while it is full.
    """
    name = f"disk full for {full_s:.0f} s (SQLite on a {size_mb} MiB tmpfs)"
    if os.geteuid() != 0:
        return skipped(name, "sqlite", "not root: mounting a size-limited tmpfs needs privileges")
    started = time.monotonic()
    workdir = base / "disk-full"
    mnt = workdir / "mnt"
    mnt.mkdir(parents=True)
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "smsq-chaos-tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        return skipped(name, "sqlite", f"mount -t tmpfs failed: {mount.stderr.strip()[:200]}")
    try:
        with run(workdir, database="sqlite", sqlite_dir=mnt, budget=30, period_s=5.0) as r:
            r.fleet.worker(concurrency=2)
            r.fleet.beat()
            r.enqueue(60, groups=20)
            r.wait_calls(3)
            # One call is held at the provider while the disk fills, then answered: its answer must be
            # recorded with no space left (the call itself was recorded before it was made).
            held_before = r.held_calls()
            r.sandbox.fault("hold", path_prefix=JOBS_PATH, late=True, n=1)
            _wait(functools.partial(r.more_held_than, held_before), 60, "a held call")
            held = [c for c in r.sandbox.calls() if c["held"]][-1]
            path = r.database_url.removeprefix("sqlite:///")
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            conn.close()
            filler = mnt / "filler"
            filled = fill(filler)
            r.sandbox.release()
            r.notes.append(
                f"a {held['method']} {held['path']} call was held while the disk filled, then answered"
            )
            full_at, calls_before = time.monotonic(), len(r.sandbox.calls())
            stats = os.statvfs(mnt)
            r.notes.append(
                f"filler file {filled / (1 << 20):.1f} MiB; free after filling: {stats.f_bavail * stats.f_frsize} "
                f"bytes; WAL truncated before filling: {'no (busy)' if busy else 'yes'}; state then: {r.states()}"
            )
            try:  # an application enqueuing now: refused with an error (nothing stored), or stored
                r.enqueue(10, groups=5)
                r.notes.append("10 jobs enqueued during the full period were stored")
            except Exception as exc:
                r.notes.append(f"enqueue of 10 jobs during the full period raised {type(exc).__name__}")
            time.sleep(max(0.0, full_s - (time.monotonic() - full_at)))
            during = collections.Counter(
                f"{c['method']} {'send' if c['method'] == 'POST' else 'status'}"
                for c in r.sandbox.calls()[calls_before:]
            )
            states = r.states()
            filler.unlink()
            logs = r.fleet.logs()
            r.notes.append(
                f"full for {time.monotonic() - full_at:.0f} s; provider calls meanwhile: {dict(during)}; state "
                f"at the end of it: {states}; worker/beat log lines with 'database or disk is full': "
                f"{logs.count('database or disk is full')}"
            )
            r.wait_final(240)
            result = r.measure(name, 1, started)
            logs = r.fleet.logs()
            result.notes.append(
                f"drains paused on the error: {logs.count('paused (OperationalError)')} times; tasks given up "
                f"(MaxRetriesExceededError): {logs.count('MaxRetriesExceededError(')}"
            )
            return result
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, check=False)


# --- report ------------------------------------------------------------------------------------------


def render(results: Sequence[Result], command: str, seconds: float) -> str:
    lines = [
        "# Reliability: faults on purpose, never lost, never twice",
        "",
        f"Written by `{command}` (bench/chaos.py) in {seconds / 60:.1f} min on {os.cpu_count()} CPUs. Each row "
        "is one experiment with its own private `redis-server`, its own sandbox process, real `celery` "
        "workers and beat (restarted when they exit, as `Restart=always` in docs/deploy-systemd.md would) "
        "and, for PostgreSQL, a database in a private cluster (`initdb` + `pg_ctl` on a free port).",
        "",
        "- **duplicates**: recipient customerRefs the sandbox accepted more than once (`GET /_sandbox/jobs`).",
        "- **lost**: jobs not final in the database at the end, plus recipients of finished jobs the sandbox "
        "never accepted.",
        "- **overshoot**: the most provider calls (every arrival, any status) in any sliding window of the "
        "period, minus smsq's budget (`GET /_sandbox/calls`); `max/budget` shows both.",
        "",
        "| experiment | db | trials | jobs | provider calls | duplicates | lost | max calls in a window / budget "
        "| overshoot | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        verdict = r.verdict
        if r.skipped is not None:
            lines.append(f"| {r.name} | {r.database} | 0 | - | - | - | - | - | - | skipped |")
            continue
        lines.append(
            f"| {r.name} | {r.database} | {r.trials} | {r.jobs} | {r.calls} | {r.duplicates} | {r.lost} "
            f"| {r.max_window} / {r.budget} per {r.period_s:g} s | {r.overshoot} | {verdict} |"
        )
    lines += ["", "## Details", ""]
    lines += [
        '"Reserved messages" are messages the workers fetched and have not acknowledged (kombu\'s `unacked` '
        "hash on Redis), counted right before each restart and listed below with the task names.",
        "",
    ]
    for r in results:
        if r.skipped is not None:
            lines += [f"**{r.name}**: skipped, {r.skipped}.", ""]
            continue
        lines.append(
            f"**{r.name}** ({r.seconds:.0f} s): job states {r.states}; provider answers {r.statuses}; "
            f"process restarts {r.restarts or 'none'}."
        )
        for note in r.notes:
            lines.append(f"- {note}")
        lines.append("")
    return "\n".join(lines) + "\n"


EXPERIMENTS = (
    "kill",
    "redis",
    "burst",
    "postgres",
    "5xx",
    "429",
    "timeouts",
    "malformed",
    "resets",
    "sqlite",
    "disk",
)


def run_all(quick: bool, only: Sequence[str], log: Callable[[str], None]) -> list[Result]:
    selected = [e for e in EXPERIMENTS if not only or e in only]
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="smsq-chaos-") as tmp:
        base = Path(tmp)
        if os.geteuid() == 0:
            os.chmod(base, 0o755)
        pg = PrivatePostgres(base)
        try:
            plans: dict[str, Callable[[], Result]] = {
                "kill": lambda: kill_mid_call(base, pg, 3 if quick else 20),
                "redis": lambda: redis_restart_reserved(base, pg, 1 if quick else 3),
                "burst": lambda: redis_restart_after_burst(base, pg, 1 if quick else 2),
                "postgres": lambda: postgres_restart(base, pg, ["fast", "immediate"]),
                "5xx": lambda: provider_faults(base, pg, "5xx", 30 if quick else 60),
                "429": lambda: provider_faults(base, pg, "429", 30 if quick else 60),
                "timeouts": lambda: provider_faults(base, pg, "timeouts", 30 if quick else 60),
                "malformed": lambda: provider_faults(base, pg, "malformed", 30 if quick else 60),
                "resets": lambda: provider_faults(base, pg, "resets", 30 if quick else 60),
                "sqlite": lambda: sqlite_locked(base, 5.0 if quick else 10.0),
                "disk": lambda: disk_full(base, 5.0 if quick else 10.0),
            }
            for name in selected:
                log(f"chaos: {name} ...")
                try:
                    result = plans[name]()
                except Exception as exc:  # one broken experiment must not hide the others
                    result = Result(name, 0, "-", 0, 0, 0, 0, 0.0, 0, 0, 0, {}, {}, {}, error=repr(exc)[:300])
                results.append(result)
                log(
                    f"chaos: {name}: duplicates={result.duplicates} lost={result.lost} "
                    f"window={result.max_window}/{result.budget} {'pass' if result.ok else 'FAIL'} "
                    f"({result.seconds:.0f} s) {result.error or ''}"
                )
        finally:
            pg.stop()
    return results


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials and jobs (a few minutes)")
    parser.add_argument("--only", nargs="*", default=[], choices=EXPERIMENTS, help="run only these")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="the report (docs/reliability.md)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the report instead of writing it")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # stop every process of the run on SIGTERM too
    command = "python -m bench.chaos" + (" --quick" if args.quick else "")
    if args.only:
        command += " --only " + " ".join(args.only)
    started = time.monotonic()
    results = run_all(args.quick, args.only, lambda line: print(line, flush=True))
    report = render(results, command, time.monotonic() - started)
    if args.no_write:
        print(report)
    else:
        args.output.write_text(report)
        print(f"wrote {args.output}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
