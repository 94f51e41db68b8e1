"""The gauge triggers stay cheap for small statements after a large one in the same session (PostgreSQL).

PL/pgSQL keeps the plan of a static statement for the whole session, sized by the transition table of its
first firing: after a 2,000-job UPDATE, every one-job UPDATE read the whole recipient table (75 ms each at
30,000 recipients, so a poll finishing 3,000 jobs one statement at a time took minutes), and every
one-recipient UPDATE could scan `smsq_job` the same way. Migration 0006 plans the job trigger's statements
at every firing and forces primary-key lookups in the recipient triggers; the table statistics of the
transaction show what was read. With statistics older than the open jobs (a burst enqueued before
autovacuum analyzed it), 0006's recipient triggers still compared every changed recipient with every open
job; migration 0007 looks each changed job up by primary key, which `auto_explain` shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from worker.producer import enqueue_many
from worker.runtime import Runtime
from worker.settings import load_settings

JOBS = 3000


def _request(i: int) -> dict[str, Any]:
    dsts = [f"+4917{i:07d}{k}" for k in range(3)]
    return {"messages": [{"text": "Hi", "recipients": [{"dst": d} for d in dsts]}]}


@contextmanager
def _filled(postgres_url: str, redis_url: str) -> Iterator[psycopg.Connection[Any]]:
    """JOBS jobs of 3 recipients enqueued as an application does, analyzed; a fresh session on them."""
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
        conn.execute("ANALYZE smsq_job")
        conn.execute("ANALYZE smsq_recipient")
        conn.commit()
        yield conn


def _seq_reads(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(
        "SELECT coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables WHERE relname = %s", (table,)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_one_job_update_after_a_large_one_reads_only_that_jobs_recipients(
    postgres_url: str, redis_url: str
) -> None:
    with _filled(postgres_url, redis_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM smsq_job ORDER BY created_at")]
        # The session's first firing: 2,000 jobs leave the open states at once.
        conn.execute("UPDATE smsq_job SET state = 'canceled' WHERE id = ANY(%s)", (ids[:2000],))
        conn.commit()
        # (The view adds this transaction's reads to those the backend has not reported yet: a difference.)
        before = _seq_reads(conn, "smsq_recipient")
        for job_id in ids[2000:2005]:  # then one job per statement, as a poll finishing jobs did
            conn.execute("UPDATE smsq_job SET state = 'canceled' WHERE id = %s", (job_id,))
        after = _seq_reads(conn, "smsq_recipient")
        seq_read = after - before
        conn.commit()
        assert seq_read < 3 * 5 * 10, f"5 one-job updates read {seq_read} recipient rows in sequence"
        # A large statement still counts every recipient it moves (the gauges stay exact).
        delta = conn.execute(
            "SELECT coalesce(sum(n), 0) FROM smsq_gauge_delta WHERE gauge = 'recipients'"
        ).fetchone()
        assert delta is not None and int(delta[0]) == 3 * (JOBS - 2005)


def test_a_one_recipient_update_after_a_large_one_looks_up_only_its_job(
    postgres_url: str, redis_url: str
) -> None:
    with _filled(postgres_url, redis_url) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM smsq_recipient ORDER BY id")]
        # The session's first firing: 6,000 recipients change outcome at once (a large report).
        conn.execute("UPDATE smsq_recipient SET outcome = 'sent' WHERE id = ANY(%s)", (ids[:6000],))
        conn.commit()
        before = _seq_reads(conn, "smsq_job")
        for recipient_id in ids[6000:6005]:  # then one per statement, as a poll's executemany writes them
            conn.execute("UPDATE smsq_recipient SET outcome = 'sent' WHERE id = %s", (recipient_id,))
        seq_read = _seq_reads(conn, "smsq_job") - before
        conn.commit()
        assert seq_read == 0, f"5 one-recipient updates read {seq_read} job rows in sequence"
        # Every open job's recipients are counted under their outcome (the gauges stay exact).
        rows = conn.execute(
            "SELECT label, sum(n) FROM smsq_gauge_delta WHERE gauge = 'recipients' GROUP BY label"
        ).fetchall()
        counts: dict[str, int] = {str(label): int(n) for label, n in rows}
        assert counts.get("sent") == 6005
        assert sum(counts.values()) == 3 * JOBS


def _trigger_plans(conn: psycopg.Connection[Any], statement: str, params: tuple[Any, ...]) -> list[str]:
    """The analyzed plans of the gauge trigger statements that `statement` fired (auto_explain)."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    for setting in ("log_min_duration = 0", "log_nested_statements = on", "log_analyze = on",
                    "log_level = notice"):  # fmt: skip
        conn.execute(f"SET LOCAL auto_explain.{setting}")
    conn.execute(statement, params)
    return [text for text in notices if "smsq_gauge_delta" in text]


def test_a_large_recipient_update_looks_up_its_jobs_by_key_even_with_stale_statistics(
    postgres_url: str, redis_url: str
) -> None:
    with _filled(postgres_url, redis_url) as conn:
        # Statistics taken while no job was open; then every job open again, as after a burst of enqueues
        # that autovacuum has not analyzed yet.
        conn.execute("UPDATE smsq_job SET state = 'canceled'")
        conn.commit()
        conn.execute("ANALYZE smsq_job")
        conn.execute("UPDATE smsq_job SET state = 'queued'")
        conn.commit()
        conn.execute("LOAD 'auto_explain'")
        ids = [row[0] for row in conn.execute("SELECT id FROM smsq_recipient ORDER BY id LIMIT 3000")]
        # A claim's UPDATE (the send path's, for every 3,000-recipient call) and a report's outcomes
        for statement in (
            "UPDATE smsq_recipient SET submission_id = 'x' WHERE id = ANY(%s)",
            "UPDATE smsq_recipient SET outcome = 'sent' WHERE id = ANY(%s)",
        ):
            plans = _trigger_plans(conn, statement, (ids,))
            assert len(plans) == 1
            removed = sum(int(n) for n in re.findall(r"Rows Removed by Join Filter: (\d+)", plans[0]))
            assert removed == 0, f"the trigger compared {removed} pairs of rows:\n{plans[0]}"
            scanned = re.findall(r"(Seq Scan|Bitmap Heap Scan) on smsq_job", plans[0])
            assert scanned == [], f"the trigger scanned smsq_job:\n{plans[0]}"
        conn.commit()
        # The gauges stay exact: 3,000 recipients moved from `queued` to `sent`, none lost.
        rows = conn.execute(
            "SELECT label, sum(n) FROM smsq_gauge_delta WHERE gauge = 'recipients' GROUP BY label"
        ).fetchall()
        counts: dict[str, int] = {str(label): int(n) for label, n in rows}
        assert counts.get("sent") == 3000
        assert sum(counts.values()) == 3 * JOBS
