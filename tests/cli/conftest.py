"""Fixtures of the CLI tests: Redis db base+13 instead of the shared fixtures' db, a CliRunner with a runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.support import REDIS_URL, cli_settings, connections_file
from tests.conftest import Sandbox, redis_db_for_session
from worker.runtime import Runtime


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    yield from redis_db_for_session(REDIS_URL)


@pytest.fixture
def cli_runtime(
    runtime_factory: Callable[..., Runtime],
    sandbox: Sandbox,
    sqlite_url: str,
    redis_client: Any,
    tmp_path: Path,
) -> Runtime:
    """A runtime on the sandbox (default: Retarus; plus `sendmode` and `http-simple`), SQLite and db base+13,
    installed as the process runtime so `smsq` commands run through CliRunner use it."""
    settings = cli_settings(sandbox, sqlite_url, connections_file=str(connections_file(tmp_path, sandbox)))
    return runtime_factory(settings)
