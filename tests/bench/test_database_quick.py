"""A tiny run of bench/database.py: every part runs end to end and the report is written.

It asserts properties, never timings (CI hosts are slow and shared): every job stored once, every raw
task queued and run once, every job reaching the sandbox exactly once at one recipient per call, the
statement count of a provider call taken, and the `bench.database` section written between its markers.

Redis: db 15 above `SMSQ_TEST_REDIS_URL` (the benchmark's own db 12 stays free for `python -m
bench.database`); PostgreSQL on 127.0.0.1:5432 (skipped when it does not answer), databases named
`smsq_bench_database_test_*`, dropped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

import bench.database as database
import bench.throughput as throughput
from bench.report import write_section
from tests import redis_dbs

pytestmark = pytest.mark.integration

TINY = database.Profile(
    "tiny", enqueue_jobs=300, enqueue_repeats=1, single_jobs=20, drain_jobs=60, drain_cap_s=30.0
)


@pytest.fixture
def bench_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = redis_dbs.url_for(redis_dbs.BENCH_TEST)
    client: redis.Redis[Any] = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"Redis not answering at {redis_dbs.server()}")
    try:
        psycopg.connect(database.PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error:
        pytest.skip("PostgreSQL not answering on 127.0.0.1:5432")
    monkeypatch.setattr(database, "REDIS_URL", url)
    monkeypatch.setattr(throughput, "REDIS_URL", url)
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def test_rates() -> None:
    assert database.steady_rate([0.0, 1.0]) == 1.0
    assert database.steady_rate([float(i) / 10 for i in range(100)]) == pytest.approx(10.0)
    assert database.overall_rate([5.0]) is None


def test_tiny_run_writes_its_section(bench_redis: str, tmp_path: Path) -> None:
    report = database.DatabaseReport(
        command="test", mode=TINY.name, pool="prefork", date_utc="now", machine={}, profile=TINY
    )
    database.run(report, tmp_path, {"enqueue", "send"}, prefix=database.PG_PREFIX + "_test")

    e = report.enqueue
    assert e is not None
    assert e.smsq_stored == [TINY.enqueue_jobs]  # every job stored once
    assert e.raw_queued == [TINY.enqueue_jobs]  # every raw task in the broker once
    assert all(n <= 2 for n in e.smsq_wakeups)  # one wake-up per connection (and queue), not per job
    assert e.single_stored == TINY.single_jobs

    raw, smsq = report.raw_drain, report.smsq_drain
    assert raw is not None and smsq is not None
    assert raw.count == TINY.drain_jobs  # every no-op task ran once
    assert smsq.count == TINY.drain_jobs  # every job reached the provider ...
    assert smsq.duplicates == 0  # ... exactly once
    assert smsq.throttled_429 == 0
    st = report.statements
    assert st is not None and st.calls == database.STATEMENT_SAMPLES
    # a Retarus REST round: one transaction for the claim and one recording all of its calls, as
    # tests/integration/test_statements.py pins; with one recipient per call a round carries several calls
    assert st.commits == 2 * st.rounds and st.rounds < st.calls

    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n<!-- section other: start -->\nkept\n<!-- section other: end -->\n")
    database.add_notes(report)
    write_section(output, database.SECTION, database.render(report))
    text = output.read_text()
    assert "kept" in text
    assert "<!-- section bench.database: start -->" in text and "<!-- section bench.database: end -->" in text
    assert "provider calls/s" in text and "jobs/s" in text
