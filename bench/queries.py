"""`python -m bench.queries [--sizes 10000,1000000] [--calls 30]`: every sweep, poll, callback-sweep and
gauge query timed at two database sizes on PostgreSQL, with the EXPLAIN of its generic plan, into
docs/benchmarks.md (section `bench.queries`).

For each size a database of its own (`smsq_bench_queries_*` on 127.0.0.1:5432, trust auth) is created,
migrated with smsq's migrations and filled in SQL (`generate_series`): N recipient rows over 0.8 N jobs
(one or two recipients each) spread over 30 days, 20 % of jobs scheduled 1 h to 30 days ahead, a few
percent open (queued, submitting, submitted with accepted submissions, some due a poll), the rest final
(finished, expired, rejected, failed, canceled) with their submissions; 10 % of jobs with a callback and
their outbox events. Then VACUUM ANALYZE, as autovacuum would have done, and a CHECKPOINT.

Each query is the statement smsq itself builds (`scheduler.sweeps`, `scheduler.poll`,
`worker.callbacks.outbox`, `worker.metrics.server`), run `--calls` times in a row on one long-lived
connection of smsq's own engine (`models.db.make_engine`), a commit after each call like a sweep's
transaction: psycopg prepares it after 5 executions and PostgreSQL may switch that prepared statement to a
generic plan after 5 more, so the later calls are the ones a long-running worker sees. The same is then
repeated with `plan_cache_mode = force_generic_plan` on the connection (the worst case PostgreSQL may
choose), and the generic plan is shown: `PREPARE` of the same SQL, `EXPLAIN (ANALYZE, BUFFERS)
EXECUTE` under `force_generic_plan`.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import Connection, Engine
from sqlmodel import col, select

from bench.report import write_section
from models.db import make_engine
from models.migrate import upgrade
from models.tables import CallbackEvent, CallbackState, Job
from scheduler.poll import due_submissions_query, oldest_accepted_query, poll_batch
from scheduler.sweeps import (
    due_scheduled_query,
    expired_query,
    in_flight_query,
    stuck_query,
    waiting_connections_query,
)
from worker.callbacks.outbox import BATCH, changed_recipients_query, closable_jobs_query
from worker.metrics.open_counts import JOBS, RECIPIENTS, counted_query
from worker.metrics.server import oldest_due_query, oldest_submitting_query
from worker.settings import ConnectionSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
SECTION = "bench.queries"
PG_ADMIN = os.environ.get("SMSQ_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
CONNECTIONS = ("default", "bulk")
#: The issue's bounds: at the large size under this many ms, and at most this ratio large/small.
LIMIT_MS = 50.0
LIMIT_RATIO = 2.0


@contextmanager
def scratch_database(label: str) -> Iterator[str]:
    """A new, migrated database; dropped on exit. Yields its SQLAlchemy URL."""
    name = f"smsq_bench_queries_{label}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# The job's bucket b = g % 100 decides its state: 0-19 scheduled (future), 20-21 submitted, 22 queued,
# 23 expired, 24 rejected, 25 failed or canceled, 26 finished (one in ten submitting), the rest finished.
_JOB_STATE = """CASE
    WHEN g % 100 < 20 THEN 'scheduled' WHEN g % 100 < 22 THEN 'submitted' WHEN g % 100 = 22 THEN 'queued'
    WHEN g % 100 = 23 THEN 'expired' WHEN g % 100 = 24 THEN 'rejected'
    WHEN g % 100 = 25 THEN (CASE WHEN g % 2 = 0 THEN 'failed' ELSE 'canceled' END)
    WHEN g % 1000 = 26 THEN 'submitting' ELSE 'finished' END"""

_FILL_JOBS = f"""
INSERT INTO smsq_job (id, connection, provider, state, qos_rank, request, options_key, solo,
    recipient_count, parts, created_at, updated_at, due_at, expires_at, published_at, claimed_at,
    submitted_at, finished_at, attempts, callback, callback_open)
