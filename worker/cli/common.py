"""What every `smsq` command shares: the consoles, the runtime, one-line errors and JSON output.

Exit codes: 0 success; 1 an operational failure (unknown job, a failed check, a refused row, a
provider or database error, bad settings); 2 bad input on the command line (a request that breaks a
rule, an unknown connection, a malformed file). Errors are one line on stderr, `error: <what>`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import typer
from rich.console import Console

from models.intervals import parse_datetime
from worker.errors import ConfigurationError, InvalidRequest, SmsError
from worker.runtime import Runtime, get_runtime

EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2

#: Tables and progress for people; machine output (--json) goes to stdout with plain `print`.
#: Piped output (files, CI logs) gets wide tables rather than rich's 80-column default.
PIPED_WIDTH = 160
console = Console(highlight=False, width=None if sys.stdout.isatty() else PIPED_WIDTH)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print `error: <message>` as one line on stderr and exit with `code`."""
    line = " ".join(message.split())
    sys.stderr.write(f"error: {line}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def runtime(*, check_connections: bool = True) -> Runtime:
    """The process runtime (built from the SMSQ_ environment); bad settings exit 1 with their reason.

    Every command fails fast on bad provider settings or a bad connections file, except `doctor`, whose
    job is to report them.
    """
    try:
        rt = get_runtime()
        if check_connections:
            _ = rt.connections
        return rt
    except ConfigurationError as exc:
        fail(f"configuration: {exc}")


@contextmanager
def handled() -> Iterator[None]:
    """Turn smsq's own errors into one-line messages and exit codes."""
    try:
        yield
    except InvalidRequest as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except ConfigurationError as exc:
        fail(f"configuration: {exc}")
    except SmsError as exc:
        fail(str(exc))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def parse_time_option(value: str | None, option: str) -> datetime | None:
    """An ISO-8601 time with offset from the command line; a bad one exits 2 naming the option."""
    if value is None:
        return None
    try:
        # In UTC: SQLite stores times without their offset, as UTC, and compares them as text.
        return parse_datetime(value).astimezone(UTC)
    except ValueError as exc:
        fail(f"{option}: {exc}", EXIT_BAD_INPUT)


def connection_or_exit(rt: Runtime, name: str) -> None:
    """Exit 2 when `name` is not a configured connection (1 when the settings themselves are bad)."""
    try:
        connections = rt.connections
    except ConfigurationError as exc:
        fail(f"configuration: {exc}")
    if name not in connections:
        fail(
            f"connection: unknown connection {name!r}; configured: {', '.join(sorted(connections))}",
            EXIT_BAD_INPUT,
        )
