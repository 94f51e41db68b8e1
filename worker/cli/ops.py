"""Operator commands of `smsq`: contacts import, optout/optouts and credits (doctor: worker/cli/doctor.py).

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
from worker.cli.doctor import short_error
from worker.errors import (
    ProviderError,
    ProviderThrottled,
    RateLimitExceeded,
    RetryableProviderError,
    SmsError,
)
from worker.runtime import Runtime

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
ConnectionOption = Annotated[str, typer.Option("--connection", "-c", help="Provider connection name.")]

#: How often one contact row is tried when the provider answers a retryable error.
IMPORT_ATTEMPTS = 3
#: Longest single wait for the rate limiter or a Retry-After during an import.
MAX_WAIT_S = 60.0


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
            result["sendmode"] = f"failed: {short_error(exc)}"
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
        fail(f"cannot read the suppression list: {short_error(exc)}")
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
        fail(f"Sendmode ({connection}): {short_error(exc)}")
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
        err_console.print(f"warning: cannot compare with the waiting jobs: {short_error(exc)}")
    if as_json:
        print_json(result)
        return
    console.print(f"connection {connection}: balance {balance}")
    if result["waiting_parts"] is not None:
        console.print(f"SMS parts waiting: {result['waiting_parts']}")
    console.print(f"paused: {result['paused']}" if result["paused"] else "not paused")
