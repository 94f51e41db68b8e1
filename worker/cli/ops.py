"""Operator commands of `smsq`: doctor, contacts import, optout/optouts and credits.

They talk to the provider through the connection's own client (`runtime.client(name)`), so every
call goes through the connection's fleet-wide rate limiter like the workers' calls do.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from models.enums import ProviderKey
from worker.cli.common import (
    EXIT_BAD_INPUT,
    connection_or_exit,
    console,
    err_console,
    fail,
    handled,
    print_json,
    runtime,
)
from worker.errors import (
    ConfigurationError,
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
    SmsError,
)
from worker.runtime import Runtime
from worker.settings import ConnectionSettings, Settings

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConnectionOption = Annotated[str, typer.Option("--connection", "-c", help="Provider connection name.")]

#: How often one contact row is tried when the provider answers a retryable error.
IMPORT_ATTEMPTS = 3
#: Longest single wait for the rate limiter or a Retry-After during an import.
MAX_WAIT_S = 60.0


# --- doctor ---------------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of `smsq doctor`: ok, warn (works, but look), fail or skip (not checked), with what was found."""

    check: str
    status: str
    detail: str


def _short(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SmsError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300] or type(exc).__name__


def run_checks(rt: Runtime) -> list[Check]:
    """Redis, the broker, the database and its migration level, the workers and the queues they consume,
    beat's last sweep, the backlog, each connection (settings, poll budget) and its provider."""
    from models.migrate import current_revision, head_revision

    checks: list[Check] = []
    settings = rt.settings
    try:
        rt.redis.ping()
        checks.append(Check("redis", "ok", "PING answered"))
        redis_up = True
    except Exception as exc:
        checks.append(Check("redis", "fail", _short(exc)))
        redis_up = False
    broker_up = redis_up
    if settings.redis_url and settings.redis_url != settings.broker_url:
        try:
            import redis

            client = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, socket_timeout=5)
            client.ping()
            client.close()
            checks.append(Check("broker", "ok", "PING answered"))
            broker_up = True
        except Exception as exc:
            checks.append(Check("broker", "fail", _short(exc)))
            broker_up = False
    database_up = False
    try:
        current, head = current_revision(settings.database_url), head_revision()
        if current == head:
            checks.append(Check("database", "ok", f"migrated to {current} (head)"))
            database_up = True
        else:
            checks.append(
                Check("database", "fail", f"at revision {current}, head is {head}: run `smsq migrate`")
            )
    except Exception as exc:
        checks.append(Check("database", "fail", _short(exc)))
    if broker_up:
        checks.extend(fleet_checks(rt))
    else:
        checks.append(Check("workers", "skip", "not checked: the broker is down"))
    if redis_up:
        checks.append(beat_check(rt))
    else:
        checks.append(Check("beat", "skip", "not checked: Redis is down (beat's heartbeat lives there)"))
    try:
        connections = rt.connections
    except ConfigurationError as exc:
        checks.append(Check("settings", "fail", str(exc)))
        return checks
    if database_up:
        checks.extend(backlog_checks(rt, sorted(connections)))
    for name, conn in sorted(connections.items()):
        checks.append(
            Check(f"connection {name}", "ok", f"{conn.provider} credentials configured, {conn.urls[0]}")
        )
        checks.append(poll_budget_check(settings, conn))
        if redis_up:
            checks.append(_reachability(rt, name, conn.provider))
        else:
            checks.append(
                Check(
                    f"provider {name}",
                    "skip",
                    "not checked: Redis is down, and every provider call takes a slot of its limiter there",
                )
            )
    return checks


#: How long `smsq doctor` waits for workers to answer the broadcast.
WORKER_REPLY_S = 1.5


