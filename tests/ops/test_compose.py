"""docker-compose.yml, checked without Docker: its shape, and every service's command run by this test.

Each service's `command` is read from the compose file and run here as it is, with only the host
specifics replaced (a free port instead of the fixed one, a temporary beat schedule file, 127.0.0.1
instead of 0.0.0.0, `smsq` and `celery` from this virtualenv). So a command that stops working, or a
service whose command no test runs, fails this module.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli.support import SMSQ, base_env, cli_settings, env_for, free_port
from tests.conftest import ROOT
from worker.settings import Settings

COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

#: The services and the command each runs; the tests below run every one of them.
KNOWN_COMMANDS: dict[str, list[str] | None] = {
    "redis": ["redis-server", "--appendonly", "yes"],
    "postgres": None,  # the image's own entrypoint; only its health check is ours
    "migrate": ["smsq", "migrate"],
    "sandbox": ["smsq", "sandbox", "--host", "0.0.0.0", "--port", "8080"],
    "worker": ["celery", "-A", "worker.app", "worker", "--loglevel=INFO", "--concurrency=4"],
    "beat": ["celery", "-A", "worker.app", "beat", "--loglevel=INFO", "--schedule=/tmp/celerybeat-schedule"],
    "flower": ["celery", "-A", "worker.app", "flower", "--port=5555", "--read_only=true"],
    "metrics": ["smsq", "metrics", "--port", "9464"],
}


def command(service: str) -> list[str]:
    value = SERVICES[service]["command"]
    assert isinstance(value, list), f"{service}: command must be an exec-form list"
    return [str(part) for part in value]


def localise(argv: list[str], tmp: Path) -> tuple[list[str], int]:
    """The compose command as this host runs it, and the port it now listens on."""
    port = free_port()
    out: list[str] = []
    for index, part in enumerate(argv):
        previous = argv[index - 1] if index else ""
        if previous == "--port":
            part = str(port)
        elif part.startswith("--port="):
            part = f"--port={port}"
        elif part.startswith("--schedule="):
            part = f"--schedule={tmp / 'celerybeat-schedule'}"
        elif part == "0.0.0.0":
            part = "127.0.0.1"
        out.append(part)
    if out[0] == "smsq":
        out[0] = SMSQ
    elif out[0] == "celery":
        out[:1] = [sys.executable, "-m", "celery"]
    return out, port


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} interpolation (enough for our file)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return re.sub(r"\$\{([A-Z_]+)(?:(:-|:\?)([^}]*))?\}", one, value)


@pytest.fixture
def env(sandbox, sqlite_url, redis_client) -> dict[str, str]:
    return env_for(cli_settings(sandbox, sqlite_url, release_interval_s=1.0))


# --- the file's shape -----------------------------------------------------------------------------


def test_every_service_runs_a_command_this_module_runs():
    assert {name: service.get("command") for name, service in SERVICES.items()} == KNOWN_COMMANDS


def test_redis_and_postgres_have_health_checks_and_the_others_wait_for_them():
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert SERVICES["postgres"]["healthcheck"]["test"][1].startswith("pg_isready")
    for name in ("worker", "beat", "metrics"):
        depends = SERVICES[name]["depends_on"]
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["restart"] == "no"


def test_exactly_one_beat_and_workers_consume_every_queue():
    beats = [name for name in SERVICES if "beat" in (SERVICES[name].get("command") or [])]
    assert beats == ["beat"]
    assert SERVICES["beat"]["container_name"]  # `--scale beat=2` is refused
    assert SERVICES["beat"]["deploy"]["replicas"] == 1
    worker = command("worker")
    assert not {"-B", "--beat", "-Q", "--queues"} & set(worker)
    assert "container_name" not in SERVICES["worker"]  # it can be scaled


def test_flower_takes_basic_auth_from_the_environment_and_is_read_only():
    flower = SERVICES["flower"]
    auth = flower["environment"]["FLOWER_BASIC_AUTH"]
    assert auth == "${FLOWER_USER:?set FLOWER_USER in .env}:${FLOWER_PASSWORD:?set FLOWER_PASSWORD in .env}"
    assert "--read_only=true" in command("flower")
    assert not any("basic" in part for part in command("flower"))  # no credentials in argv (`ps`)
    for service in SERVICES.values():
        assert "FLOWER_UNAUTHENTICATED_API" not in (service.get("environment") or {})
    with pytest.raises(KeyError):
        interpolate(auth, {})


def test_env_example_lists_every_smsq_variable_and_flower_credentials():
    text = (ROOT / ".env.example").read_text()
    missing = [
        name for name in Settings.model_fields if not re.search(rf"^#? ?SMSQ_{name.upper()}=", text, re.M)
    ]
    assert missing == []
    assert re.search(r"^FLOWER_USER=", text, re.M) and re.search(r"^FLOWER_PASSWORD=", text, re.M)


def test_the_image_installs_smsq_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install /app" in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env"} <= set(ignored)


# --- each command runs ----------------------------------------------------------------------------


def test_redis_command_serves(spawn, tmp_path):
    argv, port = localise(command("redis"), tmp_path)
    proc = spawn([*argv, "--port", str(port), "--dir", str(tmp_path), "--bind", "127.0.0.1"], base_env())
    spawn.wait_until(proc, lambda: _redis_ping(port))


def _redis_ping(port: int) -> bool:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() == "PONG"


def test_migrate_command_migrates_postgres(sandbox, postgres_url, tmp_path, redis_client):
    from models.migrate import current_revision, head_revision

    argv, _ = localise(command("migrate"), tmp_path)
    env = env_for(cli_settings(sandbox, postgres_url))

    for _ in range(2):
        result = subprocess.run(
            argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
    assert current_revision(postgres_url) == head_revision()


def test_sandbox_command_answers_version(spawn, env, tmp_path):
    argv, port = localise(command("sandbox"), tmp_path)
    proc = spawn(argv, env)

    spawn.wait_until(proc, lambda: _get(f"http://127.0.0.1:{port}/rest/v1/version") == 200)


def test_worker_command_answers_ping(spawn, env, tmp_path):
    argv, _ = localise(command("worker"), tmp_path)
    proc = spawn(argv, env)
    spawn.wait_for_log(proc, "ready.")

    ping = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker.app", "inspect", "ping", "--timeout", "2"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert "pong" in ping.stdout


def test_beat_command_starts_and_publishes_sweeps(spawn, env, tmp_path, redis_client):
    argv, _ = localise(command("beat"), tmp_path)
    proc = spawn(argv, env)

    spawn.wait_for_log(proc, "beat: Starting")
    spawn.wait_until(proc, lambda: redis_client.llen("smsq.sweep") > 0)


def test_flower_command_needs_auth_and_cannot_enqueue(spawn, env, tmp_path):
    argv, port = localise(command("flower"), tmp_path)
    variables = {"FLOWER_USER": "ops", "FLOWER_PASSWORD": "s3cret-flower"}
    flower_env = {**env, "FLOWER_BASIC_AUTH": interpolate(SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"],
                                                          variables)}  # fmt: skip
    proc = spawn(argv, flower_env)
    base = f"http://127.0.0.1:{port}"
    spawn.wait_until(proc, lambda: _get(f"{base}/healthcheck") == 200)
    auth = ("ops", "s3cret-flower")

    assert _get(f"{base}/") == 401
    assert _get(f"{base}/api/workers") == 401
    assert _get(f"{base}/", auth=("ops", "wrong")) == 401
    assert _get(f"{base}/", auth=auth) == 200
    assert _get(f"{base}/api/workers", auth=auth) == 200
    apply = httpx.post(f"{base}/api/task/async-apply/smsq.send", json={"args": ["x"]}, auth=auth, timeout=10)
    assert apply.status_code == 403
    send = httpx.post(f"{base}/api/task/send-task/smsq.send", json={"args": ["x"]}, auth=auth, timeout=10)
    assert send.status_code == 403


def test_metrics_command_serves_prometheus_text(spawn, env, tmp_path):
    argv, port = localise(command("metrics"), tmp_path)
    proc = spawn(argv, env)

    spawn.wait_until(proc, lambda: _get(f"http://127.0.0.1:{port}/metrics") == 200)
    assert "smsq_database_up 1.0" in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def _get(url: str, auth: tuple[str, str] | None = None) -> int | None:
    try:
        return httpx.get(url, auth=auth, timeout=5).status_code
    except httpx.HTTPError:
        return None
