"""`smsq doctor`: is everything smsq needs there and working? Settings, database, Redis, the provider,
the workers and the queues each consumes, beat, backlog age and the poll budget, one row each."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated, Any

import typer
from rich.table import Table

from models.enums import ProviderKey
from worker.cli.common import (
    console,
    print_json,
    runtime,
)
from worker.errors import (
    ConfigurationError,
    SmsError,
)
from worker.runtime import Runtime
from worker.settings import ConnectionSettings, Settings

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConnectionOption = Annotated[str, typer.Option("--connection", "-c", help="Provider connection name.")]


# --- doctor ---------------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of `smsq doctor`: ok, warn (works, but look), fail or skip (not checked), with what was found."""

    check: str
    status: str
    detail: str


def short_error(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, SmsError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())[:300] or type(exc).__name__


def run_checks(rt: Runtime) -> list[Check]:
    """Redis, the broker, the database and its migration level, the workers and the queues they consume,
    beat's last sweep, the backlog, each connection (settings, poll budget) and its provider."""
    checks: list[Check] = []
    redis_up = _ping(checks, "redis", rt.redis)
    broker_up = redis_up
    settings = rt.settings
    if settings.redis_url and settings.redis_url != settings.broker_url:
        import redis

        broker = redis.Redis.from_url(settings.broker_url, socket_connect_timeout=5, socket_timeout=5)
        broker_up = _ping(checks, "broker", broker)
        broker.close()
    database_up = _database_check(checks, settings.database_url)
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
            reason = "not checked: Redis is down, and every provider call takes a slot of its limiter there"
            checks.append(Check(f"provider {name}", "skip", reason))
    return checks


def _ping(checks: list[Check], name: str, client: Any) -> bool:
    try:
        client.ping()
    except Exception as exc:
        checks.append(Check(name, "fail", short_error(exc)))
        return False
    checks.append(Check(name, "ok", "PING answered"))
    return True


def _database_check(checks: list[Check], url: str) -> bool:
    from models.migrate import current_revision, head_revision

    try:
        current, head = current_revision(url), head_revision()
    except Exception as exc:
        checks.append(Check("database", "fail", short_error(exc)))
        return False
    if current == head:
        checks.append(Check("database", "ok", f"migrated to {current} (head)"))
        return True
    checks.append(Check("database", "fail", f"at revision {current}, head is {head}: run `smsq migrate`"))
    return False


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
        return [Check("workers", "fail", f"cannot ask the workers: {short_error(exc)}")]
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
        return Check("beat", "fail", short_error(exc))
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
        checks.append(Check("backlog", "fail", short_error(exc)))
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
        return Check(label, "fail", short_error(exc))
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
