"""The Sendmode low-credit pause (worker/credits.py) against the sandbox, Redis db 13 and SQLite."""

from __future__ import annotations

from decimal import Decimal

from typer.testing import CliRunner

from worker.cli.main import app
from worker.policy.credits import (
    PAUSE_TTL_S,
    check_credits,
    credit_pause,
    evaluate,
    forget_balance,
    pause_key,
    read_balance,
)
from worker.submit.dispatch import submit_job

runner = CliRunner()


def send(*numbers: str, text: str = "hi", connection: str = "sendmode") -> str:
    args = ["send", "--text", text, "--connection", connection]
    for number in numbers:
        args += ["--to", number]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def credit_calls(sandbox) -> int:
    return len(sandbox.state.calls(path_prefix="/v2/credits"))


def test_other_providers_are_never_paused(cli_runtime, sandbox):
    send("+4917612340051", connection="default")

    assert credit_pause(cli_runtime, "default") is None
    assert credit_pause(cli_runtime, "http-simple") is None
    assert credit_calls(sandbox) == 0


def test_a_balance_below_the_waiting_parts_pauses_and_a_top_up_resumes(cli_runtime, sandbox, redis_client):
    long_text = "x" * 200  # two SMS parts per recipient
    send("+4917612340052", "+4917612340053", text=long_text)
    sandbox.state.set_credits("sandbox-key", 3.0)

    reason = credit_pause(cli_runtime, "sendmode")

    assert reason == (
        "insufficient Sendmode credits: balance 3 < 4 SMS parts waiting; sending resumes once the account is "
        "topped up"
    )
    assert 0 < redis_client.ttl(pause_key("sendmode")) <= PAUSE_TTL_S
    assert check_credits(cli_runtime, "sendmode") is False

    sandbox.state.set_credits("sandbox-key", 4.0)
    forget_balance(cli_runtime, "sendmode")

    assert credit_pause(cli_runtime, "sendmode") is None
    assert redis_client.exists(pause_key("sendmode")) == 0


def test_the_balance_is_read_once_per_cache_period_by_all_callers(cli_runtime, sandbox):
    send("+4917612340054")

    states = [evaluate(cli_runtime, "sendmode") for _ in range(5)]

    assert credit_calls(sandbox) == 1
    assert {state.balance for state in states} == {Decimal(1000)}
    assert read_balance(cli_runtime, "sendmode", max_age_s=0) == Decimal(1000)
    assert credit_calls(sandbox) == 2


def test_an_unreadable_balance_keeps_the_last_decision(cli_runtime, sandbox):
    send("+4917612340055")
    sandbox.state.set_credits("sandbox-key", 0.0)
    assert credit_pause(cli_runtime, "sendmode") is not None
    sandbox.state.fail_next(n=5, status=500, path_prefix="/v2/credits")
    forget_balance(cli_runtime, "sendmode")

    state = evaluate(cli_runtime, "sendmode")

    assert state.balance is None
    assert state.paused is not None


def test_a_paused_connection_keeps_its_jobs_queued_and_sends_after_a_top_up(cli_runtime, sandbox):
    # Given a Sendmode account that cannot pay for the waiting job
    job_id = send("+4917612340056", "+4917612340057")
    sandbox.state.set_credits("sandbox-key", 1.0)

    # When a worker tries to submit it, nothing is sent and the job stays queued
    result = submit_job(job_id, cli_runtime)
    status = runner.invoke(app, ["status", job_id, "--json"]).stdout

    assert result.kind == "paused" and result.wait_s > 0
    assert '"state": "queued"' in status and "insufficient Sendmode credits" in status
    assert sandbox.state.calls(path_prefix="/v2/send") == []

    # Then once the account is topped up (an operator checks with `smsq credits`), it is sent
    sandbox.state.set_credits("sandbox-key", 10.0)
    assert runner.invoke(app, ["credits", "--connection", "sendmode"]).exit_code == 0
    assert submit_job(job_id, cli_runtime).kind == "sent"
    assert len(sandbox.state.calls(path_prefix="/v2/send")) == 1
    assert '"state": "finished"' in runner.invoke(app, ["status", job_id, "--json"]).stdout