SELECT md5('j' || g), CASE WHEN g % 4 = 0 THEN 'bulk' ELSE 'default' END, 'retarus', st,
    CASE WHEN g % 20 = 0 THEN 0 ELSE 1 END,
    '{{"messages": [{{"text": "Your code is 123456", "recipients": [{{"dst": "+4917612345678"}}]}}],
       "options": {{"src": "ACME"}}}}'::json,
    md5('o' || (g % 7)), false, CASE WHEN g <= %(doubles)s THEN 2 ELSE 1 END, 1,
    created,
    CASE WHEN st = 'submitting' THEN now() - interval '10 seconds'
         WHEN st IN ('scheduled', 'queued') THEN created ELSE created + interval '1 minute' END,
    CASE WHEN st = 'scheduled' THEN now() + interval '1 hour' * (1 + g % 720) ELSE created END,
    CASE WHEN g % 3 <> 0 THEN NULL
         WHEN st = 'scheduled' THEN now() + interval '1 hour' * (1 + g % 720) + interval '2 days'
         WHEN st = 'queued' THEN now() + interval '1 hour' ELSE created + interval '2 days' END,
    created,
    CASE WHEN st = 'submitting' THEN now() - interval '10 seconds'
         WHEN st IN ('scheduled', 'queued', 'expired', 'canceled') THEN NULL ELSE created + interval '1 second' END,
    CASE WHEN st IN ('submitted', 'finished') THEN created + interval '1 second' END,
    CASE WHEN st IN ('finished', 'expired', 'rejected', 'failed', 'canceled') THEN created + interval '1 minute' END,
    CASE WHEN st IN ('scheduled', 'queued') THEN 0 ELSE 1 END,
    CASE WHEN g % 10 = 0 THEN '{{"url": "https://app.example/hooks/sms", "events": "final"}}'::json END,
    g % 10 = 0 AND st IN ('scheduled', 'queued', 'submitting', 'submitted')
FROM generate_series(1, %(jobs)s) g,
    LATERAL (SELECT {_JOB_STATE} AS st,
             now() - interval '30 days' * (%(jobs)s - g) / %(jobs)s - interval '1 minute' AS created) s
"""

_FILL_SUBMISSIONS = """
INSERT INTO smsq_submission (id, connection, provider, state, provider_job_id, recipient_count, started_at,
    completed_at, finished_at, poll_deadline, next_poll_at, poll_attempt)
SELECT md5('s' || j.id), j.connection, 'retarus', ss, CASE WHEN ss <> 'in_flight' THEN upper(substr(j.id, 1, 16)) END,
    j.recipient_count, j.claimed_at,
    CASE WHEN ss <> 'in_flight' THEN j.claimed_at END,
    CASE WHEN ss IN ('finished', 'failed', 'unknown') THEN j.finished_at END,
    j.claimed_at + interval '2 days',
    CASE WHEN ss = 'accepted' THEN now() + interval '1 second' * (abs(hashtext(j.id)) % 300 - 30) END,
    CASE WHEN ss = 'accepted' THEN 3 ELSE 0 END
FROM smsq_job j, LATERAL (SELECT CASE j.state WHEN 'submitted' THEN 'accepted' WHEN 'submitting' THEN 'in_flight'
    WHEN 'rejected' THEN 'failed' WHEN 'failed' THEN 'unknown' ELSE 'finished' END AS ss) s
WHERE j.state IN ('submitted', 'submitting', 'finished', 'rejected', 'failed')
"""

_FILL_RECIPIENTS = """
INSERT INTO smsq_recipient (id, job_id, message_index, position, dst, submission_id, provider_job_id,
    process_status, status, outcome, final, updated_at, finished_ts, notified_outcome, notified_final)
SELECT md5('r' || r), j.id, 0, CASE WHEN r > %(jobs)s THEN 1 ELSE 0 END, '+49176' || lpad((r % 10000000)::text, 8, '0'),
    CASE WHEN j.state NOT IN ('scheduled', 'queued', 'expired', 'canceled') THEN md5('s' || j.id) END,
    CASE WHEN j.state IN ('submitted', 'finished') THEN upper(substr(j.id, 1, 16)) END,
    CASE WHEN j.state = 'finished' THEN 'FINISHED' END,
    CASE WHEN j.state = 'finished' THEN (CASE WHEN r % 20 = 0 THEN 'UNDELIVERABLE' ELSE 'OK' END) END,
    o.outcome, o.final, j.updated_at, CASE WHEN o.final THEN j.finished_at END,
    CASE WHEN j.callback IS NOT NULL THEN o.outcome END, j.callback IS NOT NULL AND o.final
