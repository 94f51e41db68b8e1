"""The open-work gauges stay cheap with history: PostgreSQL, many finished recipients, EXPLAIN shows indexes.

CI runs 50,000 recipient rows; `SMSQ_TEST_GAUGE_ROWS=1000000` runs the issue's million (about a minute to
load). Rows are cloned in SQL from one real enqueued job: 98 % of jobs finished, the rest open. The generic
plans of the same queries are checked in test_query_plans.py; bench/queries.py times them.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg
import pytest
from sqlalchemy.dialects import postgresql

from models.db import transaction
from models.migrate import upgrade
from tests.cli.support import cli_settings
from tests.conftest import PG_ADMIN
from worker.metrics.server import DatabaseCollector, gauge_queries
from worker.producer import enqueue

ROWS = int(os.environ.get("SMSQ_TEST_GAUGE_ROWS", "50000"))


@pytest.fixture
def big_database():
    name = f"smsq_gauges_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [row[0] for row in rows]


def test_gauge_queries_use_indexes_and_stay_fast_on_a_large_history(
    runtime_factory, sandbox, big_database, redis_client
):
    rt = runtime_factory(cli_settings(sandbox, big_database))
    template = enqueue(
        {"messages": [{"text": "hi", "recipients": [{"dst": "+4917612340011"}]}]}, runtime=rt
    ).id
    raw = big_database.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        jobs, recipients = _columns(conn, "smsq_job"), _columns(conn, "smsq_recipient")
        job_values = {"id": "md5('j' || g)", "state": "CASE WHEN g %% 50 = 0 THEN 'queued' ELSE 'finished' END",
                      "idempotency_key": "NULL"}  # fmt: skip
        recipient_values = {"id": "md5('r' || g)", "job_id": "md5('j' || g)", "final": "g %% 50 <> 0",
                            "outcome": "CASE WHEN g %% 50 = 0 THEN 'pending' ELSE 'delivered' END"}  # fmt: skip
        for table, columns, values, key in (("smsq_job", jobs, job_values, "id"),
                                            ("smsq_recipient", recipients, recipient_values, "job_id")):  # fmt: skip
            select_list = ", ".join(
                values.get(c, f't."{c}"') if c in values or c in columns else c for c in columns
            )
            conn.execute(
                f"INSERT INTO {table} ({', '.join(chr(34) + c + chr(34) for c in columns)}) "
                f"SELECT {select_list} FROM {table} t, generate_series(1, %s) g WHERE t.{key} = %s",
                (ROWS, template),
            )
        conn.execute("ANALYZE")
        count = conn.execute("SELECT count(*) FROM smsq_recipient").fetchone()
        assert count is not None and count[0] == ROWS + 1

        now = rt.clock.now()
        # Every gauge, the open-recipients one included: it joins the partial indexes `ix_smsq_recipient_open`
        # (recipients not final) and `ix_smsq_job_open` (jobs in an open state) of migration 0004.
        for query in gauge_queries(["default"], now):
            sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in conn.execute(f"EXPLAIN {sql}").fetchall())
            assert "Seq Scan on smsq_recipient" not in plan, plan
            assert "Seq Scan on smsq_job" not in plan, plan
            assert "Index" in plan or "smsq_gauge_delta" in plan, plan  # 0005: the counts kept on write

    collector = DatabaseCollector(rt)
    started = time.perf_counter()
    families = {family.name: family for family in collector.collect()}
    elapsed_s = time.perf_counter() - started
    print(f"one scrape over {ROWS} recipient rows: {elapsed_s * 1000:.0f} ms")
    assert elapsed_s < (1.0 if ROWS <= 100_000 else 5.0)
    queued = [
        s.value
        for s in families["smsq_jobs"].samples
        if s.labels == {"state": "queued", "connection": "default"}
    ]
    assert queued == [ROWS // 50 + 1]
    with transaction(rt.sessions):
        pass
