"""The one place the tests (and bench/) get their Redis from.

`SMSQ_TEST_REDIS_URL` names the Redis server (default ``redis://127.0.0.1:6379``; ``redis://`` or
``rediss://``): host, port, username, password and query options are kept from it. Its db number
(``/N``, default 0) is the base; each area uses the db at a fixed offset from it and empties only that db:

======  ==========================================================================
offset  used by
======  ==========================================================================
5       the shared fixtures (tests/conftest.py: runtimes, Celery processes, most tests)
6       the callback tests (tests/callbacks/)
7       the status-table end-to-end test (tests/contract/test_status_table_e2e.py)
9       the scaling tests (tests/scaling/: the standby beat)
8       the retention tests (tests/retention/)
10      the polling-cost benchmark (bench/polling.py) and its quick test (tests/bench/)
11      the rate-limiter tests (tests/worker/test_rate_limit.py)
12      the benchmark (bench/throughput.py), never the tests
13      the CLI and ops tests (tests/cli/, tests/ops/)
14      the doctor tests (tests/cli/test_doctor.py)
15      the quick dispatch benchmark test (tests/bench/test_dispatch_quick.py)
======  ==========================================================================

With the default URL the db is the offset itself, as before. Redis has 16 dbs (0-15) unless its
`databases` setting says otherwise, so a base above 1 needs a server configured with more.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

DEFAULT_URL = "redis://127.0.0.1:6379"
VARIABLE = "SMSQ_TEST_REDIS_URL"

SHARED = 5
CALLBACKS = 6
CONTRACT = 7
SCALING = 9
RETENTION = 8
POLLING = 10
RATE_LIMIT = 11
BENCH = 12
CLI = 13
DOCTOR = 14
BENCH_TEST = 15


def base_url() -> str:
    """`SMSQ_TEST_REDIS_URL`, or the default when it is unset or empty."""
    return os.environ.get(VARIABLE) or DEFAULT_URL


def url_for(offset: int, url: str | None = None) -> str:
    """The URL of db `base + offset` on the server `url` (default: `SMSQ_TEST_REDIS_URL`) names."""
    url = url or base_url()
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"{VARIABLE}: expected a redis:// or rediss:// URL, not {url!r}")
    raw = parts.path.strip("/") or "0"
    if not raw.isdigit():
        raise ValueError(f"{VARIABLE}: the db number must be an integer, not {raw!r}")
    return urlunsplit(parts._replace(path=f"/{int(raw) + offset}"))


def server(url: str | None = None) -> str:
    """Where the Redis server is, for messages: host:port, never the password."""
    parts = urlsplit(url or base_url())
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
