"""Retarus HTTP Simple over real HTTP: sends by query, urlencoded and multipart; reports; errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.sandbox.support import PASSWORD, USER, Sim

AUTH = {"user": USER, "pass": PASSWORD}
JOB_ID = re.compile(r"J\.\d{8}-\d{6}\.\d{3}-[A-Za-z0-9]{18}")


def _send(sim: Sim, how: str, params: dict[str, str]) -> Any:
    client = sim.simple()
    if how == "query":
        return client.post("/sms", params=params)
    if how == "form":
        return client.post("/sms", data=params)
    if how == "multipart":
        return client.post("/sms", files={k: (None, v) for k, v in params.items()})
    # query for the credentials, form body for the message
    return client.post("/sms", params=AUTH, data={k: v for k, v in params.items() if k not in AUTH})


@pytest.mark.parametrize("how", ["query", "form", "multipart", "query+form"])
def test_send_answers_201_with_the_job_id_as_text(sim: Sim, how: str) -> None:
    response = _send(sim, how, {**AUTH, "dst": "+4917600000000", "msg": "Grüße"})

    assert response.status_code == 201
    assert response.headers["content-type"].startswith("text/plain")
    assert JOB_ID.fullmatch(response.text)
    [job] = sim.state.jobs()
    assert job.job_id == response.text and len(job.recipients) == 1 and job.api == "httpsimple"


def test_report_follows_the_recipient_state(sim: Sim) -> None:
    job_id = _send(sim, "form", {**AUTH, "dst": "+4917600000000", "msg": "hi", "dn": "true"}).text
    plain = _send(sim, "form", {**AUTH, "dst": "+4917600000000", "msg": "hi"}).text

    def report(job: str) -> str:
        response = sim.simple().get("/reports", params={**AUTH, "jobid": job})
        assert response.status_code == 200
        return response.text

    assert report(job_id) == report(plain) == "OPEN"
    sim.clock.advance(2)
    assert report(job_id) == "RUNNING"  # dn=true: a delivery notification is awaited
    assert report(plain) == "DONE SUC_ACC"  # dn=false (the default): no RUNNING, SUC_ACC at once
    sim.clock.advance(3)
    assert report(job_id) == "DONE SUC_FIN"


@pytest.mark.parametrize(("dn", "expected"), [("true", "DONE FAILED_FIN"), ("false", "DONE SUC_ACC")])
def test_dn_decides_failed_fin(sim: Sim, dn: str, expected: str) -> None:
    # Change list 13 / issue: FAILED_FIN needs a delivery notification; the sandbox no longer ignores dn.
    job_id = _send(sim, "form", {**AUTH, "dst": "+4917600000002", "msg": "hi", "dn": dn}).text
    sim.clock.advance(10)
    assert sim.simple().get("/reports", params={**AUTH, "jobid": job_id}).text == expected


def test_optional_parameters_reach_the_job(sim: Sim) -> None:
    params = {**AUTH, "dst": "+4917600000002", "msg": "hi", "src": "Shop", "bc": "cc-1", "dn": "true",
              "qos": "express", "ref": "row-42"}  # fmt: skip
    job_id = _send(sim, "form", params).text

    report = sim.retarus().get(f"/jobs/{job_id}").json()
    assert (report["src"], report["billcode"], report["statusRequested"], report["qos"]) == (
        "Shop", "cc-1", True, "EXPRESS",
    )  # fmt: skip
    [recipient] = sim.retarus().get("/sms", params={"jobId": job_id}).json()
    assert recipient["customerRef"] == "row-42"
    sim.clock.advance(5)
    assert sim.simple().get("/reports", params={**AUTH, "jobid": job_id}).text == "DONE FAILED_FIN"


def test_delivery_notification_gives_suc_fin(sim: Sim) -> None:
    job_id = _send(sim, "query", {**AUTH, "dst": "+4917600000000", "msg": "hi", "dn": "true"}).text
    sim.clock.advance(5)

    assert sim.simple().get("/reports", params={**AUTH, "jobid": job_id}).text == "DONE SUC_FIN"


@pytest.mark.parametrize(
    "params",
    [
        {"user": USER, "pass": "wrong", "dst": "+491", "msg": "x"},
        {"user": "nobody", "pass": PASSWORD, "dst": "+491", "msg": "x"},
        {"dst": "+491", "msg": "x"},
    ],
)
def test_wrong_credentials_are_401(sim: Sim, params: dict[str, str]) -> None:
    response = _send(sim, "form", params)

    assert response.status_code == 401
    assert sim.state.jobs() == []


def test_report_with_wrong_credentials_is_401(sim: Sim) -> None:
    job_id = _send(sim, "form", {**AUTH, "dst": "+4917600000000", "msg": "hi"}).text

    assert (
        sim.simple().get("/reports", params={"user": USER, "pass": "x", "jobid": job_id}).status_code == 401
    )


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"msg": "x"}, 400),
        ({"dst": "+4917600000000"}, 400),
        ({"dst": "+4917600000000", "msg": ""}, 400),
        ({"dst": "+4917600000000", "msg": "x", "dn": "maybe"}, 400),
        ({"dst": "+4917600000000", "msg": "x", "qos": "FAST"}, 400),
    ],
)
def test_bad_sends_are_400_text(sim: Sim, params: dict[str, str], status: int) -> None:
    response = _send(sim, "form", {**AUTH, **params})

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain") and response.text
    assert sim.state.jobs() == []


def test_unknown_or_missing_job_id_on_reports(sim: Sim) -> None:
    client = sim.simple()

    assert (
        client.get(
            "/reports", params={**AUTH, "jobid": "J.20300101-120000.000-AAAAAAAAAAAAAAAAAA"}
        ).status_code
        == 400  # seed 002 lists 200/400/401/405/500 only: no 404
    )
    assert client.get("/reports", params=AUTH).status_code == 400


def test_http_simple_jobs_live_in_the_primary_data_center(sim: Sim) -> None:
    job_id = _send(sim, "form", {**AUTH, "dst": "+4917600000000", "msg": "hi"}).text

    assert sim.retarus().get(f"/jobs/{job_id}").status_code == 200
    assert sim.retarus(prefix="/dc2/rest/v1").get(f"/jobs/{job_id}").status_code == 404