FROM generate_series(1, %(recipients)s) r
JOIN smsq_job j ON j.id = md5('j' || ((r - 1) %% %(jobs)s + 1)),
LATERAL (SELECT CASE j.state
        WHEN 'finished' THEN (CASE WHEN r % 20 = 0 THEN 'undeliverable' ELSE 'delivered' END)
        WHEN 'expired' THEN 'expired' WHEN 'rejected' THEN 'failed' WHEN 'failed' THEN 'unknown'
        WHEN 'canceled' THEN 'canceled' WHEN 'submitted' THEN 'accepted' ELSE 'pending' END AS outcome,
    j.state IN ('finished', 'expired', 'rejected', 'failed', 'canceled') AS final) o
"""

_FILL_CALLBACKS = """
INSERT INTO smsq_callback (id, job_id, recipient_id, connection, kind, receiver, payload, state, attempts,
    created_at, next_attempt_at, give_up_at, completed_at, last_error)
SELECT md5('c' || j.id), j.id, NULL, j.connection, 'webhook', 'https://app.example:443', '{}'::json,
    CASE WHEN j.state = 'submitted' THEN 'pending' WHEN j.state = 'failed' THEN 'failed' ELSE 'delivered' END,
    CASE WHEN j.state = 'submitted' THEN 2 ELSE 1 END, coalesce(j.finished_at, j.submitted_at),
    CASE WHEN j.state = 'submitted' THEN now() + interval '30 seconds' ELSE j.finished_at END,
    coalesce(j.finished_at, now()) + interval '1 day',
    CASE WHEN j.state <> 'submitted' THEN j.finished_at + interval '1 second' END,
    CASE WHEN j.state <> 'finished' THEN 'HTTP 503' END
FROM smsq_job j
WHERE j.callback IS NOT NULL AND (j.finished_at IS NOT NULL OR j.state = 'submitted')
"""


def fill(url: str, recipients: int) -> dict[str, int]:
    """Fill the database in SQL; returns the row count of each table."""
    jobs = recipients * 4 // 5
    params = {"jobs": jobs, "doubles": recipients - jobs, "recipients": recipients}
    raw = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        for statement in (_FILL_JOBS, _FILL_SUBMISSIONS, _FILL_RECIPIENTS, _FILL_CALLBACKS):
            conn.execute(statement.replace("%%", "%").replace("%", "%%").replace("%%(", "%("), params)
        conn.execute("VACUUM ANALYZE")
        # Write the fill's dirty pages out now: a checkpoint flushing hundreds of MiB while the timed
        # calls run measures the disk, not the query (a live database spreads its checkpoints out).
        conn.execute("CHECKPOINT")
        counts = {}
        for table in ("smsq_job", "smsq_recipient", "smsq_submission", "smsq_callback"):
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
        states = conn.execute(
            "SELECT state, count(*) FROM smsq_job GROUP BY state ORDER BY 2 DESC"
        ).fetchall()
        counts.update({f"jobs {state}": int(n) for state, n in states})
    return counts


def due_events_query(now: datetime) -> Any:
    """The callback delivery's read (as `worker.callbacks.delivery._due` builds it)."""
    return (
        select(CallbackEvent, Job.callback)
        .join(Job, col(Job.id) == col(CallbackEvent.job_id))
        .where(col(CallbackEvent.state) == CallbackState.PENDING, col(CallbackEvent.next_attempt_at) <= now)
        .order_by(col(CallbackEvent.next_attempt_at))
        .limit(BATCH)
    )


def latest_jobs_query() -> Any:
    """`smsq jobs` (worker.status.list_jobs) without filters: the 50 newest."""
    return select(Job).order_by(col(Job.created_at).desc()).limit(50)


#: A poll cycle's batch with the default limit (100 calls / 60 s) and poll interval (10 s): 34.
DEFAULT_POLL_BATCH = poll_batch(
    ConnectionSettings.model_fields["rate_limit_calls"].default,
    ConnectionSettings.model_fields["rate_limit_period_s"].default,
    Settings.model_fields["poll_interval_s"].default,
)


