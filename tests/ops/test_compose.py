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
    "prometheus": None,  # the image's own; its config and rules: tests/ops/test_deploy.py
    "grafana": None,  # the image's own; the provisioned dashboard: tests/ops/test_deploy.py
    "rabbitmq": None,  # the image's own (the optional `rabbitmq` profile); RabbitMQ runs the tests' broker pass
}

#: Long-running services of ours and the health check each runs (the tests below run every one).
OUR_HEALTHCHECKS = {
    "worker": ["CMD", "python", "-m", "worker.metrics.health", "worker"],
    "beat": ["CMD", "python", "-m", "worker.metrics.health", "beat"],
    "metrics": ["CMD", "python", "-m", "worker.metrics.health", "metrics", "9464"],
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


def test_env_example_lists_every_smsq_variable_and_leaves_the_passwords_to_the_user():
    text = (ROOT / ".env.example").read_text()
    missing = [
        name for name in Settings.model_fields if not re.search(rf"^#? ?SMSQ_{name.upper()}=", text, re.M)
    ]
    assert missing == []
    assert re.search(r"^FLOWER_USER=", text, re.M)
    assert re.search(r"^# FLOWER_PASSWORD=", text, re.M) and not re.search(r"^FLOWER_PASSWORD=", text, re.M)
    assert re.search(r"^# GRAFANA_PASSWORD=", text, re.M) and not re.search(r"^GRAFANA_PASSWORD=", text, re.M)
    # `cp .env.example .env` as it is: compose refuses Flower and Grafana until the passwords are set
    variables = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))
    with pytest.raises(KeyError, match="FLOWER_PASSWORD"):
        interpolate(SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"], variables)
    with pytest.raises(KeyError, match="GRAFANA_PASSWORD"):
        interpolate(SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"], variables)


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        if name == "migrate":
            assert "healthcheck" not in service  # one-shot
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert {name: SERVICES[name]["healthcheck"]["test"] for name in OUR_HEALTHCHECKS} == OUR_HEALTHCHECKS


def test_the_image_installs_pinned_dependencies_first_then_smsq_and_runs_as_a_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    lines = dockerfile.splitlines()
    deps = next(i for i, line in enumerate(lines) if "pip install -c constraints.txt -r" in line)
    first_source = next(i for i, line in enumerate(lines) if line.startswith("COPY worker"))
    smsq = next(i for i, line in enumerate(lines) if "pip install --no-deps -c constraints.txt /app" in line)
    assert deps < first_source < smsq  # a code change reuses the dependency layer
    assert "COPY . " not in dockerfile
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert re.search(r'^HEALTHCHECK .*\n?.*"worker.metrics.health"', dockerfile, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "tests", "bench", "docs"} <= set(ignored)


def test_the_image_requirements_are_all_pinned_by_the_constraints_file_the_tests_install_from():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["flower"]
    wanted += project["optional-dependencies"]["sandbox"]
    pins = dict(
        line.split("==", 1) for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line
    )
    names = {re.split(r"[\[<>=!~ ]", req, maxsplit=1)[0].lower().replace("_", "-") for req in wanted}
    assert names - {name.lower().replace("_", "-") for name in pins} == set()
    assert "-c constraints.txt" in (ROOT / "scripts" / "test").read_text()
    from importlib.metadata import version

    for name in names:  # this test environment runs exactly the pinned versions
        assert version(name) == {k.lower().replace("_", "-"): v for k, v in pins.items()}[name], name


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
    assert _runs(OUR_HEALTHCHECKS["worker"][1:], env)  # celery@<this host>, as in a container


def test_beat_command_starts_and_publishes_sweeps(spawn, env, tmp_path, redis_client):
    argv, _ = localise(command("beat"), tmp_path)
    proc = spawn(argv, env)

    spawn.wait_for_log(proc, "beat: Starting")
    spawn.wait_until(proc, lambda: redis_client.llen("smsq.sweep") > 0)
    health = OUR_HEALTHCHECKS["beat"][1:]
    spawn.wait_until(proc, lambda: _runs(health, env))  # beat's heartbeat is in Redis


def _runs(argv: list[str], env: dict[str, str]) -> bool:
    argv = [sys.executable, *argv[1:]] if argv[0] == "python" else argv
    return subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, timeout=60, check=False).returncode == 0


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
    assert _runs([*OUR_HEALTHCHECKS["metrics"][1:-1], str(port)], env)
    assert not _runs([*OUR_HEALTHCHECKS["metrics"][1:-1], str(free_port())], env)


def _get(url: str, auth: tuple[str, str] | None = None) -> int | None:
    try:
        return httpx.get(url, auth=auth, timeout=5).status_code
    except httpx.HTTPError:
        return None
