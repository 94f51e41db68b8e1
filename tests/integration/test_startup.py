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
        [sys.executable, "-m", "worker.cli.main", "jobs"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SMSQ_RATE_LIMIT_CALLS" in result.stderr
