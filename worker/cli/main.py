"""The `smsq` command line (typer + rich): send and read jobs, run the sandbox, operate the accounts.

    smsq send --to NUMBER [--to ...] --text TEXT [options] [--json]   enqueue one job, print its id
    smsq status JOB_ID [--json]                                       the job and every recipient
    smsq jobs [--state S] [--connection C] [--since T] [--until T]    list jobs, newest first
    smsq migrate                                                      apply the database migrations
    smsq sandbox [--host H --port N --limit C --period S --speed X]   serve the provider sandbox
    smsq doctor [--json]                                              check Redis, database, providers
    smsq contacts import FILE.csv --group G                           Sendmode contact import
    smsq optout NUMBER [--reason R]                                   opt a number out (+ Sendmode)
    smsq optouts [--json]                                             the local suppression list
    smsq credits [--json]                                             Sendmode balance, credit pause
    smsq metrics [--port 9464]                                        serve Prometheus metrics
    smsq purge --older-than 30d [--export F] [--batch N] [--dry-run]  delete old final jobs
    smsq demo                                                         everything, end to end, locally

Every command reads the SMSQ_ environment (worker/settings.py). Exit codes and error lines are
described in `worker.cli.common`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from models.enums import Encoding, JobState, Qos
from worker.callbacks.cli import CallbackEventsOption, CallbackTaskOption, CallbackUrlOption
from worker.callbacks.spec import callback_from_options
from worker.cli import doctor as cli_doctor
from worker.cli import ops as cli_ops
from worker.cli import purge as cli_purge
from worker.cli import services as cli_services
from worker.cli.common import (
    EXIT_BAD_INPUT,
    EXIT_FAILURE,
    console,
    fail,
    handled,
    parse_time_option,
    print_json,
    runtime,
)
from worker.errors import ConfigurationError, JobNotFound

app = typer.Typer(
    name="smsq",
    help="smsq: reliable SMS dispatch through Celery workers. Every command reads the SMSQ_ environment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
contacts_app = typer.Typer(help="Sendmode contacts.", no_args_is_help=True)
app.add_typer(contacts_app, name="contacts")

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConnectionOption = Annotated[str, typer.Option("--connection", "-c", help="Provider connection name.")]


def _choice(field: str, values: list[str], *, case: str = "lower") -> Any:
    """A parse-time check of an option against an enum's values: the choices show in --help as the
    metavar, and a bad value exits 2 with one line (`error: <field>: must be one of ...`)."""
    shown = [value.lower() if case == "lower" else value for value in values]

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower() not in {v.lower() for v in values}:
            fail(
                f"{field}: must be {' or '.join(shown) if len(shown) == 2 else 'one of ' + ', '.join(shown)}",
                EXIT_BAD_INPUT,
            )
        return value

    return {"metavar": f"[{'|'.join(shown)}]", "callback": check}


QOS_CHOICE = _choice("options.qos", [q.value for q in Qos])
ENCODING_CHOICE = _choice("options.encoding", [e.value for e in Encoding], case="keep")
STATE_CHOICE = _choice("--state", [s.value for s in JobState])


# --- send / status / jobs -------------------------------------------------------------------------


def build_request(
    to: list[str],
    text: str,
    *,
    src: str | None = None,
    qos: str | None = None,
    job_period: str | None = None,
    validity_min: int | None = None,
    blackouts: list[str] | None = None,
    status_requested: bool = False,
    max_parts: int | None = None,
    encoding: str | None = None,
    billcode: str | None = None,
    customer_ref: str | None = None,
) -> dict[str, Any]:
    """The JSON form of the request `smsq send` enqueues (validated by the producer, not here)."""
    options: dict[str, Any] = {}
    given = {
        "src": src,
        "qos": qos.upper() if qos else None,
        "jobPeriod": job_period,
        "validityMin": validity_min,
        "blackoutPeriods": list(blackouts) if blackouts else None,
        "statusRequested": True if status_requested else None,
        "maxParts": max_parts,
        "encoding": encoding.upper() if encoding else None,
        "billcode": billcode,
        "customerRef": customer_ref,
    }
    options = {key: value for key, value in given.items() if value is not None}
    return {
        "messages": [{"text": text, "recipients": [{"dst": number} for number in to]}],
        "options": options,
    }


ToOption = Annotated[
    list[str], typer.Option("--to", help="Recipient number (E.164 or national); repeatable.")
]
TextOption = Annotated[str, typer.Option("--text", help="Message text.")]
SrcOption = Annotated[str | None, typer.Option(help="Sender id (numeric or up to 11 characters).")]
QosOption = Annotated[str | None, typer.Option(help="Express jobs overtake normal ones.", **QOS_CHOICE)]
JobPeriodOption = Annotated[
    str | None, typer.Option("--job-period", help="Earliest send time, ISO-8601 with offset.")
]
ValidityOption = Annotated[
    int | None, typer.Option("--validity-min", help="Minutes the SMS stays valid: 0 or 5..2880.")
]
BlackoutOption = Annotated[
    list[str] | None,
    typer.Option("--blackout", help="No sending in START/END (ISO-8601 with offsets); repeatable."),
]
StatusOption = Annotated[bool, typer.Option("--status-requested", help="Ask for delivery notifications.")]
MaxPartsOption = Annotated[
    int | None, typer.Option("--max-parts", help="At most this many SMS parts (1..20).")
]
EncodingOption = Annotated[str | None, typer.Option(help="SMS character set.", **ENCODING_CHOICE)]
BillcodeOption = Annotated[str | None, typer.Option(help="Billing code (up to 70 characters).")]
CustomerRefOption = Annotated[str | None, typer.Option("--customer-ref", help="Your reference for the job.")]
IdempotencyOption = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="Sending again with the same key returns the same job."),
]


@app.command()
def send(
    to: ToOption,
    text: TextOption,
    src: SrcOption = None,
    qos: QosOption = None,
    job_period: JobPeriodOption = None,
    validity_min: ValidityOption = None,
    blackout: BlackoutOption = None,
    status_requested: StatusOption = False,
    max_parts: MaxPartsOption = None,
    encoding: EncodingOption = None,
    billcode: BillcodeOption = None,
    customer_ref: CustomerRefOption = None,
    idempotency_key: IdempotencyOption = None,
    connection: ConnectionOption = "default",
    callback_url: CallbackUrlOption = None,
    callback_task: CallbackTaskOption = None,
    callback_events: CallbackEventsOption = "final",
    as_json: JsonOption = False,
) -> None:
    """Enqueue one SMS job and print its id. A bad request exits 2 and stores nothing."""
    from worker.producer import enqueue

    if qos is not None and qos.lower() not in ("express", "normal"):
        fail("options.qos: must be express or normal", EXIT_BAD_INPUT)
    request = build_request(
        to,
        text,
        src=src,
        qos=qos,
        job_period=job_period,
        validity_min=validity_min,
        blackouts=blackout,
        status_requested=status_requested,
        max_parts=max_parts,
        encoding=encoding,
        billcode=billcode,
        customer_ref=customer_ref,
    )
    rt = runtime()
    with handled():
        callback = callback_from_options(callback_url, callback_task, callback_events)
        handle = enqueue(
            request, connection=connection, idempotency_key=idempotency_key, runtime=rt, callback=callback
        )
    if as_json:
        print_json({"id": handle.id, "state": handle.state.value, "created": handle.created})
    else:
        console.print(handle.id)


def _paused(rt: Any, connection: str) -> str | None:
    """The credit pause of `connection`, if any (None when Redis cannot tell)."""
    from worker.policy.credits import pause_reason

    try:
        return pause_reason(rt, connection)
    except Exception:
        return None


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job id enqueue or `smsq send` returned.")],
    as_json: JsonOption = False,
) -> None:
    """Show a job and every recipient's outcome. An unknown id exits 1."""
    from worker.status import job_status

    rt = runtime()
    try:
        data = job_status(job_id, rt)
    except JobNotFound as exc:
        fail(str(exc))
    except Exception as exc:  # the database is unreachable or not migrated
        fail(f"cannot read the job: {type(exc).__name__}: {exc}".splitlines()[0])
    data["paused"] = _paused(rt, data["connection"]) if data["state"] == JobState.QUEUED else None
    if as_json:
        print_json(data)
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, key in (
        ("job", "id"),
        ("state", "state"),
        ("connection", "connection"),
        ("provider", "provider"),
        ("provider job", "provider_job_id"),
        ("created", "created_at"),
        ("submitted", "submitted_at"),
        ("finished", "finished_at"),
        ("reason", "reason"),
        ("paused", "paused"),
    ):
        if data.get(key) is not None:
            summary.add_row(label, str(data[key]))
    if data.get("callbacks"):
        summary.add_row("callbacks", data["callbacks"]["summary"])
    console.print(summary)
    table = Table(title=f"{len(data['recipients'])} recipient(s)", title_justify="left")
    for column in ("dst", "outcome", "process status", "status", "sent", "finished", "reason"):
        table.add_column(column, no_wrap=column in ("dst", "outcome"))
    for row in data["recipients"]:
        table.add_row(
            row["dst"],
            row["outcome"],
            row["process_status"] or "",
            row["status"] or "",
            row["sent_ts"] or "",
            row["finished_ts"] or "",
            row["reason"] or "",
        )
    console.print(table)