def queries(now: datetime) -> list[tuple[str, str, Any]]:
    """(name, kind, statement) of every query timed: what smsq builds, with the times a sweep uses."""
    cutoff = now - timedelta(seconds=Settings.model_fields["submit_timeout_s"].default)
    out: list[tuple[str, str, Any]] = [
        ("release: expired unsent jobs", "sweep", expired_query(now)),
        ("release: due scheduled jobs", "sweep", due_scheduled_query(now)),
        ("release: connections with due queued jobs", "sweep", waiting_connections_query(CONNECTIONS, now)),
        ("reconcile: stuck submitting jobs", "sweep", stuck_query(cutoff)),
        ("reconcile: in-flight submissions", "sweep", in_flight_query(cutoff)),
        (
            "poll: due accepted submissions (default)",
            "sweep",
            due_submissions_query("default", now, DEFAULT_POLL_BATCH),
        ),
        ("poll: oldest accepted submission (default)", "sweep", oldest_accepted_query("default")),
        ("callbacks: changed recipients", "sweep", changed_recipients_query()),
        ("callbacks: closable jobs", "sweep", closable_jobs_query()),
        ("callbacks: due events", "sweep", due_events_query(now)),
        ("gauge: open jobs by state (counted on write)", "gauge", counted_query(JOBS)),
        ("gauge: open recipients by outcome (counted on write)", "gauge", counted_query(RECIPIENTS)),
        ("gauge: backlog age (default)", "gauge", oldest_due_query("default", now)),
        ("gauge: oldest submitting (default)", "gauge", oldest_submitting_query("default")),
        ("listing: `smsq jobs` latest 50", "listing", latest_jobs_query()),
    ]
    return out


#: Why a query's time still grows with the dataset, shown for the queries over a bound: what it reads is
#: its answer, and the bench's open set (queued, in-flight, accepted) grows with the dataset.
GROWS_WITH_ANSWER = {
    "release: connections with due queued jobs": (
        "reads each connection's backlog head from `ix_smsq_job_head` up to its first due job; the "
        "bench's backlog is 0.8 % of jobs (80 at 10,000 rows and 8,000 at 1,000,000)"
    ),
    "reconcile: stuck submitting jobs": (
        "returns every claim stuck past the timeout (the bench leaves 0.1 % of jobs in `submitting`: 8 "
        "at 10,000 rows, 800 at 1,000,000): the answer itself grows 100x"
    ),
    "reconcile: in-flight submissions": (
        "returns every in-flight call past the settle time, 8 at 10,000 rows and 800 at 1,000,000 "
        "(index-only on `ix_smsq_submission_in_flight_ids` since 0005): the answer grows 100x"
    ),
    "poll: due accepted submissions (default)": (
        "returns the due accepted submissions (without their request bodies) up to the poll cycle's batch "
        "(`poll_batch`: 34 with the default limit and poll interval): about 16 at 10,000 rows and 34 at "
        "1,000,000 (1,600 due), each a heap page of its own"
    ),
}


def time_calls(conn: Connection, statement: Any, calls: int) -> list[float]:
    """Milliseconds of each of `calls` consecutive executions on `conn`, each fetched and committed."""
    out = []
    for _ in range(calls):
        started = time.perf_counter()
        conn.execute(statement).all()
        conn.commit()
        out.append((time.perf_counter() - started) * 1000)
    return out


def generic_plan(engine: Engine, statement: Any) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement's generic plan: PREPAREd, run under force_generic_plan."""
    compiled = statement.compile(dialect=engine.dialect, compile_kwargs={"render_postcompile": True})
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    text = re.sub(r"%\((\w+)\)s", placeholder, compiled.string).replace("%%", "%")
    values = [compiled.params[name] for name in names]
    raw = engine.url.render_as_string(hide_password=False).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(sql.SQL("PREPARE q AS {}").format(sql.SQL(text)))
        head = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING OFF) EXECUTE q")
        args = sql.SQL(", ").join(sql.Literal(value) for value in values)
        explain = sql.SQL("{} ({})").format(head, args) if values else head
        return "\n".join(row[0] for row in conn.execute(explain).fetchall())


@dataclass
class Measured:
    name: str
    kind: str
    #: size -> ms of each call (as shipped: plan_cache_mode auto), and with force_generic_plan
    auto: dict[int, list[float]] = field(default_factory=dict)
    generic: dict[int, list[float]] = field(default_factory=dict)
    plans: dict[int, str] = field(default_factory=dict)


