"""Fault knobs (Python and HTTP), magic send-fault numbers and call records."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.config import api_key_label
from tests.sandbox.support import AUTH_SIMPLE, KEY, OTHER_PASSWORD, OTHER_USER, START, Sim, one_sms

#: GET /jobs needs jobIdsOnly=true (seed 000).
IDS = {"jobIdsOnly": "true"}


def wait_until(condition: Callable[[], bool], timeout_s: float = 3.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_fail_next_answers_5xx_without_creating_the_job(sim: Sim) -> None:
    sim.state.fail_next(2, status=503)
    client = sim.retarus()

    assert [client.post("/jobs", json=one_sms()).status_code for _ in range(3)] == [503, 503, 201]
    assert len(sim.state.jobs()) == 1
    assert [c.fault for c in sim.state.calls()] == ["fail_next", "fail_next", None]


def test_fail_next_can_target_one_credential_and_path(sim: Sim) -> None:
    sim.state.fail_next(1, credential=OTHER_USER, path_prefix="/rest/v1/jobs")
    other = sim.retarus(OTHER_USER, OTHER_PASSWORD)

    assert sim.retarus().post("/jobs", json=one_sms()).status_code == 201
    assert other.get("/version").status_code == 200
    assert other.post("/jobs", json=one_sms()).status_code == 500
    assert other.post("/jobs", json=one_sms()).status_code == 201


def test_fail_next_by_raw_sendmode_key(sim: Sim) -> None:
    sim.state.fail_next(1, credential=KEY)

    response = sim.sendmode().get("/credits")

    assert response.status_code == 500 and response.json()["status"] == "SYSTEM_ERROR"
    assert sim.state.calls()[-1].credential == api_key_label(KEY)


def test_slow_answers_after_the_job_was_created(sim: Sim) -> None:
    sim.state.slow(0.5, path_prefix="/rest/v1/jobs")

    with pytest.raises(httpx.ReadTimeout):
        sim.retarus(timeout=0.1).post("/jobs", json=one_sms())

    [job] = sim.state.jobs()
    wait_until(lambda: sim.state.calls()[-1].status_code == 201)
    assert sim.state.calls()[-1].job_ids == [job.job_id]
    assert sim.state.calls()[-1].fault == "slow"


def test_drop_closes_the_connection_after_processing(sim: Sim) -> None:
    sim.state.drop(1)

    with pytest.raises(httpx.RemoteProtocolError):
        sim.retarus().post("/jobs", json=one_sms())

    [job] = sim.state.jobs()
    record = sim.state.calls()[-1]
    assert (record.fault, record.job_ids) == ("drop", [job.job_id])
    assert sim.retarus().get(f"/jobs/{job.job_id}").status_code == 200  # the server carries on


def test_malformed_answers_2xx_with_an_unreadable_body(sim: Sim) -> None:
    sim.state.malformed(1)
    assert sim.retarus().post("/jobs", json={}).json()["code"] == 400  # a 4xx does not use the knob up

    response = sim.retarus().post("/jobs", json=one_sms())

    assert response.status_code == 201
    with pytest.raises(ValueError):
        response.json()
    assert len(sim.state.jobs()) == 1


def test_malformed_http_simple_answer_is_not_a_job_id(sim: Sim) -> None:
    sim.state.malformed(1, path_prefix="/httpsimple")

    response = sim.simple().post("/sms", data={**AUTH_SIMPLE, "dst": "+4917600000000", "msg": "x"})

    assert response.status_code == 201
    assert not response.content.startswith(b"J.")


def test_hold_blocks_before_processing_until_release(sim: Sim) -> None:
    sim.state.hold("/rest/v1/jobs")
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(sim.retarus().post("/jobs", json=one_sms())))
    caller.start()

    wait_until(lambda: any(c.held for c in sim.state.calls()))
    assert sim.state.jobs() == []
    assert sim.state.calls()[-1].status_code is None  # in flight
    assert sim.state.release() == 1
    caller.join(3)

    assert answers[0].status_code == 201
    assert [j.job_id for j in sim.state.jobs()] == [answers[0].json()["jobId"]]
    record = sim.state.calls()[-1]
    assert (record.held, record.fault, record.status_code) == (True, None, 201)


def test_a_caller_that_goes_away_while_held_leaves_no_job(sim: Sim) -> None:
    sim.state.hold("/rest/v1/jobs")

    with pytest.raises(httpx.ReadTimeout):
        sim.retarus(timeout=0.2).post("/jobs", json=one_sms())
    wait_until(lambda: sim.state.calls()[-1].fault == "disconnected")
    sim.state.release()

    assert sim.state.jobs() == []


def test_a_late_hold_processes_the_call_on_release_although_its_caller_left(sim: Sim) -> None:
    # The request reached the provider, the caller gave up, and the provider accepts it afterwards.
    sim.state.hold("/rest/v1/jobs", late=True)
    with pytest.raises(httpx.ReadTimeout):
        sim.retarus(timeout=0.2).post("/jobs", json=one_sms())
    time.sleep(0.1)
    assert sim.state.jobs() == []
    sim.state.release()
    wait_until(lambda: len(sim.state.jobs()) == 1)
    assert sim.state.calls()[-1].status_code == 201


def test_a_counted_hold_catches_only_the_next_n_calls(sim: Sim) -> None:
    sim.state.hold("/rest/v1/jobs", n=1)
    answers: list[httpx.Response] = []
    caller = threading.Thread(target=lambda: answers.append(sim.retarus().post("/jobs", json=one_sms())))
    caller.start()
    wait_until(lambda: any(c.held for c in sim.state.calls()))
    # The next call passes while the first is still held
    assert sim.retarus().post("/jobs", json=one_sms(dst="+4917600000001")).status_code == 201
    assert answers == [] and len(sim.state.jobs()) == 1
    sim.state.release()
    caller.join(3)
    assert answers[0].status_code == 201 and len(sim.state.jobs()) == 2


@pytest.mark.parametrize("api", ["retarus", "httpsimple", "sendmode"])
def test_magic_0500_answers_500_and_0429_answers_429_without_creating_anything(sim: Sim, api: str) -> None:
    def send(number: str) -> httpx.Response:
        if api == "retarus":
            return sim.retarus().post("/jobs", json=one_sms(dst=number))
        if api == "httpsimple":
            return sim.simple().post("/sms", data={**AUTH_SIMPLE, "dst": number, "msg": "x"})
        message = json.dumps({"messagetext": "x", "recipients": ["0870000000", number]})
        return sim.sendmode().post("/send", data={"message": message})

    assert send("+4917600000500").status_code == 500
    throttled = send("+4917600000429")
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "1"
    assert sim.state.jobs() == [] and sim.state.sendmode_messages() == []
    assert [c.fault for c in sim.state.calls()] == ["magic", "magic"]


def test_call_records_carry_times_credential_path_status_and_job_ids(sim: Sim) -> None:
    sim.clock.advance(90)
    before = time.time()
    client = sim.retarus()
    job_id = client.post("/jobs", json=one_sms()).json()["jobId"]
    client.get(f"/jobs/{job_id}")
    client.get("/sms", params={"jobId": job_id})
    client.get("/jobs", params=IDS)
    simple_id = sim.simple().post("/sms", data={**AUTH_SIMPLE, "dst": "+4917600000000", "msg": "x"}).text
    sim.simple().get("/reports", params={**AUTH_SIMPLE, "jobid": simple_id})
    sim.retarus("sandbox-user", "bad").get("/jobs", params=IDS)

    calls = sim.state.calls()

    assert [(c.method, c.path, c.status_code, c.job_ids) for c in calls] == [
        ("POST", "/rest/v1/jobs", 201, [job_id]),
        ("GET", f"/rest/v1/jobs/{job_id}", 200, [job_id]),
        ("GET", "/rest/v1/sms", 200, [job_id]),
        ("GET", "/rest/v1/jobs", 200, []),
        ("POST", "/httpsimple/v1/sms", 201, [simple_id]),
        ("GET", "/httpsimple/v1/reports", 200, [simple_id]),
        ("GET", "/rest/v1/jobs", 401, []),
    ]
    assert [c.credential for c in calls] == ["sandbox-user"] * 6 + [None]
    assert all(before <= c.real_ts <= time.time() for c in calls)
    assert {c.sandbox_ts for c in calls} == {START.replace(minute=1, second=30)}
    assert sim.state.calls(path_prefix="/httpsimple") == calls[4:6]


def test_control_api_steers_and_reads_the_sandbox(sim: Sim) -> None:
    control = sim.control()

    assert control.post("/faults", json={"kind": "fail_next", "n": 1, "status": 502}).status_code == 200
    assert sim.retarus().post("/jobs", json=one_sms()).status_code == 502
    job_id = sim.retarus().post("/jobs", json=one_sms(dst="+4917600000003")).json()["jobId"]
    sim.clock.advance(5)

    [job] = control.get("/jobs").json()
    assert job["jobId"] == job_id and job["datacenter"] == "primary" and job["finishedTs"]
    assert [(r["processStatus"], r["status"]) for r in job["recipients"]] == [("DONE", "BLOCKED")]
    calls = control.get("/calls", params={"credential": "sandbox-user"}).json()
    assert [(c["status_code"], c["fault"], c["job_ids"]) for c in calls] == [
        (502, "fail_next", []),
        (201, None, [job_id]),
    ]
    assert control.get("/clock").json() == {"now": "2030-01-01T12:00:05.000Z"}

    assert control.post("/faults", json={"kind": "explode"}).status_code == 400
    assert control.post("/faults", json={"kind": "fail_next", "status": 404}).status_code == 400
    assert (
        control.post("/faults", json={"kind": "hold", "path_prefix": "/v2"}).json()["faults"][0]["kind"]
        == "hold"
    )
    assert control.post("/release", json={"path_prefix": "/v2"}).json() == {"released": 1}
    held = control.post("/faults", json={"kind": "hold", "late": True, "n": 2}).json()["faults"][0]
    assert (held["late"], held["remaining"]) == (True, 2)
    assert control.post("/faults", json={"kind": "hold", "late": "yes"}).status_code == 400
    assert control.post("/release", json={}).json() == {"released": 1}
    assert control.post("/faults", json={"kind": "slow", "seconds": 0.01, "n": 1}).status_code == 200
    assert control.post("/faults", json={"kind": "drop", "n": 1, "credential": "nobody"}).status_code == 200
    assert (
        control.post("/faults", json={"kind": "malformed", "n": 1, "credential": "nobody"}).status_code == 200
    )
    assert len(control.get("/faults").json()) == 3

    assert control.post("/reset").json() == {"ok": True}
    assert (
        control.get("/jobs").json() == []
        and control.get("/calls").json() == []
        and control.get("/faults").json() == []
    )


def test_control_api_sets_credits_and_lists_optouts(sim: Sim) -> None:
    control = sim.control()

    assert control.post("/credits", json={"api_key": KEY, "balance": 7.5}).status_code == 200
    assert sim.sendmode().get("/credits").json()["balance"] == 7.5
    assert control.post("/credits", json={"api_key": KEY}).status_code == 400
    assert control.get("/optouts").json() == {}
    assert control.get("/contacts").json() == {}


def test_call_records_never_hold_secrets(sim: Sim) -> None:
    sim.sendmode().get("/credits")
    sim.simple().post("/sms", params={**AUTH_SIMPLE, "dst": "+4917600000000", "msg": "secret text"})

    dumped = json.dumps(sim.control().get("/calls").json())

    for secret in (KEY, "sandbox-pass", "+4917600000000", "secret text"):
        assert secret not in dumped


def test_state_and_knobs_reject_nonsense(sim: Sim) -> None:
    with pytest.raises(ValueError):
        sim.state.fail_next(1, status=404)
    with pytest.raises(ValueError):
        sim.state.drop(0)
    with pytest.raises(ValueError):
        sim.state.slow(-1)


def test_requests_from_many_threads_are_all_recorded(start_sim: Any) -> None:
    sim = start_sim(limit_calls=1000)

    def burst() -> None:
        client = sim.retarus()
        for _ in range(20):
            assert client.post("/jobs", json=one_sms()).status_code == 201

    threads = [threading.Thread(target=burst) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert len(sim.state.jobs()) == 100 and len(sim.state.calls()) == 100
    assert len({c.seq for c in sim.state.calls()}) == 100
