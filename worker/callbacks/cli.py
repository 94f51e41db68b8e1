"""The `smsq send` options of a job's callback (kept here so the command's module stays short)."""

from __future__ import annotations

from typing import Annotated

import typer

CallbackUrlOption = Annotated[
    str | None, typer.Option("--callback-url", help="Signed webhook for outcome events (https).")
]
CallbackTaskOption = Annotated[
    str | None, typer.Option("--callback-task", help="Your Celery task for outcome events: NAME@QUEUE.")
]
CallbackEventsOption = Annotated[str, typer.Option("--callback-events", help="final or all.")]
