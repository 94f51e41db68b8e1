"""`smsq send`, `status`, `jobs` and `migrate` against a real SQLite file, Redis db 13 and the sandbox."""

from __future__ import annotations

import base64
import json
from datetime import timedelta, timezone
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from models.db import transaction, utc
from models.tables import Job, Recipient
from tests.cli.support import env_for, run_smsq
from worker.cli.main import app
from worker.queues import Queue
from worker.runtime import Runtime
from worker.submit.dispatch import submit_job

runner = CliRunner()
NUMBER = "+4917612345678"


def smsq(*args: str) -> Any:
    return runner.invoke(app, list(args))


def stored(rt: Runtime) -> tuple[list[Job], list[Recipient]]:
    with transaction(rt.sessions) as session:
        return list(session.exec(select(Job))), list(session.exec(select(Recipient)))


def queued_messages(redis_client: Any) -> int:
    return sum(redis_client.llen(queue.value) for queue in Queue)


def test_send_prints_the_job_id_stores_the_job_and_wakes_its_connection(cli_runtime, redis_client):
    result = smsq("send", "--to", NUMBER, "--to", "017612345679", "--text", "Hello there")

    assert result.exit_code == 0, result.output
    job_id = result.stdout.strip()
    jobs, recipients = stored(cli_runtime)
    assert [job.id for job in jobs] == [job_id]
    assert sorted(r.dst for r in recipients) == [NUMBER, "+4917612345679"]
    # The broker holds one drain wake-up for the connection: its name only, no text, no number
    assert redis_client.llen(Queue.SEND.value) == 1
    message = json.loads(redis_client.lindex(Queue.SEND.value, 0))
    body = base64.b64decode(message["body"]).decode()
    assert message["headers"]["task"] == "smsq.drain" and json.loads(body)[0] == ["default"]
    for text in (json.dumps(message), body):
        assert "Hello there" not in text and "12345678" not in text
    # A second send while that wake-up waits adds no message
    assert smsq("send", "--to", NUMBER, "--text", "Again").exit_code == 0
    assert redis_client.llen(Queue.SEND.value) == 1


def test_send_json_gives_an_object_with_the_id(cli_runtime):
    result = smsq("send", "--to", NUMBER, "--text", "Hi", "--json")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == stored(cli_runtime)[0][0].id


def test_send_passes_every_option_to_the_job(cli_runtime, redis_client):
    result = smsq(
        "send", "--to", NUMBER, "--text", "Options", "--src", "ACME", "--qos", "express",
        "--job-period", "2030-01-01T10:00:00.250+01:00", "--validity-min", "60",
        "--blackout", "2030-01-01T20:00Z/2030-01-02T07:00Z", "--blackout", "2030-01-03T20:00Z/2030-01-04T07:00Z",
        "--status-requested", "--max-parts", "3", "--encoding", "UTF-16", "--billcode", "cost-42",
        "--customer-ref", "order-7", "--json",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    options = stored(cli_runtime)[0][0].request["options"]
    assert options["src"] == "ACME"
    assert options["qos"] == "EXPRESS"
    assert options["jobPeriod"].startswith("2030-01-01T10:00:00.250+01:00")
    assert options["validityMin"] == 60
    assert options["blackoutPeriods"] == [
        "2030-01-01T20:00Z/2030-01-02T07:00Z",
        "2030-01-03T20:00Z/2030-01-04T07:00Z",
    ]
    assert options["statusRequested"] is True
    assert options["maxParts"] == 3
    assert options["encoding"] == "UTF-16"
    assert options["billcode"] == "cost-42"
    assert options["customerRef"] == "order-7"
    assert redis_client.llen(Queue.EXPRESS.value) == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--to", "12"], "error: messages.0.recipients.0.dst: not a valid phone number for region DE"),
        (
            ["--to", NUMBER, "--validity-min", "3"],
            "error: options.validityMin: must be 0 or between 5 and 2880",
        ),
        (["--to", NUMBER, "--max-parts", "21"], "error: options.maxParts: must be between 1 and 20"),
        (
            ["--to", NUMBER, "--job-period", "2030-01-01T10:00"],
            "error: options.jobPeriod: must carry a UTC offset",
        ),
        (
            ["--to", NUMBER, "--blackout", "2030-01-02T00:00Z/2030-01-01T00:00Z"],
            "error: options.blackoutPeriods.0",
        ),
        (["--to", NUMBER, "--billcode", "x" * 71], "error: options.billcode: must be at most 70 characters"),
        (["--to", NUMBER, "--qos", "urgent"], "error: options.qos: must be express or normal"),
        (["--to", NUMBER, "--connection", "nope"], "error: connection: unknown connection 'nope'"),
    ],
)
def test_a_bad_request_exits_2_with_one_line_and_stores_and_queues_nothing(
    cli_runtime, redis_client, args, line
):
    result = smsq("send", "--text", "Hello", *args)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(line)
    assert stored(cli_runtime) == ([], [])
    assert queued_messages(redis_client) == 0