@app.command()
def jobs(
    state: Annotated[str | None, typer.Option(help="Only jobs in this state.", **STATE_CHOICE)] = None,
    connection: Annotated[
        str | None, typer.Option("--connection", "-c", help="Only this connection.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Created at or after (ISO-8601 with offset).")] = None,
    until: Annotated[str | None, typer.Option(help="Created before (ISO-8601 with offset).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many jobs.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List jobs, newest first, filtered by state, connection and creation time."""
    from worker.status import list_jobs

    if state is not None and state not in {s.value for s in JobState}:
        fail(f"--state: must be one of {', '.join(s.value for s in JobState)}", EXIT_BAD_INPUT)
    since_at: datetime | None = parse_time_option(since, "--since")
    until_at: datetime | None = parse_time_option(until, "--until")
    rt = runtime()
    try:
        rows = list_jobs(rt, state=state, connection=connection, since=since_at, until=until_at, limit=limit)
    except Exception as exc:
        fail(f"cannot list jobs: {type(exc).__name__}: {exc}".splitlines()[0])
    paused = {
        name: _paused(rt, name) for name in {row["connection"] for row in rows if row["state"] == "queued"}
    }
    for row in rows:
        row["paused"] = paused.get(row["connection"]) if row["state"] == JobState.QUEUED else None
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} job(s)", title_justify="left")
    for column in ("id", "state", "connection", "provider", "recipients", "created", "finished", "reason"):
        table.add_column(column, no_wrap=column in ("id", "state"), min_width=36 if column == "id" else None)
    for row in rows:
        reason = row["reason"] or (f"paused: {row['paused']}" if row["paused"] else "")
        table.add_row(
            row["id"],
            row["state"],
            row["connection"],
            row["provider"],
            str(row["recipients"]),
            row["created_at"] or "",
            row["finished_at"] or "",
            reason,
        )
    console.print(table)


# --- processes (worker/cli/services.py) and operations (worker/cli/doctor.py, worker/cli/ops.py) ---------

for command in (cli_services.migrate, cli_services.sandbox, cli_services.metrics, cli_services.demo):
    app.command()(command)

app.command("doctor")(cli_doctor.doctor)
app.command("optout")(cli_ops.optout)
app.command("optouts")(cli_ops.optouts)
app.command("credits")(cli_ops.credits)
app.command("purge")(cli_purge.purge)
contacts_app.command("import")(cli_ops.import_contacts)


def main() -> None:
    """The `smsq` console script: a bad setting or an unmigrated database is one line on stderr, exit 1."""
    try:
        app()
    except ConfigurationError as exc:
        sys.stderr.write(f"smsq: {exc}\n")
        raise SystemExit(EXIT_FAILURE) from None


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILURE", "app", "build_request", "main"]