def fleet_checks(rt: Runtime, *, timeout_s: float = WORKER_REPLY_S) -> list[Check]:
    """One row per worker that answers (the smsq queues it consumes), then one per queue: its length and
    how many workers consume it. A worker that answers but consumes none of them has stopped consuming."""
    from worker.queues import Queue

    checks: list[Check] = []
    try:
        replies = rt.celery.control.inspect(timeout=timeout_s).active_queues() or {}
    except Exception as exc:
        return [Check("workers", "fail", f"cannot ask the workers: {_short(exc)}")]
    ours = {queue.value for queue in Queue}
    consumers: dict[str, int] = dict.fromkeys(ours, 0)
    if not replies:
        checks.append(
            Check(
                "workers",
                "fail",
                "no worker answered: jobs stay queued until one runs (`celery -A worker.app worker`)",
            )
        )
    else:
        checks.append(Check("workers", "ok", f"{len(replies)} answered"))
    for hostname, queues in sorted(replies.items()):
        names = sorted({str(q.get("name")) for q in queues or []} & ours)
        for name in names:
            consumers[name] += 1
        if not names:
            checks.append(
                Check(
                    f"worker {hostname}", "fail", "answers but consumes no smsq queue: it stopped consuming"
                )
            )
        else:
            missing = sorted(ours - set(names))
            detail = f"consumes {', '.join(names)}" + (f" (not {', '.join(missing)})" if missing else "")
            checks.append(Check(f"worker {hostname}", "ok", detail))
    lengths = _queue_lengths(rt, [queue.value for queue in Queue])
    for queue in Queue:
        waiting = lengths.get(queue.value)
        count = consumers[queue.value]
        waiting_text = "length unknown" if waiting is None else f"{waiting} waiting"
        if count == 0:
            checks.append(Check(f"queue {queue.value}", "fail", f"{waiting_text}; no worker consumes it"))
        else:
            checks.append(
                Check(f"queue {queue.value}", "ok", f"{waiting_text}; {count} worker(s) consume it")
            )
    return checks


