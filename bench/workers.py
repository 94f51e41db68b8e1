"""Real `celery -A worker.app worker` processes for a benchmark run, always stopped afterwards.

Each worker runs in its own process group (so stopping it also stops its pool children) and logs to
a file in the run's temporary directory. Peak memory is read from `/proc/<pid>/status` (`VmHWM`, the
resident-set high-water mark) of the pool children, which do the sending.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from worker.cli.processes import stop_process_groups

ROOT = Path(__file__).resolve().parent.parent

#: How long a worker may take to print "ready.", and to stop after SIGTERM before SIGKILL.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


@dataclass
class WorkerFleet:
    """Worker processes started with one SMSQ_ environment; use as a context manager."""

    env: dict[str, str]
    log_dir: Path
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)
    #: The worker processes among `procs` (not beat).
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __enter__(self) -> WorkerFleet:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self, count: int, *, concurrency: int = 1, pool: str = "prefork") -> float:
        """Start `count` workers at once and wait until every one is ready; returns the seconds taken.

        `pool` is Celery's `-P` (prefork or threads), `concurrency` its `-c`.
        """
        started = time.monotonic()
        for index in range(count):
            log = self.log_dir / f"worker-{len(self.procs)}.log"
            args = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-P", pool]
            args += ["-c", str(concurrency), "-n", f"bench{len(self.procs)}-{index}@%h", "--loglevel=INFO"]
            args += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
            with log.open("wb") as handle:
                proc = subprocess.Popen(
                    args,
                    cwd=ROOT,
                    env=self.env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.procs.append((proc, log))
            self.workers.append(proc)
        for proc, log in self.procs[-count:]:
            _wait_for(proc, log, b"ready.")
        return time.monotonic() - started

    def start_beat(self) -> float:
        """Start one `celery beat` (its schedule file in the log directory); returns the seconds taken."""
        started = time.monotonic()
        log = self.log_dir / f"beat-{len(self.procs)}.log"
        schedule = self.log_dir / f"beat-{len(self.procs)}.db"
        args = [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "--loglevel=INFO"]
        args += ["--schedule", str(schedule)]
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                args, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.procs.append((proc, log))
        _wait_for(proc, log, b"beat: Starting")
        return time.monotonic() - started

    def pool_pids(self) -> list[int]:
        """The pids of every running worker's pool children."""
        pids: list[int] = []
        for proc in self.workers:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            with contextlib.suppress(OSError):
                pids += [int(pid) for pid in children.read_text().split()]
        return pids

    def working_pids(self) -> list[int]:
        """The processes that run tasks: the pool children (prefork), else the workers themselves (threads)."""
        return self.pool_pids() or [proc.pid for proc in self.workers if proc.poll() is None]

    def memory_kib(self) -> list[tuple[int, int | None, int | None]]:
        """(pid, VmRSS, VmHWM) in KiB of every process that runs tasks."""
        return [(pid, _status_kib(pid, "VmRSS:"), _status_kib(pid, "VmHWM:")) for pid in self.working_pids()]

    def peak_rss_kib(self) -> int | None:
        """The largest VmHWM among the pool children, in KiB (None where /proc cannot tell)."""
        peaks = [peak for pid in self.pool_pids() if (peak := _status_kib(pid, "VmHWM:")) is not None]
        return max(peaks) if peaks else None

    def logs_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}" for _, log in self.procs
        )

    def stop(self) -> None:
        """SIGTERM every worker's process group, SIGKILL what is left after STOP_TIMEOUT_S."""
        stop_process_groups((proc for proc, _ in self.procs), STOP_TIMEOUT_S)


def _status_kib(pid: int, field: str) -> int | None:
    """A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return None


def _wait_for(proc: subprocess.Popen[bytes], log: Path, marker: bytes) -> None:
    """Wait until `marker` is in the process's log; raise with the log's tail if it exits or times out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while marker not in log.read_bytes():
        if proc.poll() is not None:
            raise RuntimeError(f"celery exited early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"celery not ready after {READY_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)
