"""Running the sandbox: `python -m sandbox` in its own process, credentials from SMSQ_PROVIDER_*, and
SandboxConfig.from_env defaults."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from models.clock import ManualClock
from sandbox.app import create_app
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig
from sandbox.server import serve_in_thread
from sandbox.state import SandboxState

ROOT = Path(__file__).resolve().parents[2]

#: GET /jobs needs jobIdsOnly=true (seed 000).
IDS = {"jobIdsOnly": "true"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def sandbox_process() -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSQ_")}
    env.update(SMSQ_PROVIDER_USERNAME="alice", SMSQ_PROVIDER_PASSWORD="wonderland", PYTHONPATH=str(ROOT))
    env["SMSQ_PROVIDER_API_KEY"] = "alice-key"
    args = ["--host", "127.0.0.1", "--port", str(port), "--limit", "2", "--period", "60", "--speed", "3600"]
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(url + "/rest/v1/version", timeout=0.5)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "python -m sandbox did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_python_m_sandbox_serves_with_env_credentials_its_limit_and_speed(sandbox_process: str) -> None:
    url = sandbox_process
    alice = httpx.Client(base_url=url + "/rest/v1", auth=("alice", "wonderland"))
    body = {"messages": [{"text": "x", "recipients": [{"dst": "+4917600000000"}]}]}

    assert (
        httpx.post(url + "/rest/v1/jobs", json=body, auth=("sandbox-user", "sandbox-pass")).status_code == 401
    )
    job_id = alice.post("/jobs", json=body).json()["jobId"]
    time.sleep(0.01)  # 36 sandbox seconds at speed 3600: done
    assert alice.get("/sms", params={"jobId": job_id}).json()[0]["processStatus"] == "DONE"
    assert alice.get("/jobs", params=IDS).status_code == 429  # --limit 2
    key_ok = httpx.get(url + "/v2/credits", headers={"Authorization": "alice-key"})
    assert key_ok.json()["status"] == "OK"
    alice.close()


def test_from_env_uses_documented_defaults_when_unset() -> None:
    config = SandboxConfig.from_env({})

    assert config.check_password(DEFAULT_USERNAME, DEFAULT_PASSWORD)
    assert config.key_label(DEFAULT_API_KEY) is not None
    assert (config.limit_calls, config.limit_period_s) == (100, 60.0)


def test_from_env_takes_the_smsq_provider_variables_and_overrides() -> None:
    env = {"SMSQ_PROVIDER_USERNAME": "u", "SMSQ_PROVIDER_PASSWORD": "p", "SMSQ_PROVIDER_API_KEY": "k"}

    config = SandboxConfig.from_env(env, limit_calls=5)

    assert config.check_password("u", "p") and not config.check_password(DEFAULT_USERNAME, DEFAULT_PASSWORD)
    assert config.key_label("k") is not None and config.key_label(DEFAULT_API_KEY) is None
    assert config.limit_calls == 5


def test_config_repr_hides_secrets() -> None:
    config = SandboxConfig.from_env(
        {"SMSQ_PROVIDER_PASSWORD": "hunter2", "SMSQ_PROVIDER_API_KEY": "k-secret"}
    )

    assert "hunter2" not in repr(config) and "k-secret" not in repr(config)
    assert "hunter2" not in json.dumps(config.model_dump(mode="json"))


def test_create_app_refuses_a_state_together_with_a_config() -> None:
    with pytest.raises(ValueError):
        create_app(SandboxConfig(), state=SandboxState())


def test_serve_in_thread_stops_even_with_a_held_call() -> None:
    app = create_app(clock=ManualClock())
    app.state.sandbox.hold()
    started = time.monotonic()
    with serve_in_thread(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(url + "/rest/v1/jobs", auth=("sandbox-user", "sandbox-pass"), timeout=0.2)
    assert time.monotonic() - started < 5
