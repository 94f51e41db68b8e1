"""`smsq send` under generated hostile flags: every case is either accepted (one job stored) or refused with
exit 2 and one line naming a field, with nothing stored or queued; never a traceback (issue 15)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func
from sqlmodel import select
from typer.testing import CliRunner

from models.db import transaction
from models.tables import Job
from worker.cli.main import app
from worker.queues import Queue

runner = CliRunner()

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "hi \ud800 there", "x" * 4000, "€" * 100, "\n\t", "a\x00b"]),
)
NUMBERS = st.one_of(
    st.sampled_from(["+4917612345678", "017612345678", "+1", "abc", "", "+491761234567890123456", "\x00"]),
    st.text(alphabet="+0123456789 -()", max_size=25),
)
FLAG_VALUES: dict[str, Any] = {
    "--src": st.one_of(
        st.sampled_from(["ACME", "A" * 12, "+4917612345678", "\x00", "é"]), st.text(max_size=15)
    ),
    "--qos": st.sampled_from(["express", "normal", "EXPRESS", "fast", ""]),
    "--job-period": st.sampled_from(
        ["2030-01-01T10:00Z", "2030-01-01T10:00:00+01:00", "9999-12-31T23:59Z", "yesterday", "2030-01-01", ""]
    ),
    "--validity-min": st.sampled_from(
        ["0", "5", "2880", "2881", "4", "-1", "3.5", "x", "99999999999999999999"]
    ),
    "--blackout": st.sampled_from(
        ["2030-01-01T20:00Z/2030-01-02T07:00Z", "2030-01-02T07:00Z/2030-01-01T20:00Z", "x/y", "/"]
    ),
    "--max-parts": st.sampled_from(["1", "20", "21", "0", "-5", "three"]),
    "--encoding": st.sampled_from(["STANDARD", "UTF-16", "utf-16", "LATIN1", ""]),
    "--billcode": st.one_of(st.text(max_size=80), st.just("b" * 71)),
    "--customer-ref": st.one_of(st.text(max_size=70), st.just("\x00")),
    "--idempotency-key": st.one_of(st.text(max_size=210), st.just("\x00"), st.just("")),
}


@st.composite
def send_args(draw: st.DrawFn) -> list[str]:
    args = ["send", "--text", draw(HOSTILE_TEXT)]
    for number in draw(st.lists(NUMBERS, min_size=0, max_size=3)):
        args += ["--to", number]
    for flag in draw(st.lists(st.sampled_from(sorted(FLAG_VALUES)), max_size=4, unique=True)):
        args += [flag, draw(FLAG_VALUES[flag])]
    if draw(st.booleans()):
        args.append("--status-requested")
    return args


def _jobs(rt: Any) -> int:
    with transaction(rt.sessions) as session:
        return int(session.exec(select(func.count()).select_from(Job)).one())


def test_hostile_send_flags_give_a_job_or_one_clear_error(cli_runtime: Any, redis_client: Any) -> None:
    seen = {"accepted": 0, "refused": 0}

    @settings(max_examples=1000, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
    @given(send_args())
    def case(args: list[str]) -> None:
        before = _jobs(cli_runtime)
        queued_before = redis_client.llen(Queue.SEND.value) + redis_client.llen(Queue.EXPRESS.value)
        result = runner.invoke(app, args)
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        if result.exit_code == 0:
            seen["accepted"] += 1
            assert _jobs(cli_runtime) == before + 1
            return
        seen["refused"] += 1
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert lines and "Traceback" not in result.output
        assert _jobs(cli_runtime) == before  # nothing stored
        queued = redis_client.llen(Queue.SEND.value) + redis_client.llen(Queue.EXPRESS.value)
        assert queued == queued_before  # nothing queued

    case()
    assert seen["accepted"] > 10 and seen["refused"] > 100