def _queue_lengths(rt: Runtime, names: list[str]) -> dict[str, int]:
    if not rt.settings.broker_url.startswith(("redis://", "rediss://")):
        return {}
    import redis

    client = redis.Redis.from_url(rt.settings.broker_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        return {name: int(client.llen(name)) for name in names}
    finally:
        client.close()


def beat_check(rt: Runtime) -> Check:
    """Beat's last published sweep (its heartbeat in Redis) against three of its shortest intervals."""
    from worker.metrics.health import beat_intervals
    from worker.metrics.heartbeat import last_sweeps, redis_now_s, silent_after_s

    try:
        sweeps = last_sweeps(rt.redis)
        now_s = redis_now_s(rt.redis)
    except Exception as exc:
        return Check("beat", "fail", _short(exc))
    if not sweeps:
        return Check(
            "beat",
            "fail",
            "beat has never published a sweep here: run exactly one `celery -A worker.app beat`",
        )
    name, at_s = max(sweeps.items(), key=lambda item: item[1])
    age_s = max(now_s - at_s, 0.0)
    allowed_s = silent_after_s(beat_intervals(rt.settings))
    if age_s > allowed_s:
        return Check(
            "beat",
            "fail",
            f"last sweep published {age_s:.0f} s ago ({name}); beat has stopped (allowed {allowed_s:.0f} s)",
        )
    return Check("beat", "ok", f"last sweep published {age_s:.0f} s ago ({name})")


def backlog_checks(rt: Runtime, connections: list[str]) -> list[Check]:
    """Per connection: due queued jobs and the age of the oldest (warn past SMSQ_QUEUED_GRACE_S)."""
    from sqlalchemy import func
    from sqlmodel import select

    from models.db import transaction
    from models.enums import JobState
    from models.tables import Job
    from worker.metrics.server import _age_s, oldest_due_query

    checks: list[Check] = []
    now = rt.clock.now()
    try:
        with transaction(rt.sessions) as session:
            for name in connections:
                due = session.exec(
                    select(func.count()).where(
                        Job.connection == name, Job.state == JobState.QUEUED.value, Job.due_at <= now
                    )
                ).one()
                age_s = _age_s(session, oldest_due_query(name, now), now)
                if not due:
                    checks.append(Check(f"backlog {name}", "ok", "no due job waiting"))
                    continue
                detail = f"{due} due job(s) queued, the oldest for {age_s:.0f} s"
                status = "warn" if age_s > rt.settings.queued_grace_s else "ok"
                checks.append(Check(f"backlog {name}", status, detail))
    except Exception as exc:
        checks.append(Check("backlog", "fail", _short(exc)))
    return checks


def poll_budget_check(settings: Settings, conn: ConnectionSettings) -> Check:
    """Warn when the poll and refresh intervals would spend more calls per period than the poll share.

    Per period, Retarus REST spends at least one listing per poll cycle plus the long-open refreshes;
    HTTP Simple at least one report per poll cycle (one per due message); Sendmode has no status API.
    The share kept for polls is the limit less the send slots (`send_slots`); polls may never take more
    than `poll_slots` (the send floor keeps the rest).
    """
    from worker.rate_limit.limiter import poll_slots, send_slots

    label = f"poll budget {conn.name}"
    if conn.provider is ProviderKey.SENDMODE:
        return Check(label, "ok", "Sendmode has no status API: no poll calls")
    period_s = conn.rate_limit_period_s
    needed = period_s / settings.poll_interval_s
    if conn.provider is ProviderKey.RETARUS:
        needed += period_s / settings.long_open_refresh_s
    share = conn.rate_limit_calls - send_slots(conn.rate_limit_calls, conn.poll_share)
    cap = poll_slots(conn.rate_limit_calls, conn.send_floor)
    detail = (
        f"polling needs at least {needed:.1f} calls per {period_s:g} s; the poll share keeps {share}, "
        f"polls may use at most {cap}"
    )
    if needed > cap:
        return Check(label, "warn", f"{detail}: polls cannot keep up; raise SMSQ_POLL_INTERVAL_S")
    if needed > share:
        return Check(
            label,
            "warn",
            f"{detail}: while sends saturate the limit, polls fall behind; raise SMSQ_POLL_INTERVAL_S "
            "or SMSQ_POLL_SHARE",
        )
    return Check(label, "ok", detail)


def _reachability(rt: Runtime, name: str, provider: ProviderKey) -> Check:
    from worker.providers import RetarusClient, SendmodeClient

    label = f"provider {name}"
    if provider is ProviderKey.RETARUS_HTTP:
        return Check(label, "skip", "not checked: HTTP Simple has no version endpoint")
    try:
        client = rt.client(name)
        if isinstance(client, RetarusClient):
            info = client.version()
            return Check(label, "ok", f"version {_version_text(info)}")
        if isinstance(client, SendmodeClient):
            return Check(label, "ok", f"credits balance {client.credits()}")
    except Exception as exc:
        return Check(label, "fail", _short(exc))
    return Check(label, "skip", "not checked")


def _version_text(info: Any) -> str:
    data = info.model_dump(exclude_none=True) if hasattr(info, "model_dump") else {}
    return ", ".join(f"{key}={value}" for key, value in data.items()) or "answered"


def doctor(as_json: JsonOption = False) -> None:
    """Check Redis, the database, workers and their queues, beat, the backlog, each connection and provider.

    Exit 1 when any check fails; warnings (a slow backlog, a poll budget over its share) exit 0.
    """
    checks = run_checks(runtime(check_connections=False))
    failed = [check for check in checks if check.status == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [asdict(check) for check in checks]})
    else:
        table = Table(title="smsq doctor", title_justify="left")
        for column in ("check", "status", "detail"):
            table.add_column(column)
        colour = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "blue"}
        for check in checks:
            table.add_row(check.check, f"[{colour[check.status]}]{check.status}[/]", check.detail)
        console.print(table)
    if failed:
        raise typer.Exit(1)


# --- contacts import ------------------------------------------------------------------------------


@dataclass
class Refusal:
    """A CSV row that was not imported: its line in the file, the field or provider code, the message."""

    line: int
    mobilenumber: str
    field: str
    message: str


