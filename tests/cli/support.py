"""Helpers shared by the CLI and ops tests: Redis db base+13, settings for the sandbox, running `smsq`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests import redis_dbs
from tests.conftest import ROOT, Sandbox, settings_env, smsq_settings
from worker.settings import Settings

#: This area's Redis database (other areas use other offsets; see tests/redis_dbs.py).
REDIS_URL = redis_dbs.url_for(redis_dbs.CLI)
SMSQ = str(Path(sys.executable).parent / "smsq")
CELERY = [sys.executable, "-m", "celery", "-A", "worker.app"]


def cli_settings(
    sandbox: Sandbox, database_url: str, provider: str = "retarus", **overrides: Any
) -> Settings:
    """Settings for the sandbox and this area's db (the root helper's broker is another area's db)."""
    overrides.setdefault("broker_url", REDIS_URL)
    return smsq_settings(sandbox, database_url, provider, **overrides)


def connections_file(tmp: Path, sandbox: Sandbox) -> Path:
    """A connections file adding `sendmode` and `http-simple` connections on the sandbox."""
    path = tmp / "connections.yaml"
    path.write_text(
        "sendmode:\n  provider: sendmode\n"
        f"  url: {sandbox.sendmode_url}\n  api_key: sandbox-key\n"
        "http-simple:\n  provider: retarus_http\n"
        f"  url: {sandbox.http_simple_url}\n  username: sandbox-user\n  password: sandbox-pass\n"
    )
    return path


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = settings_env(settings)
    env.update(extra)
    return env


def run_smsq(args: list[str], env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMSQ, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env() -> dict[str, str]:
    """The environment without any SMSQ_ variable of the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMSQ_", "FLOWER_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env
