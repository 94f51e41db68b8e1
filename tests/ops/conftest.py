"""Fixtures of the ops tests: Redis db base+13 (tests/cli), and processes started from argv that are always stopped."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.cli.conftest import redis_url  # noqa: F401 - this area's Redis db, for every fixture using it
from tests.conftest import ROOT
from worker.cli.processes import stop_process_groups


@dataclass
class Spawned:
    """Processes started by a test, each in its own process group, stopped at teardown."""

    tmp: Path
    started: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    def __call__(
        self, argv: list[str], env: dict[str, str], *, cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        log = self.tmp / f"proc-{len(self.started)}.log"
        with log.open("wb") as handle:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd or ROOT, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.started.append((proc, log))
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        for started, path in self.started:
            if started is proc:
                return path.read_text(errors="replace")
        return ""

    def wait_for_log(self, proc: subprocess.Popen[bytes], marker: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if marker in self.log(proc):
                return
            if proc.poll() is not None:
                pytest.fail(
                    f"process exited ({proc.returncode}) before {marker!r}:\n{self.log(proc)[-3000:]}"
                )
            time.sleep(0.1)
        pytest.fail(f"no {marker!r} within {timeout_s} s:\n{self.log(proc)[-3000:]}")

    def wait_until(
        self, proc: subprocess.Popen[bytes], check: Callable[[], object], timeout_s: float = 30
    ) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            if proc.poll() is not None:
                pytest.fail(f"process exited ({proc.returncode}):\n{self.log(proc)[-3000:]}")
            time.sleep(0.1)
        pytest.fail(f"condition not met within {timeout_s} s:\n{self.log(proc)[-3000:]}")

    def stop_all(self) -> None:
        stop_process_groups(proc for proc, _ in self.started)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawned]:
    spawned = Spawned(tmp_path)
    try:
        yield spawned
    finally:
        spawned.stop_all()
