"""`smsq purge --older-than 30d [--export FILE.jsonl|.csv] [--batch N] [--dry-run] [--json]`.

Deletes final jobs that finished more than the given age ago (on the database's clock), with their
recipients, their delivered or failed callback events and the submissions left without recipients, in
batches of `--batch` jobs, each its own transaction, until none is left (worker/retention.py). Jobs that are
not final, or whose callback events are still pending, are never touched. `--export` appends every job to
the file before its batch is deleted (JSON lines: one job with its recipients per line; CSV: one row per
recipient). `--dry-run` counts what would go and deletes nothing.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from worker.cli.common import EXIT_BAD_INPUT, console, err_console, fail, handled, print_json, runtime
from worker.retention import DEFAULT_BATCH, PurgeReport, count_purgeable
from worker.retention import purge as run_purge

EXPORT_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*$", re.IGNORECASE)
_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "": 86400.0}


def parse_age(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `3600s`, or a plain number of days; exits 2 on anything else."""
    match = _AGE.match(text)
    if match is None:
        fail(f"--older-than: expected an age like 30d, 12h, 90m or 3600s, got {text!r}", EXIT_BAD_INPUT)
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2).lower()])


OlderThanOption = Annotated[
    str,
    typer.Option(
        "--older-than", help="Delete final jobs finished longer ago than this: 30d, 12h, 90m, 3600s."
    ),
]
ExportOption = Annotated[
    Path | None,
    typer.Option("--export", help="Append each job to this file before deleting it (.jsonl or .csv)."),
]
BatchOption = Annotated[
    int, typer.Option("--batch", min=1, max=100_000, help="Jobs per batch (one transaction).")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]


def purge(
    older_than: OlderThanOption,
    export: ExportOption = None,
    batch: BatchOption = DEFAULT_BATCH,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Delete final jobs older than an age, with their recipients and submissions (optionally exported)."""
    age = parse_age(older_than)
    if export is not None and export.suffix.lower() not in EXPORT_SUFFIXES:
        fail(f"--export: the file must end in .jsonl or .csv, got {export.name!r}", EXIT_BAD_INPUT)
    rt = runtime(check_connections=False)
    with handled():
        cutoff = rt.clock.now() - age
        if dry_run:
            report = count_purgeable(rt.sessions, cutoff)
        else:

            def progress(step: PurgeReport) -> None:
                if not as_json:
                    err_console.print(f"batch: {step.jobs} jobs, {step.recipients} recipients deleted")

            report = run_purge(rt.sessions, cutoff, batch=batch, export=export, on_batch=progress)
    result = {"cutoff": cutoff.isoformat(), "dry_run": dry_run, **report.as_dict()}
    if export is not None:
        result["export"] = str(export)
    if as_json:
        print_json(result)
        return
    verb = "would delete" if dry_run else "deleted"
    console.print(
        f"{verb} {report.jobs} jobs and {report.recipients} recipients finished before {cutoff.isoformat()}"
        + ("" if dry_run else f", {report.submissions} submissions, {report.callbacks} callback events")
        + ("" if dry_run else f" in {report.batches} batches")
        + (f"; exported to {export}" if export is not None and not dry_run else "")
    )