def measure(sizes: list[int], calls: int) -> tuple[list[Measured], dict[int, dict[str, int]]]:
    results: dict[str, Measured] = {}
    counts: dict[int, dict[str, int]] = {}
    for size in sizes:
        with scratch_database(str(size)) as url:
            started = time.perf_counter()
            counts[size] = fill(url, size)
            print(f"{size} recipient rows filled in {time.perf_counter() - started:.0f} s: {counts[size]}")
            engine = make_engine(url)
            try:
                now = datetime.now(UTC)
                with engine.connect() as conn:
                    for name, kind, statement in queries(now):
                        entry = results.setdefault(name, Measured(name, kind))
                        entry.auto[size] = time_calls(conn, statement, calls)
                with engine.connect() as conn:
                    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
                    conn.commit()
                    for name, _, statement in queries(now):
                        results[name].generic[size] = time_calls(conn, statement, calls)
                for name, _, statement in queries(now):
                    results[name].plans[size] = generic_plan(engine, statement)
            finally:
                engine.dispose()
            for entry in results.values():
                auto, generic = entry.auto[size], entry.generic[size]
                print(
                    f"  {entry.name:48} median {statistics.median(auto):7.2f} ms, max {max(auto):7.2f};"
                    f" forced generic median {statistics.median(generic):7.2f}, max {max(generic):7.2f}"
                )
    return list(results.values()), counts


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def render(results: list[Measured], counts: dict[int, dict[str, int]], sizes: list[int], calls: int) -> str:
    small, large = sizes[0], sizes[-1]
    out: list[str] = []
    add = out.append
    add("## Sweep, gauge and listing queries at scale (`bench/queries.py`)\n")
    add(
        f"Every read the sweeps, the poll, the callback sweep, the metrics gauges and `smsq jobs` run, timed "
        f"at {small:,} and {large:,} recipient rows on PostgreSQL: {calls} consecutive calls of each on one "
        "long-lived connection of smsq's own engine (psycopg prepares a statement after 5 executions, "
        "PostgreSQL may use a generic plan from the 6th execution of the prepared statement), then the same "
        "with `plan_cache_mode = force_generic_plan` set on the connection, the worst plan PostgreSQL may "
        f"pick. Bound: < {LIMIT_MS:.0f} ms at {large:,} rows and < {LIMIT_RATIO:.0f}x from {small:,}; judged on "
        "the median and the slowest call of the calls after the 10th (the prepared, possibly generic ones).\n"
    )
    for size in sizes:
        shown = ", ".join(f"{k}: {v:,}" for k, v in counts[size].items())
        add(f"- {size:,} rows: {shown}")
    add("")
    add(
        f"| query | {small:,}: median (max) ms | {large:,}: median (max) ms | ratio of medians "
        f"| forced generic at {large:,}: median (max) ms | within bounds |"
    )
    add("|---|---:|---:|---:|---:|---|")
    for entry in results:
        late = {size: entry.auto[size][10:] or entry.auto[size] for size in sizes}
        forced = entry.generic[large][10:] or entry.generic[large]
        med_s, med_l = statistics.median(late[small]), statistics.median(late[large])
        ratio = med_l / med_s if med_s > 0 else float("inf")
        worst = max(max(late[large]), max(forced))
        ok = worst < LIMIT_MS and (ratio < LIMIT_RATIO or med_l < 1.0)
        add(
            f"| {entry.kind}: {entry.name} | {_fmt(med_s)} ({_fmt(max(late[small]))}) "
            f"| {_fmt(med_l)} ({_fmt(max(late[large]))}) | {ratio:.1f}x "
            f"| {_fmt(statistics.median(forced))} ({_fmt(max(forced))}) | {'yes' if ok else '**no**'} |"
        )
    add("")
    add(
        "A ratio over the bound with a median under 1 ms counts as within bounds: at that scale the "
        "figure is the round trip, not the query."
    )
    add("")
    add("### Findings\n")
    add(
        "- **The open-work gauges are counts kept on write** (migration 0005): on PostgreSQL, "
        "statement-level AFTER INSERT/UPDATE/DELETE triggers on `smsq_job` and `smsq_recipient` read the "
        "statement's transition tables and append one aggregated row per (gauge, state or outcome, "
        "connection) to `smsq_gauge_delta`, inserts only, so concurrent writers never wait on a counter "
        "row. The gauge sums that table and the scrape and the reconcile sweep compact it (one statement: "
        "delete the rows, insert their sums), so the read is a few rows whatever the number of open jobs. "
        "Here it reads the rows the bulk fill left. tests/ops/test_gauge_counts.py checks, after a real "
        "workload (enqueue, send, poll, release, a cancel written as two statements, retention deletes), "
        "that the counts equal a direct `COUNT`. SQLite keeps counting directly."
    )
    add(
        "- **The callback sweep reads only what is left to note.** Recipients of jobs without a callback "
        "were never noted, so `ix_smsq_recipient_unnoted` held most of the history and the plan started "
        "from every job with an open callback (24,000 at 1,000,000 rows). Now a callback job's recipients "
        "are stored noted as `pending` and the others stay NULL, outside `ix_smsq_recipient_to_note`; the "
        "sweep reads its batch from that index in order and then the batch's jobs by key. Closable jobs "
        "come from `ix_smsq_job_callback_closable` (terminal with an open callback) instead of the "
        "whole-table boolean index (dropped) plus a filter."
    )
    add(
        "- **Release reads each connection's backlog head, not the backlog.** To wake a drain per "
        "connection with due work, the sweep used to read every due queued job's entry of "
        "`ix_smsq_job_queued_due` and group them (8,000 entries at 1,000,000 rows for a 2-row answer); now "
        "it runs, for each configured connection, the drain's own head query (`ix_smsq_job_head`, "
        "`LIMIT 1`) joined with `UNION ALL`: a few index pages whatever the backlog."
    )
    add(
        "- **A poll cycle takes what the budget can use.** The due-poll query returned up to 500 whole "
        "submissions per cycle although the budget allows a few calls per poll interval; it now takes "
        "`poll_batch` = twice the calls the connection's budget allows per poll interval (34 with the defaults, at least "
        "20, at most 500) and leaves the request body unread (`scheduler.poll.poll_batch`)."
    )
    for entry in results:
        late = {size: entry.auto[size][10:] or entry.auto[size] for size in sizes}
        med_s, med_l = statistics.median(late[small]), statistics.median(late[large])
        worst = max(max(late[large]), max(entry.generic[large][10:] or entry.generic[large]))
        ratio = med_l / med_s if med_s > 0 else float("inf")
        if worst >= LIMIT_MS or (ratio >= LIMIT_RATIO and med_l >= 1.0):
            why = GROWS_WITH_ANSWER.get(entry.name, "not explained: a regression to look at")
            add(f"- **Over a bound: {entry.kind}: {entry.name}** ({ratio:.1f}x, {_fmt(med_l)} ms): {why}.")
    add("")
    add("### Why the plans hold in a long-running worker\n")
    add(
        "psycopg prepares a statement after 5 executions on a connection (`prepare_threshold`); PostgreSQL "
        "plans a prepared statement with its parameter values 5 times, then may keep one generic plan. A "
        "generic plan cannot use a partial index whose predicate depends on a parameter: with `state = $1` "
        "nothing proves `state = 'scheduled'`, so the old sweeps fell back to reading the table from the "
        "11th call on. smsq's fix is in the shape of the queries, not in a setting: every constant the "
        "index predicates name (job, submission and callback states, `'pending'` in the callback sweep's "
        "change test) is written into the SQL text (`models.db.fixed`, `fixed_in`), the time and the "
        "connection stay parameters, and the release queries order by the index's column so the plan "
        "reads it even without knowing how many rows `<= now` matches. Checked for every query by "
        "tests/ops/test_query_plans.py under `force_generic_plan`.\n\n"
        "Not chosen: `plan_cache_mode = force_custom_plan` per connection would replan every statement of "
        "the send path too (the very path issue 13 makes lean), and as session state it is lost behind a "
        "transaction-pooling PgBouncer; `prepare_threshold = None` gives up server-side prepared "
        "statements everywhere. Neither is needed once the generic plan is the good one.\n"
    )
    add(f"### Generic plans at {large:,} rows\n")
    add(
        "`PREPARE` of the statement as smsq sends it, then `EXPLAIN (ANALYZE, BUFFERS, COSTS OFF, TIMING "
        "OFF) EXECUTE` under `SET plan_cache_mode = force_generic_plan`: the plan chosen without the "
        "parameter values.\n"
    )
    for entry in results:
        add(f"**{entry.kind}: {entry.name}**\n")
        add("```")
        add(entry.plans[large])
        add("```\n")
    add("Machine:")
    add(f"- CPU: {os.cpu_count()} cores, {platform.machine()}; {platform.system()} {platform.release()}")
    with psycopg.connect(PG_ADMIN) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    add(f"- PostgreSQL {row[0] if row else '?'}, default settings; Python {platform.python_version()}")
    add(f"- Run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="10000,1000000", help="recipient rows, comma-separated, small first"
    )
    parser.add_argument("--calls", type=int, default=30, help="consecutive calls per query (>= 20)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where the Markdown section goes")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    results, counts = measure(sizes, args.calls)
    body = render(results, counts, sizes, args.calls)
    if args.no_write:
        print(body)
    else:
        write_section(args.output, SECTION, body)
        print(f"wrote section {SECTION} of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
