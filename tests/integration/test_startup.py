"""Start-up refuses bad settings with one clear line, before any message is touched."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REDIS_URL, ROOT


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_refuse_a_provider_without_credentials(command, tmp_path, redis_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(
        SMSQ_BROKER_URL=REDIS_URL,
        SMSQ_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
        SMSQ_PROVIDER="sendmode",
        PYTHONPATH=str(ROOT),
    )
    args = [sys.executable, "-m", "celery", "-A", "worker.app", command, "--loglevel=WARNING"]
    if command == "beat":
        args += ["--schedule", str(tmp_path / "beat.db")]
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert (
        "smsq: connection 'default': provider sendmode needs an api_key (SMSQ_PROVIDER_API_KEY)"
        in result.stderr
    )


def test_a_bad_setting_names_its_variable(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(SMSQ_RATE_LIMIT_CALLS="lots", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "worker.cli", "jobs"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SMSQ_RATE_LIMIT_CALLS" in result.stderr


def _env(tmp_path, **variables):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(SMSQ_BROKER_URL=REDIS_URL, PYTHONPATH=str(ROOT), **variables)
    # Celery's own warning about running as root (tests here run as root) is not smsq's to give.
    env["PYTHONWARNINGS"] = "ignore:You're running the worker with superuser privileges"
    env.setdefault("SMSQ_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    env.setdefault("SMSQ_PROVIDER_USERNAME", "u")
    env.setdefault("SMSQ_PROVIDER_PASSWORD", "p")
    return env


COMMANDS = {
    "smsq jobs": [sys.executable, "-m", "worker.cli", "jobs"],
    "celery worker": [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--loglevel=WARNING"],
    "celery beat": [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "--loglevel=WARNING"],
    "celery flower": [sys.executable, "-m", "celery", "-A", "worker.app", "flower", "--port=0"],
}


def _bad_connections_file(tmp_path):
    path = tmp_path / "connections.yaml"
    path.write_text("backup:\n  provider: sendmode\n  api_key: [unclosed\n")
    return {"SMSQ_CONNECTIONS_FILE": str(path)}, f"SMSQ_CONNECTIONS_FILE: {path}:4:1: expected ','"


PROBLEMS = {
    "bad variable": lambda tmp: ({"SMSQ_RATE_LIMIT_CALLS": "lots"}, "SMSQ_RATE_LIMIT_CALLS: "),
    "bad connections file": _bad_connections_file,
    "unsupported database": lambda tmp: (
        {"SMSQ_DATABASE_URL": "mysql://root@localhost/smsq"},
        "SMSQ_DATABASE_URL: unsupported scheme 'mysql'",
    ),
    "unmigrated database": lambda tmp: ({}, "run `smsq migrate` first"),
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_says_what_is_wrong_in_one_line(command, problem, tmp_path):
    if command == "celery flower" and problem == "unmigrated database":
        pytest.skip("flower never opens the database")
    variables, expected = PROBLEMS[problem](tmp_path)
    args = [*COMMANDS[command]]
    if command == "celery beat":
        args += ["--schedule", str(tmp_path / "beat.db")]
    result = subprocess.run(
        args, env=_env(tmp_path, **variables), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stderr
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
