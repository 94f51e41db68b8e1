"""Sendmode v2 over real HTTP: auth, errors in the body, both encodings, credits by parts, opt-out, import."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from sandbox.config import api_key_label
from tests.sandbox.support import KEY, OTHER_KEY, Sim


def send(
    sim: Sim, message: dict[str, Any], *, as_json: bool = False, key: str | None = KEY
) -> dict[str, Any]:
    client = sim.sendmode(key)
    if as_json:
        response = client.post("/send", json={"message": message})
    else:
        response = client.post("/send", data={"message": json.dumps(message)})
    assert response.status_code == 200  # Sendmode answers errors in the body
    return dict(response.json())


def balance(sim: Sim, key: str = KEY) -> float:
    body = sim.sendmode(key).get("/credits").json()
    assert (body["status"], body["statusCode"]) == ("OK", 0)
    return float(body["balance"])


@pytest.mark.parametrize("as_json", [False, True], ids=["form string", "json body"])
def test_send_is_accepted_in_both_encodings(sim: Sim, as_json: bool) -> None:
    message = {
        "messagetext": "Hello World",
        "senderid": "Sendmode",
        "recipients": ["0870000000", "+353870000001"],
    }

    body = send(sim, message, as_json=as_json)

    assert (body["status"], body["statusCode"]) == ("OK", 0)
    assert datetime.fromisoformat(body["acceptedDateTime"]).year == 2030
    assert body["message"] == {**message, "customerid": None, "scheduledate": None}


def test_access_key_may_come_as_query_parameter(sim: Sim) -> None:
    response = sim.sendmode(None).get("/credits", params={"access_key": KEY})

    assert response.json()["status"] == "OK"


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_bad_or_missing_key_is_invalid_access_key_with_http_200(sim: Sim, key: str | None) -> None:
    for response in (
        sim.sendmode(key).post(
            "/send", data={"message": json.dumps({"messagetext": "x", "recipients": ["0870000000"]})}
        ),
        sim.sendmode(key).get("/credits"),
    ):
        assert response.status_code == 200
        assert response.json()["status"] == "INVALID_ACCESS_KEY"
        assert response.json()["statusCode"] == 14
        assert response.json()["error"]
    assert sim.state.sendmode_messages() == []


TO_ONE = {"messagetext": "x", "recipients": ["0870000000"]}


@pytest.mark.parametrize(
    ("message", "status", "code"),
    [
        ({"recipients": ["0870000000"]}, "EXPECTED_PARAMETER_MISSING", 195),
        ({"messagetext": "x"}, "EXPECTED_PARAMETER_MISSING", 195),
        ({"messagetext": "  ", "recipients": ["0870000000"]}, "INVALID_MESSAGE_LENGTH", 1),
        ({"messagetext": "x", "recipients": ["08700-ABC"]}, "INVALID_MOBILE_NUMBER", 11),
        ({"messagetext": "x", "recipients": ["123456"]}, "INVALID_MOBILE_NUMBER", 11),
        ({"messagetext": "x", "recipients": ["+1234567890123456"]}, "INVALID_MOBILE_NUMBER", 11),
        ({**TO_ONE, "scheduledate": "next tuesday"}, "INVALID_SCHEDULE_DATE_FORMAT", 97),
        ({**TO_ONE, "senderid": "ABCDEFGHIJKL"}, "INVALID_SENDER_ID", 10),
        ({**TO_ONE, "senderid": "1" * 21}, "INVALID_SENDER_ID", 10),
        ({**TO_ONE, "senderid": "Shop_1"}, "INVALID_SENDER_ID", 10),
    ],
)  # fmt: skip
def test_bad_sends_are_answered_in_the_body(
    sim: Sim, message: dict[str, Any], status: str, code: int
) -> None:
    body = send(sim, message)

    assert (body["status"], body["statusCode"]) == (status, code)
    assert body["error"]
    assert sim.state.sendmode_messages() == []
    assert balance(sim) == 1000


def test_missing_or_unreadable_message_field(sim: Sim) -> None:
    client = sim.sendmode()

    assert client.post("/send", data={}).json()["statusCode"] == 195
    assert client.post("/send", data={"message": "{not json"}).json()["statusCode"] == 18


def test_senders_at_the_limits_are_accepted(sim: Sim) -> None:
    for senderid in ("ABCDEFGHIJK", "+" + "1" * 20, "My Shop"):
        assert (
            send(sim, {"messagetext": "x", "recipients": ["0870000000"], "senderid": senderid})["status"]
            == "OK"
        )


def test_schedule_date_is_accepted_and_rounded_to_15_minutes(sim: Sim) -> None:
    for text in ("2030-01-02T10:07:00+00:00", "02/01/2030 10:07"):
        assert (
            send(sim, {"messagetext": "x", "recipients": ["0870000000"], "scheduledate": text})["status"]
            == "OK"
        )

    scheduled = [m.snapshot()["scheduledTs"] for m in sim.state.sendmode_messages()]
    assert scheduled == ["2030-01-02T10:00:00.000Z"] * 2


@pytest.mark.parametrize(
    ("text", "parts"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1), ("€" * 81, 2),
     ("ü" * 160, 1), ("✓" * 70, 1), ("✓" * 71, 2), ("✓" * 134, 2), ("✓" * 135, 3)],
)  # fmt: skip
def test_each_recipient_costs_the_texts_parts(sim: Sim, text: str, parts: int) -> None:
    assert send(sim, {"messagetext": text, "recipients": ["0870000000", "0870000001"]})["status"] == "OK"

    assert balance(sim) == 1000 - 2 * parts


def test_insufficient_credits_refuse_the_send_and_leave_the_balance(sim: Sim) -> None:
    control = sim.control()
    assert control.post("/credits", json={"api_key": KEY, "balance": 3}).status_code == 200

    refused = send(
        sim, {"messagetext": "x", "recipients": ["0870000000", "0870000001", "0870000002", "0870000003"]}
    )

    assert (refused["status"], refused["statusCode"]) == ("INSUFFICIENT_CREDITS", 3)
    assert balance(sim) == 3
    assert (
        send(sim, {"messagetext": "x", "recipients": ["0870000000", "0870000001", "0870000002"]})["status"]
        == "OK"
    )
    assert balance(sim) == 0
    assert balance(sim, OTHER_KEY) == 1000  # balances are per key


def test_opted_out_numbers_are_accepted_but_not_delivered_or_charged(sim: Sim) -> None:
    client = sim.sendmode()
    optout = client.post(
        "/optout", data={"message": json.dumps({"mobilenumber": "0870000005", "optoutresponse": "STOP"})}
    )
    assert (optout.json()["status"], optout.json()["statusCode"]) == ("OK", 0)

    body = send(sim, {"messagetext": "x", "recipients": ["0870000005", "0870000006"]})

    assert body["status"] == "OK"
    [message] = sim.state.sendmode_messages()
    assert message.snapshot()["recipients"] == [
        {"number": "0870000005", "outcome": "suppressed"},
        {"number": "0870000006", "outcome": "accepted"},
    ]
    assert balance(sim) == 999
    optouts = sim.control().get("/optouts").json()
    assert [o["mobilenumber"] for o in optouts[api_key_label(KEY)]] == ["0870000005"]
    # Opt-outs are per account: the other key still delivers to that number.
    assert not sim.state.is_opted_out(api_key_label(OTHER_KEY), "0870000005")


def test_optout_accepts_a_json_body_and_validates_the_number(sim: Sim) -> None:
    client = sim.sendmode()

    ok = client.post(
        "/optout", json={"message": {"mobilenumber": "+353870000007", "returnedresponse": "bye"}}
    )
    # Change list 25: the answer is flat, no `message` object
    assert ok.json()["status"] == "OK" and ok.json()["mobilenumber"] == "+353870000007"
    assert "message" not in ok.json() and set(ok.json()) == {
        "status", "statusCode", "acceptedDateTime", "mobilenumber", "optoutreason",
    }  # fmt: skip
    assert client.post("/optout", json={"message": {}}).json()["statusCode"] == 195
    assert client.post("/optout", json={"message": {"mobilenumber": "abc"}}).json()["statusCode"] == 11


def test_import_stores_contacts_per_group(sim: Sim) -> None:
    client = sim.sendmode()

    def import_(data: dict[str, Any], group: str, as_json: bool = False) -> dict[str, Any]:
        if as_json:
            return dict(client.post("/import", json={"importdata": data, "group": group}).json())
        return dict(client.post("/import", data={"importdata": json.dumps(data), "group": group}).json())

    first = import_({"mobilenumber": "0870000000", "firstname": "Ann"}, "VIP")
    assert (first["status"], first["statusCode"], first["group"]) == ("OK", 0, "VIP")
    assert first["importdata"]["firstname"] == "Ann" and first["importdata"]["surname"] is None
    import_({"mobilenumber": "0870000001", "dateofbirth": "31/12/1990"}, "VIP", as_json=True)
    import_({"mobilenumber": "0870000000", "firstname": "Ann"}, "Newsletter")

    contacts = sim.control().get("/contacts").json()[api_key_label(KEY)]
    assert sorted(contacts) == ["Newsletter", "VIP"]
    assert [c["mobilenumber"] for c in contacts["VIP"]] == ["0870000000", "0870000001"]
    assert [c["mobilenumber"] for c in contacts["Newsletter"]] == ["0870000000"]


@pytest.mark.parametrize(
    ("data", "code"),
    [({"firstname": "Ann"}, 195), ({"mobilenumber": ""}, 195), ({"mobilenumber": "12ab"}, 11),
     ({"mobilenumber": "0870000000", "dateofbirth": "1990-12-31"}, 18)],
)  # fmt: skip
def test_bad_imports_are_refused(sim: Sim, data: dict[str, Any], code: int) -> None:
    body = sim.sendmode().post("/import", data={"importdata": json.dumps(data), "group": "G"}).json()

    assert body["statusCode"] == code
    assert sim.state.contacts() == {}


def test_optout_takes_optoutresponse_and_refuses_optoutreason(sim: Sim) -> None:
    # Change list 24: request fields are mobilenumber, optoutresponse, returnedresponse (no length limit).
    client = sim.sendmode()
    answer = client.post(
        "/optout", json={"message": {"mobilenumber": "0870000008", "optoutresponse": "S" * 300}}
    ).json()
    assert (answer["statusCode"], answer["optoutreason"]) == (0, "S" * 300)
    refused = client.post(
        "/optout", json={"message": {"mobilenumber": "0870000008", "optoutreason": "STOP"}}
    ).json()
    assert (refused["status"], refused["statusCode"]) == ("INVALID_PARAMETER", 18)
    assert "optoutreason" in refused["error"]


def test_import_without_group_is_195(sim: Sim) -> None:
    # Change list 22: group is required.
    client = sim.sendmode()
    for body in (
        {"importdata": {"mobilenumber": "0870000009"}},
        {"group": "", "importdata": {"mobilenumber": "0870000009"}},
    ):
        answer = client.post("/import", json=body).json()
        assert (answer["status"], answer["statusCode"]) == ("EXPECTED_PARAMETER_MISSING", 195)
    assert sim.control().get("/contacts").json() == {}


@pytest.mark.parametrize("encoding", ["json", "form"])
def test_json_and_form_bodies_get_the_same_answer(sim: Sim, encoding: str) -> None:
    # Change list 21: JSON is what clients send; the older form encoding is still answered the same way.
    message = {"messagetext": "Hi", "recipients": ["0870000010"]}
    client = sim.sendmode()
    if encoding == "json":
        answer = client.post("/send", json={"message": message}).json()
    else:
        answer = client.post("/send", data={"message": json.dumps(message)}).json()
    assert (answer["status"], answer["statusCode"], answer["message"]["recipients"]) == (
        "OK",
        0,
        ["0870000010"],
    )


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        (
            "/send",
            {"message": {"messagetext": "Hi", "recipients": ["0870000010"], "senderID": "x"}},
            "senderID",
        ),
        ("/send", {"message": {"messagetext": "Hi", "recipients": ["0870000010"]}, "Message": {}}, "Message"),
        (
            "/import",
            {"group": "g", "importdata": {"mobilenumber": "0870000010", "first_name": "A"}},
            "first_name",
        ),
    ],
)
def test_unknown_or_wrongly_cased_keys_are_refused_naming_the_key(
    sim: Sim, path: str, body: dict[str, Any], key: str
) -> None:
    answer = sim.sendmode().post(path, json=body).json()
    assert (answer["status"], answer["statusCode"]) == ("INVALID_PARAMETER", 18)
    assert repr(key) in answer["error"] or key in answer["error"]
