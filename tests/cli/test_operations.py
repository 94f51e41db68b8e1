"""`smsq doctor`, `contacts import`, `optout`/`optouts`, `credits` and `metrics`, against the sandbox."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import httpx
from sqlmodel import select
from typer.testing import CliRunner

from models.db import transaction
from models.tables import Suppression
from tests.cli.support import SMSQ, cli_settings, connections_file, env_for, free_port
from tests.conftest import ROOT, wait_until
from worker.cli.main import app
from worker.metrics.server import serve_metrics
from worker.submit.dispatch import submit_job

runner = CliRunner()


def smsq(*args: str):
    return runner.invoke(app, list(args))


# --- doctor ---------------------------------------------------------------------------------------


# The rows for workers, queues, beat, backlog and the poll budget: tests/cli/test_doctor.py.


def test_doctor_fails_on_an_unmigrated_database_and_an_unreachable_provider(
    runtime_factory, sandbox, redis_client, tmp_path
):
    dead = f"http://127.0.0.1:{free_port()}/rest/v1"
    runtime_factory(cli_settings(sandbox, f"sqlite:///{tmp_path / 'empty.db'}", provider_url=dead))

    result = smsq("doctor")
    report = json.loads(smsq("doctor", "--json").stdout)

    assert result.exit_code == 1
    status = {check["check"]: check["status"] for check in report["checks"]}
    assert status["database"] == "fail" and status["provider default"] == "fail"
    assert "run `smsq migrate`" in {c["check"]: c["detail"] for c in report["checks"]}["database"]
    assert "fail" in result.stdout


def test_doctor_reports_a_connection_without_credentials(runtime_factory, sandbox, sqlite_url, redis_client):
    runtime_factory(cli_settings(sandbox, sqlite_url, provider="sendmode", provider_api_key=""))

    result = smsq("doctor", "--json")

    assert result.exit_code == 1
    checks = json.loads(result.stdout)["checks"]
    assert {"check": "settings", "status": "fail",
            "detail": "connection 'default': provider sendmode needs an api_key (SMSQ_PROVIDER_API_KEY)"} in checks  # fmt: skip


# --- contacts import ------------------------------------------------------------------------------


def write_csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "contacts.csv"
    path.write_text(text)
    return path


def test_contacts_import_imports_good_rows_and_reports_each_refusal(cli_runtime, sandbox, tmp_path):
    path = write_csv(
        tmp_path,
        "mobilenumber,firstname,surname,dateofbirth\n"
        "+4917612340011,Ada,Lovelace,10/12/1815\n"
        "12ab,Bad,Number,\n"
        "+4917612340012,Alan,Turing,1912-06-23\n"
        "\n"
        "+4917612340013,Grace,Hopper,\n",
    )

    result = smsq("contacts", "import", str(path), "--group", "vip", "--connection", "sendmode", "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["rows"], report["imported"]) == (4, 2)
    refused = {row["line"]: row for row in report["refused"]}
    assert set(refused) == {3, 4}
    assert refused[3]["field"] == "INVALID_MOBILE_NUMBER (11)" and refused[3]["mobilenumber"] == "12ab"
    assert refused[4]["field"] == "dateofbirth" and "dd/mm/yyyy" in refused[4]["message"]
    (groups,) = sandbox.state.contacts().values()
    assert [c["firstname"] for c in groups["vip"]] == ["Ada", "Grace"]


def test_contacts_import_of_clean_rows_exits_0_with_a_table(cli_runtime, sandbox, tmp_path):
    path = write_csv(tmp_path, "MobileNumber, firstname\n+4917612340021,Ann\n+4917612340022,Bob\n")

    result = smsq("contacts", "import", str(path), "--group", "g1", "--connection", "sendmode")

    assert result.exit_code == 0, result.output
    assert "imported 2 of 2 contact(s) into group 'g1'" in result.stdout
    assert len(sandbox.state.calls(path_prefix="/v2/import")) == 2


def test_contacts_import_refuses_bad_files_and_non_sendmode_connections(cli_runtime, tmp_path):
    no_number = write_csv(tmp_path, "firstname\nAda\n")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("mobilenumber,shoe_size\n+4917612340011,42\n")

    results = [
        smsq("contacts", "import", str(no_number), "--group", "g", "--connection", "sendmode"),
        smsq("contacts", "import", str(unknown), "--group", "g", "--connection", "sendmode"),
        smsq("contacts", "import", str(tmp_path / "missing.csv"), "--group", "g", "--connection", "sendmode"),
        smsq("contacts", "import", str(unknown), "--group", "g"),
    ]

    assert [r.exit_code for r in results] == [2, 2, 2, 2]
    assert "must name a mobilenumber column" in results[0].stderr
    assert "unknown column(s) shoe_size" in results[1].stderr
    assert "No such file" in results[2].stderr
    assert "needs a Sendmode connection; 'default' is retarus" in results[3].stderr


# --- optout and the suppression list --------------------------------------------------------------


def suppressed(rt) -> dict[str, str | None]:
    with transaction(rt.sessions) as session:
        return {row.dst: row.reason for row in session.exec(select(Suppression))}


def test_optout_on_sendmode_opts_out_there_and_locally(cli_runtime, sandbox):
    result = smsq(
        "optout", "017612340099", "--reason", "asked by phone", "--connection", "sendmode", "--json"
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "number": "+4917612340099",
        "suppressed": True,
        "sendmode": "opted out",
    }
    assert suppressed(cli_runtime) == {"+4917612340099": "asked by phone"}
    (optouts,) = sandbox.state.optouts().values()
    assert [entry["mobilenumber"] for entry in optouts] == ["+4917612340099"]


def test_optout_on_other_connections_is_local_only_and_listed(cli_runtime, sandbox):
    result = smsq("optout", "+4917612340098")
    listing = json.loads(smsq("optouts", "--json").stdout)

    assert result.exit_code == 0
    assert "+4917612340098 is on the local suppression list" in result.stdout
    assert sandbox.state.optouts() == {}
    assert [entry["number"] for entry in listing] == ["+4917612340098"]


def test_optout_of_an_invalid_number_exits_2(cli_runtime):
    result = smsq("optout", "12")

    assert result.exit_code == 2
    assert result.stderr == "error: number: not a valid phone number for region DE\n"
    assert suppressed(cli_runtime) == {}


def test_a_suppressed_number_is_skipped_by_a_real_worker(cli_runtime, sandbox, processes):
    # Given a number on the suppression list
    assert smsq("optout", "+4917612340097").exit_code == 0
    # When a job to it and to another number goes through a worker process
    processes.worker(env_for(cli_runtime.settings))
    job_id = smsq("send", "--to", "+4917612340097", "--to", "+4917612340096", "--text", "hi").stdout.strip()

    def recipients():
        data = json.loads(smsq("status", job_id, "--json").stdout)
        return data if data["state"] == "submitted" else None

    data = wait_until(recipients, timeout_s=30, what="the job to be submitted")
    # Then the suppressed recipient ends `suppressed` and never reaches the provider
    outcomes = {row["dst"]: row["outcome"] for row in data["recipients"]}
    assert outcomes["+4917612340097"] == "suppressed"
    assert outcomes["+4917612340096"] == "pending"
    sent = [r["dst"] for job in sandbox.state.jobs() for r in job.snapshot(sandbox.state.now())["recipients"]]
    assert "+4917612340096" in sent and "+4917612340097" not in sent


# --- credits --------------------------------------------------------------------------------------


def test_credits_shows_the_balance_and_the_credit_pause(cli_runtime, sandbox):
    fresh = json.loads(smsq("credits", "--connection", "sendmode", "--json").stdout)
    sandbox.state.set_credits("sandbox-key", 1.0)
    job_id = smsq(
        "send", "--to", "+4917612340031", "--to", "+4917612340032", "--text", "hi", "-c", "sendmode"
    )
    low = smsq("credits", "--connection", "sendmode", "--json")

    assert fresh == {"connection": "sendmode", "balance": 1000.0, "waiting_parts": 0, "paused": None}
    report = json.loads(low.stdout)
    assert (report["balance"], report["waiting_parts"]) == (1.0, 2)
    assert report["paused"].startswith("insufficient Sendmode credits: balance 1")
    status = json.loads(smsq("status", job_id.stdout.strip(), "--json").stdout)
    assert status["state"] == "queued" and status["paused"] == report["paused"]
    (row,) = json.loads(smsq("jobs", "--json").stdout)
    assert row["paused"] == report["paused"]
    assert "paused: insufficient" in smsq("jobs").stdout


def test_credits_needs_a_sendmode_connection(cli_runtime):
    result = smsq("credits")

    assert result.exit_code == 2
    assert result.stderr == "error: connection: credits needs a Sendmode connection; 'default' is retarus\n"


# --- metrics --------------------------------------------------------------------------------------


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def test_metrics_expose_jobs_recipients_queues_and_provider_calls(cli_runtime):
    for text in ("one", "two"):
        smsq("send", "--to", "+4917612340041", "--to", "+4917612340042", "--text", text)
    first = smsq("send", "--to", "+4917612340043", "--text", "three").stdout.strip()
    assert submit_job(first, cli_runtime).kind == "sent"
    port = free_port()
    server, thread = serve_metrics(cli_runtime, port=port, addr="127.0.0.1")
    try:
        text = scrape(port)
    finally:
        server.shutdown()
        thread.join(5)

    assert "smsq_database_up 1.0" in text
    assert 'smsq_jobs{connection="default",state="submitted"} 3.0' in text
    assert 'smsq_open_recipients{connection="default",outcome="pending"} 5.0' in text
    # three jobs enqueued, one drain wake-up waiting for their connection
    assert 'smsq_broker_queue_length{queue="smsq.send"} 1.0' in text
    assert 'smsq_connection_paused{connection="sendmode"} 0.0' in text
    assert 'smsq_provider_calls_total{code="201",connection="default",operation="send_job"}' in text


def test_smsq_metrics_serves_until_interrupted(cli_runtime):
    port = free_port()
    env = env_for(cli_runtime.settings)
    proc = subprocess.Popen(
        [SMSQ, "metrics", "--port", str(port), "--host", "127.0.0.1"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        text = wait_until(lambda: _try_scrape(port), timeout_s=20, what="smsq metrics to answer")
        assert "smsq_database_up 1.0" in text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _try_scrape(port: int) -> str | None:
    try:
        return scrape(port)
    except httpx.HTTPError:
        time.sleep(0.1)
        return None


def test_connections_file_fixture_is_used(cli_runtime, tmp_path, sandbox):
    assert connections_file(tmp_path, sandbox).exists()
    assert set(cli_runtime.connections) == {"default", "sendmode", "http-simple"}


def test_a_worker_serves_its_counters_when_smsq_metrics_port_is_set(cli_runtime, sandbox, sqlite_url):
    from worker.metrics import server as metrics_server

    port = free_port()
    without = cli_settings(sandbox, sqlite_url)
    with_port = cli_settings(sandbox, sqlite_url, metrics_port=port)

    assert metrics_server.serve_worker_metrics(without, cli_runtime) is False
    assert metrics_server.serve_worker_metrics(with_port, cli_runtime) is True
    try:
        text = wait_until(lambda: _try_scrape(port), timeout_s=10, what="the worker metrics")
        assert "# TYPE smsq_provider_calls_total counter" in text
        assert "smsq_jobs" not in text  # database gauges stay with `smsq metrics`
        assert metrics_server.serve_worker_metrics(with_port, cli_runtime) is False  # once per process
    finally:
        metrics_server._worker_server.shutdown()
        metrics_server._worker_server = None