def _sendmode_connection(rt: Runtime, connection: str, what: str) -> None:
    connection_or_exit(rt, connection)
    provider = rt.connection(connection).provider
    if provider is not ProviderKey.SENDMODE:
        fail(f"connection: {what} needs a Sendmode connection; {connection!r} is {provider}", EXIT_BAD_INPUT)


def read_contacts(path: Path) -> list[tuple[int, dict[str, str | None]]]:
    """The CSV's data rows as (line number, fields); bad headers exit 2 naming the problem."""
    from models.sendmode import ImportData

    allowed = set(ImportData.model_fields)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        fail(f"{path}: {exc.strerror}", EXIT_BAD_INPUT)
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            fail(f"{path}: the file is empty; it needs a header row naming mobilenumber", EXIT_BAD_INPUT)
        except (csv.Error, UnicodeDecodeError) as exc:
            fail(f"{path}: not a readable CSV file: {exc}", EXIT_BAD_INPUT)
        if "mobilenumber" not in header:
            fail(f"{path}: the header row must name a mobilenumber column", EXIT_BAD_INPUT)
        unknown = [name for name in header if name not in allowed]
        if unknown:
            fail(
                f"{path}: unknown column(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
                EXIT_BAD_INPUT,
            )
        rows: list[tuple[int, dict[str, str | None]]] = []
        try:
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                values = [cell.strip() or None for cell in record]
                rows.append((reader.line_num, dict(zip(header, values, strict=False))))
        except (csv.Error, UnicodeDecodeError) as exc:
            fail(f"{path}: line {reader.line_num}: not readable as CSV: {exc}", EXIT_BAD_INPUT)
    return rows


def import_row(
    rt: Runtime, connection: str, group: str, line: int, fields: dict[str, str | None]
) -> Refusal | None:
    """Import one contact; waits out the rate limiter and retries transient errors. None = imported."""
    from models.sendmode import ImportData
    from worker.providers import SendmodeClient

    number = fields.get("mobilenumber") or ""
    try:
        data = ImportData.model_validate({key: value for key, value in fields.items() if value is not None})
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = ".".join(str(part) for part in error["loc"]) or "row"
        return Refusal(line, number, field, error["msg"].removeprefix("Value error, "))
    client = rt.client(connection)
    assert isinstance(client, SendmodeClient)
    attempt = 0
    while True:
        try:
            client.import_customer(data, group)
            return None
        except RateLimitExceeded as exc:  # our own limiter: wait, this is not an attempt
            time.sleep(min(exc.wait_s, MAX_WAIT_S))
        except ProviderThrottled as exc:
            time.sleep(min(exc.retry_after_s or 1.0, MAX_WAIT_S))
        except RetryableProviderError as exc:
            attempt += 1
            if attempt >= IMPORT_ATTEMPTS:
                return Refusal(line, number, "provider", f"gave up after {attempt} attempts: {exc.detail}")
            time.sleep(min(2.0**attempt, MAX_WAIT_S))
        except ProviderError as exc:
            code, _, message = exc.detail.partition(": ")
            return Refusal(line, number, code if message else "provider", message or exc.detail)


