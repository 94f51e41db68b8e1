"""Fixtures of the retention tests: Redis db base+8 (tests/redis_dbs.py) for their runtimes and processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import redis_dbs
from tests.conftest import redis_db_for_session

REDIS_URL = redis_dbs.url_for(redis_dbs.RETENTION)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Overrides the shared fixture: runtimes built by `runtime_factory` and these tests use db base+8."""
    yield from redis_db_for_session(REDIS_URL)
