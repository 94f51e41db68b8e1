"""`--help` shows the choices of the enum-valued options (`send --qos`, `send --encoding`, `jobs --state`).

The choices come from the enums the producer validates against (models.enums), so a value added there shows
up in --help; these tests also pin the spelling an operator types (lower case, except the encodings, which
are shown as the provider spells them). No runtime is needed: --help exits before any setting is read.
"""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from models.enums import Encoding, JobState, Qos
from worker.cli.main import app

runner = CliRunner()
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def help_text(*command: str) -> str:
    # Wide enough that rich does not wrap or cut the longest choice list (jobs --state).
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300", "TERMINAL_WIDTH": "300"})
    assert result.exit_code == 0, result.output
    return ANSI.sub("", result.stdout)


def option_row(text: str, option: str) -> str:
    """The --help table row of `option` (the line naming it as a whole word)."""
    rows = [line for line in text.splitlines() if re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", line)]
    assert len(rows) == 1, f"expected one row for {option}:\n{text}"
    return rows[0]


def shown_choices(row: str) -> list[str]:
    match = re.search(r"\[([^\]\s]+\|[^\]\s]+)\]", row)
    assert match, f"no [a|b|...] choices in: {row!r}"
    return match.group(1).split("|")


def test_send_help_lists_the_qos_choices():
    row = option_row(help_text("send"), "--qos")
    assert "[express|normal]" in row
    assert shown_choices(row) == [q.value.lower() for q in Qos]


def test_send_help_lists_the_encodings():
    row = option_row(help_text("send"), "--encoding")
    choices = shown_choices(row)
    assert choices == [e.value for e in Encoding]
    assert {"STANDARD", "UTF-16"} <= set(choices)


def test_jobs_help_lists_every_job_state():
    row = option_row(help_text("jobs"), "--state")
    choices = shown_choices(row)
    assert choices == [s.value for s in JobState]
    assert {"scheduled", "queued", "submitting", "submitted", "finished", "failed"} <= set(choices)


@pytest.mark.parametrize(
    ("command", "option"),
    [(("send",), "--to"), (("send",), "--text"), (("jobs",), "--connection"), (("jobs",), "--limit")],
)
def test_free_form_options_show_no_choice_list(command, option):
    # The choice list is the enum options' own: a plain option keeps its type as the metavar.
    row = option_row(help_text(*command), option)
    assert not re.search(r"\[[^\]\s]+\|[^\]\s]+\]", row), row