def test_the_same_idempotency_key_gives_the_same_job(cli_runtime):
    first = smsq("send", "--to", NUMBER, "--text", "Once", "--idempotency-key", "k-1")
    second = smsq("send", "--to", NUMBER, "--text", "Once", "--idempotency-key", "k-1")

    assert first.stdout == second.stdout
    assert len(stored(cli_runtime)[0]) == 1


def test_status_json_has_the_documented_shape_and_follows_the_job(cli_runtime):
    job_id = smsq("send", "--to", NUMBER, "--text", "Track me").stdout.strip()

    before = json.loads(smsq("status", job_id, "--json").stdout)
    assert submit_job(job_id, cli_runtime).kind == "sent"
    after = json.loads(smsq("status", job_id, "--json").stdout)

    keys = {"id", "state", "connection", "provider", "provider_job_id", "created_at", "submitted_at",
            "finished_at", "reason", "recipients"}  # fmt: skip
    assert keys <= set(after)
    assert set(after["recipients"][0]) >= {"dst", "outcome", "process_status", "status", "reason", "sms_id",
                                           "sent_ts", "finished_ts"}  # fmt: skip
    assert (before["state"], before["provider_job_id"]) == ("queued", None)
    assert after["state"] == "submitted"
    assert after["provider_job_id"] is not None
    assert after["recipients"][0]["dst"] == NUMBER
    assert after["submitted_at"].endswith("Z")


def test_status_prints_a_table_of_recipients(cli_runtime):
    job_id = smsq("send", "--to", NUMBER, "--text", "Table").stdout.strip()

    result = smsq("status", job_id)

    assert result.exit_code == 0
    assert job_id in result.stdout
    assert NUMBER in result.stdout
    assert "pending" in result.stdout


def test_status_of_an_unknown_job_exits_1_with_one_line(cli_runtime):
    result = smsq("status", "00000000-0000-0000-0000-000000000000")

    assert result.exit_code == 1
    assert result.stderr == "error: no job with id '00000000-0000-0000-0000-000000000000'\n"


def test_jobs_filters_by_state_connection_and_time(cli_runtime):
    first = smsq("send", "--to", NUMBER, "--text", "One").stdout.strip()
    second = smsq("send", "--to", NUMBER, "--text", "Two", "--connection", "sendmode").stdout.strip()
    with transaction(cli_runtime.sessions) as session:
        created, created_second = (utc(session.get(Job, job_id).created_at) for job_id in (first, second))  # type: ignore[union-attr]
        assert created is not None and created_second is not None
        between = created + (created_second - created) / 2

    def ids(*args: str) -> list[str]:
        result = smsq("jobs", "--json", *args)
        assert result.exit_code == 0, result.output
        return [row["id"] for row in json.loads(result.stdout)]

    assert ids() == [second, first]
    assert ids("--connection", "sendmode") == [second]
    assert ids("--state", "queued", "--limit", "1") == [second]
    assert ids("--state", "finished") == []
    assert ids("--until", created.isoformat().replace("+00:00", "Z")) == []
    in_paris = between.astimezone(timezone(timedelta(hours=1))).isoformat()
    assert ids("--until", in_paris) == [first]
    assert ids("--since", in_paris) == [second]
    assert ids("--since", "2000-01-01T00:00:00+01:00") == [second, first]
    table = smsq("jobs").stdout
    assert first in table and "sendmode" in table


def test_jobs_refuses_bad_filters_with_exit_2(cli_runtime):
    bad_time = smsq("jobs", "--since", "yesterday")
    bad_state = smsq("jobs", "--state", "sleeping")

    assert bad_time.exit_code == 2 and bad_time.stderr.startswith(
        "error: --since: must be an ISO-8601 timestamp"
    )
    assert bad_state.exit_code == 2 and bad_state.stderr.startswith(
        "error: --state: must be one of scheduled"
    )


def test_migrate_is_safe_to_run_twice(tmp_path, sandbox):
    # PostgreSQL: tests/ops/test_compose.py runs the compose file's `smsq migrate` against it.
    from models.migrate import current_revision, head_revision
    from tests.cli.support import cli_settings

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    env = env_for(cli_settings(sandbox, url))
    for _ in range(2):
        result = run_smsq(["migrate"], env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"database at revision {head_revision()} (head)"
    assert current_revision(url) == head_revision()


def test_every_command_has_help():
    for command in (["send"], ["status"], ["jobs"], ["migrate"], ["sandbox"], ["doctor"], ["contacts", "import"],
                    ["optout"], ["optouts"], ["credits"], ["metrics"], ["demo"]):  # fmt: skip
        result = smsq(*command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout
