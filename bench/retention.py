"""Database size after a week of simulated traffic on PostgreSQL, with and without retention.

Two fresh databases on 127.0.0.1:5432 (trust auth) get the same week: every simulated hour, `--per-day / 24`
single-recipient jobs go through the life cycle the send path gives them (insert queued, claim, a
submission per job with the request body, accepted, submitted, recipient final, submission finished, job
finished: each job row written 5 times, as in production), with times of that simulated hour. At the end of
every simulated day the retention run calls smsq's own purge (`worker.retention.purge`, batches of 1,000
jobs) with the cutoff `--keep-days` before that day's end, then both databases get a plain `VACUUM`
(what autovacuum does in time). Sizes are `pg_total_relation_size` of the four smsq tables (heap, indexes,
TOAST) and `pg_database_size`. The rows are written by SQL at the server (generate_series), not through
workers: this measures storage, not throughput.

    python -m bench.retention [--per-day 50000] [--days 7] [--keep-days 2] [--quick] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from bench.report import write_section
from models.db import make_engine, make_session_factory
from models.migrate import upgrade
from worker.retention import purge

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "bench.retention"
TABLES = ("smsq_job", "smsq_recipient", "smsq_submission", "smsq_callback")
START = datetime(2030, 1, 1, tzinfo=UTC)

REQUEST = (
    '{"messages": [{"text": "Your code is 913370. It expires in 10 minutes. Do not share it.", '
    '"recipients": [{"dst": "+4917612345678"}]}], "options": {"src": "ACME", "statusRequested": true}}'
)
BODY = (
    '{"messages": [{"text": "Your code is 913370. It expires in 10 minutes. Do not share it.", '
    '"recipients": [{"dst": "+4917612345678", "customerRef": "4f1c2a9e-8f65-4c3b-9d8e-2b7f0a1c5e34"}]}], '
    '"options": {"src": "ACME", "statusRequested": true, "duplicateDetection": true}}'
)

#: One simulated hour: the life cycle of `%(n)s` jobs, statement by statement, at time `%(t)s`.
LIFE_CYCLE = (
    "INSERT INTO smsq_job (id, connection, provider, state, qos_rank, request, options_key, solo,"
    " recipient_count, parts, created_at, updated_at, due_at, attempts, callback_open)"
    " SELECT gen_random_uuid()::text, 'default', 'retarus', 'queued', 1, %(request)s::json, 'k', false,"
    " 1, 1, %(t)s, %(t)s, %(t)s, 0, false FROM generate_series(1, %(n)s)",
    "INSERT INTO smsq_recipient (id, job_id, message_index, position, dst, outcome, final, notified_final)"
    " SELECT gen_random_uuid()::text, id, 0, 0, '+4917' || lpad((random() * 1e9)::bigint::text, 9, '0'),"
    " 'pending', false, false FROM smsq_job WHERE state = 'queued'",
    "UPDATE smsq_job SET state = 'submitting', claim_token = gen_random_uuid()::text, claimed_at = %(t)s,"
    " published_at = %(t)s, attempts = 1, updated_at = %(t)s WHERE state = 'queued'",
    "INSERT INTO smsq_submission (id, connection, provider, state, recipient_count, started_at, poll_attempt,"
    " body) SELECT md5(id)::uuid::text, 'default', 'retarus', 'in_flight', 1, %(t)s, 0, %(body)s::json"
    " FROM smsq_job WHERE state = 'submitting'",
    "UPDATE smsq_recipient SET submission_id = md5(job_id)::uuid::text, updated_at = %(t)s"
    " WHERE submission_id IS NULL AND final = false",
    "UPDATE smsq_submission SET state = 'accepted', provider_job_id = upper(substr(md5(id), 1, 16)),"
    " completed_at = %(t)s, next_poll_at = %(t)s WHERE state = 'in_flight'",
    "UPDATE smsq_job SET state = 'submitted', submitted_at = %(t)s, claim_token = NULL, updated_at = %(t)s"
    " WHERE state = 'submitting'",
    "UPDATE smsq_recipient SET outcome = 'delivered', final = true, process_status = 'DONE',"
    " status = 'SUC_FIN', sms_id = upper(substr(md5(id), 1, 20)), provider_job_id = 'J' || substr(job_id, 1, 15),"
    " sent_ts = %(t)s, finished_ts = %(t)s, updated_at = %(t)s WHERE final = false",
    "UPDATE smsq_submission SET state = 'finished', finished_at = %(t)s, next_poll_at = NULL"
    " WHERE state = 'accepted'",
    "UPDATE smsq_job SET state = 'finished', finished_at = %(t)s, updated_at = %(t)s WHERE state = 'submitted'",
)


@dataclass
class DaySize:
    day: int
    live_jobs: int
    tables_bytes: int
    database_bytes: int
    purged: int = 0
    purge_s: float = 0.0


@dataclass
class Run:
    name: str
    keep_days: float | None
    days: list[DaySize] = field(default_factory=list)


def _url(name: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _create(admin: psycopg.Connection, name: str) -> str:
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.execute(f'CREATE DATABASE "{name}"')
    upgrade(_url(name))
    return _url(name)


def _sizes(conn: psycopg.Connection) -> tuple[int, int, int]:
    tables = 0
    for table in TABLES:
        tables += int(conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0])  # type: ignore[index]
    database = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
    jobs = int(conn.execute("SELECT count(*) FROM smsq_job").fetchone()[0])  # type: ignore[index]
    return jobs, tables, database


def simulate(run: Run, url: str, per_day: int, days: int) -> None:
    """Write `days` days of traffic into `url`, purging at each day's end when the run keeps a limit."""
    sessions = make_session_factory(make_engine(url))
    per_hour = max(per_day // 24, 1)
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        for day in range(days):
            for hour in range(24):
                at = START + timedelta(days=day, hours=hour)
                with conn.transaction():
                    for statement in LIFE_CYCLE:
                        conn.execute(statement, {"t": at, "n": per_hour, "request": REQUEST, "body": BODY})
            size = DaySize(day + 1, 0, 0, 0)
            if run.keep_days is not None:
                day_end = START + timedelta(days=day + 1)
                began = time.perf_counter()
                report = purge(sessions, day_end - timedelta(days=run.keep_days), batch=1000)
                size.purge_s, size.purged = time.perf_counter() - began, report.jobs
            conn.execute("VACUUM")
            size.live_jobs, size.tables_bytes, size.database_bytes = _sizes(conn)
            run.days.append(size)
            print(f"{run.name} day {day + 1}: {size}", flush=True)


def _mib(value: int) -> str:
    return f"{value / 1048576:,.1f} MiB"


def render(runs: list[Run], per_day: int, days: int, keep_days: float, elapsed_s: float) -> str:
    without, with_ = runs
    last_without, last_with = without.days[-1], with_.days[-1]
    first = without.days[0]  # growth per SMS from day 1 on: the empty tables' fixed pages left out
    per_sms = (last_without.tables_bytes - first.tables_bytes) / max(
        last_without.live_jobs - first.live_jobs, 1
    )
    lines = [
        "## Retention: database size after a week of simulated traffic (PostgreSQL)",
        "",
        f"`python -m bench.retention --per-day {per_day} --days {days} --keep-days {keep_days:g}` on "
        f"{platform.node() or 'this host'} ({os.cpu_count()} CPUs, PostgreSQL on 127.0.0.1), "
        f"{datetime.now(UTC):%Y-%m-%d}, {elapsed_s:.0f} s. {per_day:,} single-recipient SMS per simulated day, "
        "each taken through the send path's life cycle (job row written 5 times, one submission with its "
        "request body, recipient written 3 times); a plain `VACUUM` at each day's end stands in for autovacuum. "
        f"The retention run calls smsq's purge at each day's end, keeping {keep_days:g} days (batches of 1,000 jobs).",
        "",
        "| day | jobs kept, no retention | smsq tables, no retention | jobs kept, retention "
        f"{keep_days:g} d | smsq tables, retention | purged that day | purge time |",
        "|---|---|---|---|---|---|---|",
    ]
    for a, b in zip(without.days, with_.days, strict=True):
        rate = f"{b.purge_s:.1f} s ({b.purged / b.purge_s:,.0f} jobs/s)" if b.purged and b.purge_s else "-"
        lines.append(
            f"| {a.day} | {a.live_jobs:,} | {_mib(a.tables_bytes)} | {b.live_jobs:,} | {_mib(b.tables_bytes)} "
            f"| {b.purged:,} | {rate} |"
        )
    steady = per_sms * 1_000_000 * 31 / 1024**3
    lines += [
        "",
        f"- After {days} days: **{_mib(last_without.tables_bytes)} without retention** (database "
        f"{_mib(last_without.database_bytes)}), **{_mib(last_with.tables_bytes)} with {keep_days:g}-day retention** "
        f"(database {_mib(last_with.database_bytes)}). Without retention the tables grow by "
        f"{per_sms:,.0f} bytes per SMS for ever; with it they stop growing once the first purge runs: "
        "PostgreSQL reuses the space of deleted rows after vacuum (the files do not shrink; `VACUUM FULL` "
        "or `pg_repack` returns it to the OS).",
        f"- Extrapolated: 1,000,000 SMS a day at the default `SMSQ_RETENTION_DAYS=30` stays near "
        f"{steady:,.0f} GiB of smsq tables (31 days of rows at {per_sms:,.0f} bytes each) instead of growing "
        f"by {per_sms * 1_000_000 / 1024**3:,.1f} GiB a day.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--per-day", type=int, default=50_000, help="SMS per simulated day")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--keep-days", type=float, default=2.0, help="retention of the second run, in days")
    parser.add_argument("--quick", action="store_true", help="2,400 SMS a day, nothing written")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave docs alone")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    per_day = 2400 if args.quick else args.per_day
    runs = [Run("no retention", None), Run(f"retention {args.keep_days:g} d", args.keep_days)]
    began = time.perf_counter()
    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    names = [f"smsq_bench_retention_{index}_{os.getpid()}" for index in range(2)]
    try:
        for run, name in zip(runs, names, strict=True):
            simulate(run, _create(admin, name), per_day, args.days)
    finally:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
    body = render(runs, per_day, args.days, args.keep_days, time.perf_counter() - began)
    print(body)
    if not (args.quick or args.no_write):
        write_section(args.output, SECTION, body)


if __name__ == "__main__":
    main()