def import_contacts(
    file: Annotated[
        Path, typer.Argument(help="CSV with a header row: mobilenumber, firstname, surname, ...")
    ],
    group: Annotated[str, typer.Option("--group", "-g", help="Sendmode group to add the contacts to.")],
    connection: ConnectionOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Import contacts into a Sendmode group, one call per row; refused rows are reported (exit 1)."""
    rt = runtime()
    _sendmode_connection(rt, connection, "contacts import")
    rows = read_contacts(file)
    refusals: list[Refusal] = []
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    with progress:
        task = progress.add_task("import", total=len(rows))
        for line, fields in rows:
            refusal = import_row(rt, connection, group, line, fields)
            if refusal is not None:
                refusals.append(refusal)
            progress.advance(task)
    imported = len(rows) - len(refusals)
    if as_json:
        print_json(
            {
                "group": group,
                "rows": len(rows),
                "imported": imported,
                "refused": [asdict(refusal) for refusal in refusals],
            }
        )
    else:
        console.print(f"imported {imported} of {len(rows)} contact(s) into group {group!r}")
        if refusals:
            table = Table(title=f"{len(refusals)} row(s) refused", title_justify="left")
            for column in ("line", "mobilenumber", "field / code", "message"):
                table.add_column(column)
            for refusal in refusals:
                table.add_row(str(refusal.line), refusal.mobilenumber, refusal.field, refusal.message)
            console.print(table)
    if refusals:
        raise typer.Exit(1)


# --- opt-out and the suppression list -------------------------------------------------------------


def optout(
    number: Annotated[str, typer.Argument(help="The number to stop sending to.")],
    reason: Annotated[
        str | None, typer.Option(help="Why (kept locally; sent to Sendmode as its optoutresponse).")
    ] = None,
    connection: ConnectionOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Opt a number out: the local suppression list (later sends skip it), and Sendmode's for a Sendmode
    connection.

    Recipients on the list end with outcome `suppressed` instead of being sent to.
    """
    from worker.policy.suppression import suppress
    from worker.providers import SendmodeClient

    rt = runtime()
    connection_or_exit(rt, connection)
    with handled():
        entry = suppress(number, reason, rt)
    result: dict[str, Any] = {"number": entry.dst, "suppressed": True, "sendmode": None}
    if rt.connection(connection).provider is ProviderKey.SENDMODE:
        client = rt.client(connection)
        assert isinstance(client, SendmodeClient)
        try:
            client.opt_out(entry.dst, optoutresponse=reason)
            result["sendmode"] = "opted out"
        except (SmsError, ValidationError) as exc:
            result["sendmode"] = f"failed: {_short(exc)}"
    if as_json:
        print_json(result)
    else:
        console.print(f"{entry.dst} is on the local suppression list")
        if result["sendmode"] is not None:
            console.print(f"Sendmode ({connection}): {result['sendmode']}")
    if result["sendmode"] is not None and result["sendmode"] != "opted out":
        raise typer.Exit(1)


def optouts(
    limit: Annotated[int, typer.Option(min=1, help="At most this many entries.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """List the local suppression list, newest first."""
    from worker.policy.suppression import list_suppressions

    rt = runtime()
    try:
        entries = list_suppressions(rt, limit=limit)
    except Exception as exc:
        fail(f"cannot read the suppression list: {_short(exc)}")
    if as_json:
        print_json(
            [{"number": e.dst, "created_at": e.created_at.isoformat(), "reason": e.reason} for e in entries]
        )
        return
    table = Table(title=f"{len(entries)} suppressed number(s)", title_justify="left")
    for column in ("number", "since", "reason"):
        table.add_column(column)
    for entry in entries:
        table.add_row(entry.dst, entry.created_at.isoformat(), entry.reason or "")
    console.print(table)


# --- credits --------------------------------------------------------------------------------------


def credits(connection: ConnectionOption = "default", as_json: JsonOption = False) -> None:
    """Show the Sendmode balance (read now) and whether the connection is paused for lack of credits."""
    from worker.policy.credits import evaluate, fetch_balance

    rt = runtime()
    _sendmode_connection(rt, connection, "credits")
    try:
        balance = fetch_balance(rt, connection)
    except SmsError as exc:
        fail(f"Sendmode ({connection}): {_short(exc)}")
    result: dict[str, Any] = {
        "connection": connection,
        "balance": balance,
        "waiting_parts": None,
        "paused": None,
    }
    try:
        state = evaluate(rt, connection)
        result["waiting_parts"], result["paused"] = state.waiting_parts, state.paused
    except Exception as exc:  # the balance is known; the database part is a bonus
        err_console.print(f"warning: cannot compare with the waiting jobs: {_short(exc)}")
    if as_json:
        print_json(result)
        return
    console.print(f"connection {connection}: balance {balance}")
    if result["waiting_parts"] is not None:
        console.print(f"SMS parts waiting: {result['waiting_parts']}")
    console.print(f"paused: {result['paused']}" if result["paused"] else "not paused")
