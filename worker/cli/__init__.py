"""The `smsq` command line: one module per group of commands, the demo and process control."""

from __future__ import annotations

from worker.cli.main import main

__all__ = ["main"]
