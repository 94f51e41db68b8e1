"""The gauge triggers stay cheap for small statements after a large one in the same session (PostgreSQL).

PL/pgSQL keeps the plan of a static statement for the whole session, sized by the transition table of its
first firing: after a 2,000-job UPDATE, every one-job UPDATE read the whole recipient table (75 ms each at
30,000 recipients, so a poll finishing 3,000 jobs one statement at a time took minutes). Migration 0006
plans those statements at every firing; the table statistics of the transaction show what was read.
"""

from __future__ import annotations

from typing import Any

import psycopg

from models.migrate import upgrade
from worker.producer import enqueue_many
from worker.runtime import Runtime
from worker.settings import load_settings

JOBS = 3000


def _request(i: int) -> dict[str, Any]:
    dsts = [f"+4917{i:07d}{k}" for k in range(3)]
    return {"messages": [{"text": "Hi", "recipients": [{"dst": d} for d in dsts]}]}


def _recipient_reads(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    row = conn.execute(
        "SELECT coalesce(seq_tup_read, 0), coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
        "WHERE relname = 'smsq_recipient'"
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_one_job_update_after_a_large_one_reads_only_that_jobs_recipients(
    postgres_url: str, redis_url: str
) -> None:
    upgrade(postgres_url)
    settings = load_settings(
        database_url=postgres_url, broker_url=redis_url, provider_username="u", provider_password="p"
    )
    rt = Runtime(settings)
    rt.wake = lambda *args, **kwargs: True  # type: ignore[method-assign]
    try:
        enqueue_many([_request(i) for i in range(JOBS)], runtime=rt)
    finally:
        rt.close()
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM smsq_job ORDER BY created_at")]
        conn.execute("ANALYZE smsq_job")
        conn.execute("ANALYZE smsq_recipient")
        conn.commit()
        # The session's first firing: 2,000 jobs leave the open states at once.
        conn.execute("UPDATE smsq_job SET state = 'canceled' WHERE id = ANY(%s)", (ids[:2000],))
        conn.commit()
        # (The view adds this transaction's reads to those the backend has not reported yet: a difference.)
        before, _ = _recipient_reads(conn)
        for job_id in ids[2000:2005]:  # then one job per statement, as a poll finishing jobs did
            conn.execute("UPDATE smsq_job SET state = 'canceled' WHERE id = %s", (job_id,))
        after, _ = _recipient_reads(conn)
        seq_read = after - before
        conn.commit()
        assert seq_read < 3 * 5 * 10, f"5 one-job updates read {seq_read} recipient rows in sequence"
        # A large statement still counts every recipient it moves (the gauges stay exact).
        delta = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM smsq_gauge_delta WHERE gauge = 'recipients'"
        ).fetchone()
        assert delta is not None and int(delta[0]) == 3 * (JOBS - 2005)
