"""`smsq demo` as a user runs it: a subprocess that must finish, clean up, and fail clearly without Redis."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.cli.support import REDIS_URL, SMSQ, base_env, free_port
from tests.conftest import ROOT


def processes_marked(run_id: str) -> list[int]:
    """Pids of live processes whose environment carries this demo run's mark."""
    mark = f"SMSQ_DEMO_RUN_ID={run_id}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
        except OSError:
            continue
    return found


def demo_env(broker_url: str) -> tuple[dict[str, str], str]:
    run_id = uuid.uuid4().hex
    env = base_env()
    env.update({"SMSQ_BROKER_URL": broker_url, "SMSQ_DEMO_RUN_ID": run_id, "COLUMNS": "160"})
    return env, run_id


def test_the_demo_finishes_with_a_private_redis_and_leaves_no_process_behind():
    # Given no Redis at the configured URL, but redis-server installed
    env, run_id = demo_env(f"redis://127.0.0.1:{free_port()}/0")

    result = subprocess.run([SMSQ, "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "started a private redis-server" in out
    assert "enqueued 10 jobs for 22 recipients on 3 connections" in out
    assert "all 10 jobs final" in out
    for outcome in ("delivered", "undeliverable", "failed", "canceled", "suppressed", "accepted"):
        assert outcome in out, outcome
    for status in ("INVALID_DST", "FAILED_FIN", "BLOCKED", "CON_ERR", "NOT_ACC_FIN", "NOT_ACC_REC"):
        assert status in out, status
    assert processes_marked(run_id) == []


def test_ctrl_c_stops_the_demo_and_every_process_it_started(redis_client):
    env, run_id = demo_env(REDIS_URL)
    proc = subprocess.Popen(
        [SMSQ, "demo"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("enqueued"):
                break
        assert processes_marked(run_id), "".join(seen)

        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)

        assert proc.returncode == 130, "".join(seen) + rest
        assert "interrupted: stopping the demo's processes" in rest
        assert "logs kept" not in rest
        assert processes_marked(run_id) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_without_redis_or_redis_server_the_demo_fails_fast_saying_how_to_get_redis():
    env, run_id = demo_env(f"redis://127.0.0.1:{free_port()}/0")
    env["PATH"] = str(Path(sys.executable).parent)  # no redis-server on it
    started = time.monotonic()

    result = subprocess.run([SMSQ, "demo"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert time.monotonic() - started < 15
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: no Redis answers at redis://127.0.0.1:")
    assert "redis-server is not installed" in line and "apt-get install redis-server" in line
    assert processes_marked(run_id) == []
