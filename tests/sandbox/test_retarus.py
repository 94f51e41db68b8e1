"""Retarus REST v1 over real HTTP: auth, every documented bad request, reports, listing, data centers,
duplicate detection and /version."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from tests.sandbox.support import OTHER_PASSWORD, OTHER_USER, START, Sim, one_sms

JOB_ID = re.compile(r"J\.20300101-120000\.000-[A-Za-z0-9]{18}")
SMS_ID = re.compile(r"S\.20300101-120000\.000-[A-Za-z0-9]{18}")

#: GET /jobs needs jobIdsOnly=true (seed 000).
IDS = {"jobIdsOnly": "true"}


def test_send_answers_201_with_a_job_id_stamped_with_sandbox_time(sim: Sim) -> None:
    response = sim.retarus().post("/jobs", json=one_sms())

    assert response.status_code == 201
    assert JOB_ID.fullmatch(response.json()["jobId"])
    assert [job.job_id for job in sim.state.jobs()] == [response.json()["jobId"]]


@pytest.mark.parametrize(
    ("user", "password"), [("sandbox-user", "wrong"), ("nobody", "sandbox-pass"), ("", "")]
)
def test_wrong_credentials_are_401_with_code_and_message(sim: Sim, user: str, password: str) -> None:
    response = sim.retarus(user, password).post("/jobs", json=one_sms())

    assert response.status_code == 401
    assert response.json() == {"code": 401, "message": "Unauthorized"}
    assert sim.state.jobs() == []


def test_missing_authorization_header_is_401(sim: Sim) -> None:
    response = sim.client(base_url=sim.url).get("/rest/v1/jobs")

    assert response.status_code == 401
    assert response.json()["code"] == 401


def test_a_second_accepted_credential_works(sim: Sim) -> None:
    assert sim.retarus(OTHER_USER, OTHER_PASSWORD).post("/jobs", json=one_sms()).status_code == 201


def _recipients(n: int) -> list[dict[str, str]]:
    return [{"dst": f"+49176{i:04d}88"} for i in range(n)]  # never a magic number


BAD_REQUESTS: list[tuple[str, Any, int]] = [
    ("not json", b"{not json", 400),
    ("json array", [], 400),
    ("missing messages", {"options": {}}, 400),
    ("empty messages", {"messages": []}, 400),
    ("empty text", {"messages": [{"text": "", "recipients": [{"dst": "+491"}]}]}, 400),
    ("missing recipients", {"messages": [{"text": "x"}]}, 400),
    ("missing dst", {"messages": [{"text": "x", "recipients": [{"customerRef": "r"}]}]}, 400),
    ("3001 recipients", {"messages": [{"text": "x", "recipients": _recipients(3001)}]}, 400),
    (
        "3001 recipients over two messages",
        {
            "messages": [
                {"text": "x", "recipients": _recipients(1500)},
                {"text": "y", "recipients": _recipients(1501)},
            ]
        },
        400,
    ),
    ("blackout without offset", one_sms(blackoutPeriods=["2030-01-01T18:00/2030-01-02T07:00Z"]), 400),
    ("blackout start after end", one_sms(blackoutPeriods=["2030-01-02T18:00Z/2030-01-01T07:00Z"]), 400),
    ("blackout start equals end", one_sms(blackoutPeriods=["2030-01-01T18:00Z/2030-01-01T18:00Z"]), 400),
    ("blackout not an interval", one_sms(blackoutPeriods=["2030-01-01T18:00Z"]), 400),
    (
        "recipient blackout invalid",
        {"messages": [{"text": "x", "recipients": [{"dst": "+491", "blackoutPeriods": ["tomorrow"]}]}]},
        400,
    ),
    ("jobPeriod without offset", one_sms(jobPeriod="2030-01-01T18:00:00"), 400),
    ("unknown encoding", one_sms(encoding="LATIN-1"), 400),
    ("billcode over 70", one_sms(billcode="b" * 71), 400),
    ("src over 11 characters", one_sms(src="ABCDEFGHIJKL"), 400),
    ("refused invalid characters", one_sms(text="Grüße ✓", invalidCharacters="REFUSE"), 422),
]


@pytest.mark.parametrize(
    ("body", "status"), [(b, s) for _, b, s in BAD_REQUESTS], ids=[n for n, _, _ in BAD_REQUESTS]
)
def test_bad_requests_get_the_contract_status_and_create_nothing(sim: Sim, body: Any, status: int) -> None:
    client = sim.retarus()
    if isinstance(body, bytes):
        response = client.post("/jobs", content=body, headers={"content-type": "application/json"})
    else:
        response = client.post("/jobs", json=body)

    assert response.status_code == status
    assert response.json()["code"] == status
    assert isinstance(response.json()["message"], str) and response.json()["message"]
    assert sim.state.jobs() == []


def test_exactly_3000_recipients_are_accepted(sim: Sim) -> None:
    body = {"messages": [{"text": "x", "recipients": _recipients(3000)}]}

    assert sim.retarus().post("/jobs", json=body).status_code == 201


def test_non_gsm_text_is_accepted_under_utf16_even_with_refuse(sim: Sim) -> None:
    body = one_sms(text="Grüße ✓", invalidCharacters="REFUSE", encoding="UTF-16")

    assert sim.retarus().post("/jobs", json=body).status_code == 201


@pytest.mark.parametrize(("given", "reported"), [(3, 5), (1, 5), (0, 2880), (9999, 2880), (60, 60)])
def test_validity_min_out_of_range_is_clamped_not_refused(sim: Sim, given: int, reported: int) -> None:
    client = sim.retarus()
    job_id = client.post("/jobs", json=one_sms(validityMin=given, maxParts=99)).json()["jobId"]

    assert client.get(f"/jobs/{job_id}").json()["validityMin"] == reported


def test_job_report_carries_the_options_in_contract_form(sim: Sim) -> None:
    client = sim.retarus()
    options: dict[str, Any] = {
        "src": "retarus",
        "encoding": "UTF-16",
        "billcode": "Campaign123",
        "statusRequested": True,
        "flash": True,
        "customerRef": "InternalID: ABC1234",
        "qos": "EXPRESS",
    }
    job_id = client.post("/jobs", json=one_sms(**options)).json()["jobId"]

    report = client.get(f"/jobs/{job_id}").json()

    assert report["jobId"] == job_id
    assert report["encoding"] == "utf-16"  # lowercase in responses
    assert {k: report[k] for k in ("src", "billcode", "statusRequested", "flash", "customerRef", "qos")} == {
        k: v for k, v in options.items() if k != "encoding"
    }
    assert report["receiptTs"] == "2030-01-01T12:00:00.000Z"
    assert "finishedTs" not in report
    assert len(report["recipientIds"]) == 1 and SMS_ID.fullmatch(report["recipientIds"][0])


def test_recipient_report_defaults_customer_ref_to_the_number(sim: Sim) -> None:
    client = sim.retarus()
    body = {
        "messages": [
            {
                "text": "x",
                "recipients": [{"dst": "+4917600000001"}, {"dst": "+4917600000009", "customerRef": "row-9"}],
            }
        ]
    }
    job_id = client.post("/jobs", json=body).json()["jobId"]

    reports = client.get("/sms", params={"jobId": job_id}).json()

    assert [(r["dst"], r["customerRef"], r["processStatus"], r["status"]) for r in reports] == [
        ("+4917600000001", "+4917600000001", "OPEN", None),
        ("+4917600000009", "row-9", "OPEN", None),
    ]
    assert all("sentTs" not in r and "finishedTs" not in r for r in reports)


def test_unknown_job_is_404_not_found(sim: Sim) -> None:
    client = sim.retarus()
    unknown = "J.20300101-120000.000-AAAAAAAAAAAAAAAAAA"

    for response in (client.get(f"/jobs/{unknown}"), client.get("/sms", params={"jobId": unknown})):
        assert response.status_code == 404
        assert response.json() == {"code": 404, "message": "Not Found"}


def test_recipient_reports_need_a_job_id(sim: Sim) -> None:
    assert sim.retarus().get("/sms").status_code == 400


def test_each_data_center_only_knows_the_jobs_sent_to_it(sim: Sim) -> None:
    primary, dc2 = sim.retarus(), sim.retarus(prefix="/dc2/rest/v1")
    in_primary = primary.post("/jobs", json=one_sms()).json()["jobId"]
    in_dc2 = dc2.post("/jobs", json=one_sms()).json()["jobId"]

    assert dc2.get(f"/jobs/{in_primary}").status_code == 404
    assert dc2.get("/sms", params={"jobId": in_primary}).status_code == 404
    assert primary.get(f"/jobs/{in_dc2}").status_code == 404
    assert primary.get(f"/jobs/{in_primary}").status_code == 200
    assert dc2.get(f"/jobs/{in_dc2}").status_code == 200
    assert primary.get("/jobs", params=IDS).json() == [{"jobId": in_primary}]
    assert dc2.get("/jobs", params=IDS).json() == [{"jobId": in_dc2}]


def test_listing_is_in_receipt_order_with_offset_and_limit(start_sim: Any) -> None:
    sim = start_sim(limit_calls=1000)
    client = sim.retarus()
    sent = []
    for _ in range(105):
        sent.append(client.post("/jobs", json=one_sms()).json()["jobId"])
        sim.clock.advance(1)

    assert [j["jobId"] for j in client.get("/jobs", params=IDS).json()] == sent[:100]  # default limit 100
    assert [j["jobId"] for j in client.get("/jobs", params={**IDS, "offset": 100}).json()] == sent[100:]
    page = client.get("/jobs", params={"offset": 3, "limit": 2, "jobIdsOnly": "true"}).json()
    assert page == [{"jobId": sent[3]}, {"jobId": sent[4]}]


def test_listing_filters_open_and_finished_jobs(sim: Sim) -> None:
    client = sim.retarus()
    early = client.post("/jobs", json=one_sms(statusRequested=True)).json()["jobId"]
    sim.clock.advance(3)  # early is RUNNING (accept 2 s), not final
    late = client.post("/jobs", json=one_sms(statusRequested=True)).json()["jobId"]

    def listed(**params: str) -> list[str]:
        return [j["jobId"] for j in client.get("/jobs", params={**IDS, **params}).json()]

    assert listed(open="true") == [early, late]
    assert listed(open="false") == []
    sim.clock.advance(2)  # early DONE at +5 s, late still RUNNING
    assert listed(open="true") == [late]
    assert listed(open="false") == [early]
    assert listed() == [early, late]
    sim.clock.advance(10)
    assert listed(open="true") == []
    assert listed(open="false") == [early, late]


def test_listing_time_window(sim: Sim) -> None:
    client = sim.retarus()
    first = client.post("/jobs", json=one_sms()).json()["jobId"]
    sim.clock.advance(3600)
    second = client.post("/jobs", json=one_sms()).json()["jobId"]

    def listed(from_ts: str, to_ts: str) -> list[str]:
        return [
            j["jobId"] for j in client.get("/jobs", params={**IDS, "fromTs": from_ts, "toTs": to_ts}).json()
        ]

    assert listed("2030-01-01T11:00Z", "2030-01-01T12:30Z") == [first]
    assert listed("2030-01-01T14:00+01:00", "2030-01-01T14:30+01:00") == [second]
    assert listed("2029-12-05T00:00Z", "2030-01-04T00:00Z") == [first, second]  # exactly 30 days


@pytest.mark.parametrize(
    "params",
    [
        {"fromTs": "2029-12-01T00:00Z", "toTs": "2030-01-01T00:00:01Z"},  # 30 days and a second
        {"fromTs": "2030-01-02T00:00Z", "toTs": "2030-01-01T00:00Z"},
        {"fromTs": "yesterday"},
        {"open": "maybe"},
        {"limit": "1001"},
        {"limit": "-1"},
        {"offset": "-1"},
    ],
)
def test_bad_listing_queries_are_400(sim: Sim, params: dict[str, str]) -> None:
    response = sim.retarus().get("/jobs", params={**IDS, **params})

    assert response.status_code == 400
    assert response.json()["code"] == 400


@pytest.mark.parametrize("params", [{}, {"jobIdsOnly": "false"}, {"jobIdsOnly": "yes"}])
def test_listing_needs_job_ids_only_true(sim: Sim, params: dict[str, str]) -> None:
    # Change list 4: jobIdsOnly is required and only `true` is supported (seed 000).
    response = sim.retarus().get("/jobs", params=params)

    assert response.status_code == 400
    assert "jobIdsOnly" in response.json()["message"]


def test_listing_limit_0_and_1000_are_valid(sim: Sim) -> None:
    # Change list 5: 0..1000, 0 included.
    client = sim.retarus()
    client.post("/jobs", json=one_sms())
    assert client.get("/jobs", params={**IDS, "limit": "0"}).json() == []
    assert len(client.get("/jobs", params={**IDS, "limit": "1000"}).json()) == 1


@pytest.mark.parametrize(
    ("params", "key"),
    [({"jobIdsOnly": "true", "Limit": "5"}, "Limit"), ({"jobIdsOnly": "true", "from_ts": "x"}, "from_ts")],
)
def test_unknown_listing_keys_are_400_naming_the_key(sim: Sim, params: dict[str, str], key: str) -> None:
    response = sim.retarus().get("/jobs", params=params)

    assert response.status_code == 400
    assert repr(key) in response.json()["message"]


def test_duplicate_detection_refuses_an_equal_request_for_ten_minutes(sim: Sim) -> None:
    client = sim.retarus()
    body = one_sms(duplicateDetection=True, customerRef="ref-1")
    reordered = {"options": dict(reversed(list(body["options"].items()))), "messages": body["messages"]}

    assert client.post("/jobs", json=body).status_code == 201
    sim.clock.advance(9 * 60)
    duplicate = client.post("/jobs", json=reordered)
    assert duplicate.status_code == 409
    assert duplicate.json()["code"] == 409
    assert client.post("/jobs", json=one_sms(duplicateDetection=True, customerRef="ref-2")).status_code == 201
    assert sim.retarus(OTHER_USER, OTHER_PASSWORD).post("/jobs", json=body).status_code == 201
    sim.clock.advance(60)  # ten minutes after the first
    assert client.post("/jobs", json=body).status_code == 201
    assert len(sim.state.jobs()) == 4


def test_equal_requests_without_duplicate_detection_are_both_accepted(sim: Sim) -> None:
    client = sim.retarus()

    assert client.post("/jobs", json=one_sms()).status_code == 201
    assert client.post("/jobs", json=one_sms()).status_code == 201


def test_version_needs_no_credentials(sim: Sim) -> None:
    response = sim.client(base_url=sim.url).get("/rest/v1/version")

    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["buildNumber"], int) and isinstance(body["majorVersion"], int)
    assert isinstance(body["minorVersion"], int)
    assert isinstance(body["buildTimestamp"], str) and isinstance(body["versionInfo"], str)


def test_receipt_time_comes_from_the_sandbox_clock(sim: Sim) -> None:
    sim.clock.advance(timedelta(days=2).total_seconds())
    job_id = sim.retarus().post("/jobs", json=one_sms()).json()["jobId"]

    assert job_id.startswith("J.20300103-120000.000-")
    assert sim.state.jobs()[0].receipt_ts == START + timedelta(days=2)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            {**one_sms(), "options": {"status_requested": True}},
            "'options.status_requested' (did you mean 'statusRequested'?)",
        ),
        ({**one_sms(), "options": {"StatusRequested": True}}, "'options.StatusRequested'"),
        (
            {"messages": [{"text": "x", "recipients": [{"dst": "+49176", "ref": "a"}]}]},
            "'messages[0].recipients[0].ref'",
        ),
        ({**one_sms(), "extra": 1}, "'extra'"),
    ],
)
def test_unknown_or_wrongly_cased_body_keys_are_400_naming_the_key(
    sim: Sim, body: dict[str, Any], named: str
) -> None:
    response = sim.retarus().post("/jobs", json=body)

    assert response.status_code == 400
    assert named in response.json()["message"]
    assert sim.state.jobs() == []
