"""Every client operation over real HTTP against the sandbox (sandbox/), on a loopback port.

Clients are made by `build_client` from a `ConnectionSettings`, exactly as the worker makes them. The
sandbox runs on a ManualClock, so job progress and 30-day listing windows are driven by the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from pydantic import SecretStr

from models.clock import ManualClock
from models.enums import InvalidCharacters, ProviderKey, Qos
from models.retarus import JobRequest, Message, Options, Recipient
from models.sendmode import ImportData, SendmodeMessage
from worker.errors import (
    DeliveryUnknown,
    DuplicateJob,
    InvalidRequest,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderThrottled,
    ProviderUnavailable,
)
from worker.providers import (
    InsufficientCredits,
    RetarusClient,
    RetarusHttpClient,
    SendmodeClient,
    build_client,
)
from worker.settings import ConnectionSettings

sandbox_server = pytest.importorskip("sandbox.server", reason="sandbox/server.py is not there yet")
from sandbox.app import create_app  # noqa: E402
from sandbox.config import DEFAULT_API_KEY, DEFAULT_PASSWORD, DEFAULT_USERNAME, SandboxConfig  # noqa: E402
from sandbox.state import SandboxState  # noqa: E402

START = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
NUMBER = "+4917600000000"
#: Sandbox magic numbers (sandbox/scenarios.py): the send answers 429 / 500 and creates nothing.
THROTTLED_NUMBER = "+4917600000429"
FAILING_NUMBER = "+4917600000500"
#: Sendmode numbers (the sandbox wants + and 7..15 digits).
SM_NUMBER = "+353870000010"


# --- the server -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="module")
def state(clock: ManualClock) -> SandboxState:
    return SandboxState(SandboxConfig(limit_calls=100_000), clock)


@pytest.fixture(scope="module")
def base_url(state: SandboxState) -> Iterator[str]:
    with sandbox_server.serve_in_thread(create_app(state=state), host="127.0.0.1", port=0) as url:
        yield url


@pytest.fixture(autouse=True)
def fresh_sandbox(state: SandboxState) -> None:
    state.reset()


def connect(
    provider: ProviderKey,
    urls: str,
    *,
    password: str = DEFAULT_PASSWORD,
    api_key: str = DEFAULT_API_KEY,
    **more,
) -> ConnectionSettings:
    return ConnectionSettings(
        name="sandbox",
        provider=provider,
        urls=urls,
        username=DEFAULT_USERNAME,
        password=SecretStr(password),
        api_key=SecretStr(api_key),
        **more,
    )


@pytest.fixture
def make_client(base_url: str):
    built: list[RetarusClient | RetarusHttpClient | SendmodeClient] = []

    def make(provider: ProviderKey, *paths: str, **settings):
        client = build_client(connect(provider, ",".join(base_url + path for path in paths), **settings))
        built.append(client)
        return client

    yield make
    for client in built:
        client.close()


@pytest.fixture
def retarus(make_client) -> RetarusClient:
    client = make_client(ProviderKey.RETARUS, "/rest/v1", "/dc2/rest/v1")
    assert isinstance(client, RetarusClient)
    return client


@pytest.fixture
def http_simple(make_client) -> RetarusHttpClient:
    client = make_client(ProviderKey.RETARUS_HTTP, "/httpsimple/v1")
    assert isinstance(client, RetarusHttpClient)
    return client


@pytest.fixture
def sendmode(make_client) -> SendmodeClient:
    client = make_client(ProviderKey.SENDMODE, "/v2")
    assert isinstance(client, SendmodeClient)
    return client


def job(*numbers: str, text: str = "Hello", **options) -> JobRequest:
    recipients = [
        Recipient(dst=number, customer_ref=f"ref-{i}") for i, number in enumerate(numbers or (NUMBER,))
    ]
    return JobRequest(messages=[Message(text=text, recipients=recipients)], options=Options(**options))


def calls(state: SandboxState, prefix: str) -> list[tuple[str, str, int | None]]:
    return [(c.method, c.path, c.status_code) for c in state.calls(path_prefix=prefix)]


# --- Retarus REST v1 ----------------------------------------------------------------------------------------


def test_retarus_send_then_job_report_and_recipient_reports_follow_the_job(retarus, state, clock):
    sent_at = clock.now()
    job_id = retarus.send_job(
        job(NUMBER, "+4917600000001", src="smsq", status_requested=True, qos=Qos.EXPRESS)
    )

    report = retarus.job_report(job_id)
    assert report.job_id == job_id and job_id.startswith("J.")
    assert report.encoding == "standard" and report.qos == "EXPRESS" and report.status_requested is True
    assert report.receipt_ts is not None and report.receipt_ts.tzinfo is not None
    assert abs(report.receipt_ts - sent_at) < timedelta(milliseconds=1)
    assert not report.finished and len(report.recipient_ids) == 2

    pending = retarus.recipient_reports(job_id)
    assert [r.process_status for r in pending] == ["OPEN", "OPEN"]
    assert [r.customer_ref for r in pending] == ["ref-0", "ref-1"]

    clock.advance(60)

    done = {r.dst: r for r in retarus.recipient_reports(job_id)}
    assert (done[NUMBER].process_status, done[NUMBER].status) == ("DONE", "SUC_FIN")
    assert (done["+4917600000001"].process_status, done["+4917600000001"].status) == ("DONE", "INVALID_DST")
    assert done[NUMBER].sent_ts is not None and done[NUMBER].finished_ts is not None
    assert {r.sms_id for r in done.values()} == set(report.recipient_ids)
    assert retarus.job_report(job_id).finished


def test_retarus_version(retarus):
    version = retarus.version()
    assert version.major_version is not None and version.version_info


def test_retarus_listing_follows_pages(retarus, state, clock):
    t0 = clock.now()
    sent = [retarus.send_job(job(f"+49176000001{n:02d}")) for n in range(7)]

    found = retarus.list_jobs(from_ts=t0 - timedelta(minutes=1), to_ts=t0 + timedelta(minutes=1), page_size=3)

    assert found == sent
    # 3 + 3 + 1 from the primary, then one empty page from dc2
    assert [p for m, p, _ in calls(state, "/rest/v1/jobs") if m == "GET"] == ["/rest/v1/jobs"] * 3
    assert [p for m, p, _ in calls(state, "/dc2/rest/v1/jobs") if m == "GET"] == ["/dc2/rest/v1/jobs"]


def test_retarus_listing_splits_ranges_over_30_days(retarus, state, clock):
    t0 = clock.now()
    first = retarus.send_job(job(NUMBER, text="one"))
    clock.advance(40 * 86_400)
    second = retarus.send_job(job(NUMBER, text="two"))
    clock.advance(30 * 86_400)
    third = retarus.send_job(job(NUMBER, text="three"))

    # 70 days and 2 hours: the sandbox answers 400 to any single request over 30 days
    found = retarus.list_jobs(from_ts=t0 - timedelta(hours=1), to_ts=clock.now() + timedelta(hours=1))

    assert found == [first, second, third]
    listing = calls(state, "/rest/v1/jobs")
    assert [status for method, _, status in listing if method == "GET"] == [200, 200, 200]


def test_retarus_listing_open_only(retarus, clock):
    t0 = clock.now()
    finished = retarus.send_job(job(NUMBER))
    never_final = retarus.send_job(job("+4917600000004", status_requested=True))  # RUNNING forever
    clock.advance(60)

    window = {"from_ts": t0 - timedelta(minutes=1), "to_ts": clock.now()}
    assert retarus.list_jobs(**window, open=True) == [never_final]
    assert retarus.list_jobs(**window, open=False) == [finished]
    assert retarus.list_jobs(**window) == [finished, never_final]


def test_retarus_lookup_fails_over_to_the_data_center_holding_the_job(make_client, state):
    primary_first = make_client(ProviderKey.RETARUS, "/rest/v1", "/dc2/rest/v1")
    dc2_first = make_client(ProviderKey.RETARUS, "/dc2/rest/v1", "/rest/v1")
    job_id = primary_first.send_job(job(NUMBER))
    state_calls_before = len(state.calls())

    assert dc2_first.job_report(job_id).job_id == job_id
    assert [r.dst for r in dc2_first.recipient_reports(job_id)] == [NUMBER]

    lookups = [(c.path, c.status_code) for c in state.calls()[state_calls_before:]]
    assert lookups == [
        (f"/dc2/rest/v1/jobs/{job_id}", 404),
        (f"/rest/v1/jobs/{job_id}", 200),
        ("/dc2/rest/v1/sms", 404),
        ("/rest/v1/sms", 200),
    ]


def test_retarus_send_goes_to_the_first_url_and_the_listing_merges_data_centers(make_client, clock):
    t0 = clock.now()
    primary_first = make_client(ProviderKey.RETARUS, "/rest/v1", "/dc2/rest/v1")
    dc2_first = make_client(ProviderKey.RETARUS, "/dc2/rest/v1", "/rest/v1")
    in_primary = primary_first.send_job(job(NUMBER))
    clock.advance(1)
    in_dc2 = dc2_first.send_job(job(NUMBER))

    assert primary_first.job_report(in_dc2).job_id == in_dc2  # 404 in primary, then dc2
    found = primary_first.list_jobs(from_ts=t0 - timedelta(minutes=1), to_ts=clock.now())
    assert found == [in_primary, in_dc2]


def test_retarus_job_missing_everywhere_is_permanent_404(retarus):
    with pytest.raises(PermanentProviderError) as info:
        retarus.job_report("J.20300301-080000.000-000000000000000000")
    assert info.value.status_code == 404


def test_retarus_wrong_password_is_an_auth_error(make_client):
    client = make_client(ProviderKey.RETARUS, "/rest/v1", password="wrong")
    with pytest.raises(ProviderAuthError) as info:
        client.send_job(job(NUMBER))
    assert info.value.status_code == 401
    assert "wrong" not in str(info.value)
    with pytest.raises(ProviderAuthError):
        client.job_report("J.20300301-080000.000-000000000000000000")


def test_retarus_invalid_blackout_syntax_is_permanent_400(retarus, state):
    with pytest.raises(PermanentProviderError) as info:
        retarus.send_job(job(NUMBER, blackout_periods=["tonight"]))
    assert type(info.value) is PermanentProviderError and info.value.status_code == 400
    assert state.jobs() == []


def test_retarus_refused_characters_are_permanent_422(retarus):
    with pytest.raises(PermanentProviderError) as info:
        retarus.send_job(job(NUMBER, text="Привет", invalid_characters=InvalidCharacters.REFUSE))
    assert info.value.status_code == 422
    assert "GSM" in info.value.detail


def test_retarus_more_than_3000_recipients_is_refused_before_sending_and_by_the_sandbox(retarus, state):
    recipients = [Recipient(dst=f"+4917610{n:06d}") for n in range(3001)]
    oversized = JobRequest.model_construct(messages=[Message(text="hi", recipients=recipients)], options=None)
    with pytest.raises(InvalidRequest) as refused:
        retarus.send_job(oversized)
    assert refused.value.field == "messages" and "3000" in refused.value.rule
    assert state.calls() == []
    # The sandbox refuses it too, for a client that sends it anyway
    body = oversized.model_dump(mode="json", exclude_none=True)
    answer = retarus._http.post(f"{retarus.base_urls[0]}/jobs", json=body)
    assert answer.status_code == 400


def test_retarus_duplicate_detection_is_a_duplicate_job(retarus, state):
    request = job(NUMBER, duplicate_detection=True)
    retarus.send_job(request)
    with pytest.raises(DuplicateJob) as info:
        retarus.send_job(request)
    assert info.value.status_code == 409
    assert len(state.jobs()) == 1


def test_retarus_throttled_send_carries_retry_after(retarus, state):
    with pytest.raises(ProviderThrottled) as info:
        retarus.send_job(job(THROTTLED_NUMBER))
    assert info.value.retry_after_s == 1.0
    assert state.jobs() == []


def test_retarus_server_error_is_unavailable(retarus, state):
    with pytest.raises(ProviderUnavailable) as info:
        retarus.send_job(job(FAILING_NUMBER))
    assert info.value.status_code == 500
    state.fail_next(status=503, path_prefix="/rest/v1/jobs")
    with pytest.raises(ProviderUnavailable) as info:
        retarus.send_job(job(NUMBER))
    assert info.value.status_code == 503
    assert state.jobs() == []


def test_the_sandbox_rate_limit_is_throttling_with_retry_after():
    limited = SandboxState(SandboxConfig(limit_calls=2, limit_period_s=60))
    with sandbox_server.serve_in_thread(create_app(state=limited), host="127.0.0.1", port=0) as url:
        with build_client(connect(ProviderKey.RETARUS, url + "/rest/v1")) as client:
            assert isinstance(client, RetarusClient)
            client.send_job(job(NUMBER))
            client.send_job(job(NUMBER))
            with pytest.raises(ProviderThrottled) as info:
                client.send_job(job(NUMBER))
    assert info.value.retry_after_s is not None and 1 <= info.value.retry_after_s <= 60


# --- transport faults over a real socket -------------------------------------------------------------------


def test_a_dropped_connection_after_processing_is_delivery_unknown(retarus, state):
    state.drop(path_prefix="/rest/v1/jobs")
    with pytest.raises(DeliveryUnknown):
        retarus.send_job(job(NUMBER))
    assert len(state.jobs()) == 1  # the provider did accept it: exactly why we must not resend blindly


def test_a_malformed_2xx_after_processing_is_delivery_unknown(retarus, state):
    state.malformed(path_prefix="/rest/v1/jobs")
    with pytest.raises(DeliveryUnknown):
        retarus.send_job(job(NUMBER))
    assert len(state.jobs()) == 1


def test_a_read_timeout_on_send_is_delivery_unknown(make_client, state):
    client = make_client(ProviderKey.RETARUS, "/rest/v1", timeout_s=0.2)
    state.slow(0.6, path_prefix="/rest/v1/jobs", n=1)
    with pytest.raises(DeliveryUnknown) as info:
        client.send_job(job(NUMBER))
    assert "ReadTimeout" in info.value.detail


def test_faults_on_lookups_are_retryable(retarus, state):
    job_id = retarus.send_job(job(NUMBER))
    state.drop(path_prefix="/rest/v1/jobs/")
    with pytest.raises(ProviderUnavailable):
        retarus.job_report(job_id)
    state.malformed(path_prefix="/rest/v1/sms")
    with pytest.raises(ProviderUnavailable):
        retarus.recipient_reports(job_id)
    assert retarus.job_report(job_id).job_id == job_id  # and a retry works


def test_a_refused_connection_is_unavailable():
    settings = connect(ProviderKey.RETARUS, "http://127.0.0.1:9/rest/v1", connect_timeout_s=1)
    with build_client(settings) as client, pytest.raises(ProviderUnavailable):
        assert isinstance(client, RetarusClient)
        client.send_job(job(NUMBER))


# --- Retarus HTTP Simple --------------------------------------------------------------------------------


def test_http_simple_send_and_report(http_simple, retarus, state, clock):
    job_id = http_simple.send(NUMBER, "Hello", src="smsq", bc="B-1", dn=True, qos=Qos.EXPRESS, ref="r-9")

    assert job_id.startswith("J.")
    report = http_simple.report(job_id)
    assert (report.process_status, report.status) == ("OPEN", None)

    clock.advance(60)

    done = http_simple.report(job_id)
    assert (done.process_status, done.status) == ("DONE", "SUC_FIN")  # dn=true -> statusRequested
    # the same job seen over REST shows every optional parameter arrived
    job_report = retarus.job_report(job_id)
    assert (job_report.src, job_report.billcode, job_report.qos, job_report.customer_ref) == (
        "smsq",
        "B-1",
        "EXPRESS",
        "r-9",
    )


def test_http_simple_without_delivery_notification_is_suc_acc(http_simple, clock):
    job_id = http_simple.send(NUMBER, "Hello")
    clock.advance(60)
    assert http_simple.report(job_id).status == "SUC_ACC"


def test_http_simple_refusals(make_client, http_simple):
    wrong = make_client(ProviderKey.RETARUS_HTTP, "/httpsimple/v1", password="not-the-password")
    with pytest.raises(ProviderAuthError) as auth:
        wrong.send(NUMBER, "Hello")
    with pytest.raises(ProviderAuthError) as auth_report:
        wrong.report("J.20300301-080000.000-000000000000000000")
    for error in (auth.value, auth_report.value):
        assert "not-the-password" not in str(error) and "not-the-password" not in repr(error)

    with pytest.raises(PermanentProviderError) as missing_text:
        http_simple.send(NUMBER, "   ")
    assert missing_text.value.status_code == 400

    with pytest.raises(PermanentProviderError) as unknown:
        http_simple.report("J.20300301-080000.000-000000000000000000")
    assert unknown.value.status_code == 400  # change list 20: no 404 in seed 002; still permanent
    assert DEFAULT_PASSWORD not in str(unknown.value)

    with pytest.raises(ProviderThrottled) as throttled:
        http_simple.send(THROTTLED_NUMBER, "Hello")
    assert throttled.value.retry_after_s == 1.0


def test_http_simple_fault_on_report_keeps_the_password_out(http_simple, state):
    job_id = http_simple.send(NUMBER, "Hello")
    state.drop(path_prefix="/httpsimple/v1/reports")
    with pytest.raises(ProviderUnavailable) as info:
        http_simple.report(job_id)
    assert DEFAULT_PASSWORD not in str(info.value) and DEFAULT_PASSWORD not in repr(info.value)


# --- Sendmode v2 ---------------------------------------------------------------------------------------


def test_sendmode_send_charges_credits(sendmode):
    before = sendmode.credits()
    answer = sendmode.send(
        SendmodeMessage(messagetext="Hello World", recipients=[SM_NUMBER, "+353870000011"], senderid="smsq")
    )
    assert answer.ok and answer.accepted_date_time is not None
    assert answer.message is not None and answer.message.recipients == [SM_NUMBER, "+353870000011"]
    assert before == Decimal(1000)
    assert sendmode.credits() == before - 2


def test_sendmode_import_customer_into_a_group(sendmode, state):
    answer = sendmode.import_customer(
        ImportData(mobilenumber=SM_NUMBER, firstname="Ann", surname="Lee", dateofbirth="31/12/1990"),
        group="VIP",
    )
    assert answer.ok and answer.group == "VIP"
    assert answer.importdata is not None and answer.importdata.firstname == "Ann"
    ((groups),) = state.contacts().values()
    assert [c["surname"] for c in groups["VIP"]] == ["Lee"]


def test_sendmode_opt_out_suppresses_later_sends(sendmode, state):
    answer = sendmode.opt_out(SM_NUMBER, optoutresponse="STOP please", returnedresponse="Bye")
    assert answer.ok and answer.mobilenumber == SM_NUMBER and answer.optoutreason == "STOP please"
    ((entries),) = state.optouts().values()
    assert entries[0]["optoutresponse"] == "STOP please" and entries[0]["returnedresponse"] == "Bye"

    before = sendmode.credits()
    sendmode.send(SendmodeMessage(messagetext="Hi", recipients=[SM_NUMBER]))
    assert sendmode.credits() == before  # accepted, suppressed, not charged


def test_sendmode_sends_the_key_raw_in_the_header(base_url):
    # The same call by hand, to pin the wire form the client uses against the sandbox.
    with httpx.Client() as http:
        answer = http.post(
            f"{base_url}/v2/send",
            headers={"Authorization": DEFAULT_API_KEY},
            data={"message": json.dumps({"messagetext": "x", "recipients": [SM_NUMBER]})},
        )
    assert answer.json()["statusCode"] == 0


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        (SendmodeMessage(messagetext="Hi", recipients=["not-a-number"]), 11, PermanentProviderError),
        (SendmodeMessage(messagetext="   ", recipients=[SM_NUMBER]), 1, PermanentProviderError),
        (
            SendmodeMessage(messagetext="Hi", recipients=[SM_NUMBER], senderid="Far too long id"),
            10,
            PermanentProviderError,
        ),
        (
            SendmodeMessage(messagetext="Hi", recipients=[SM_NUMBER], scheduledate="next tuesday"),
            97,
            PermanentProviderError,
        ),
    ],
)
def test_sendmode_refusals_in_the_body(sendmode, message, code, expected):
    with pytest.raises(expected) as info:
        sendmode.send(message)
    assert type(info.value) is expected
    assert f"({code}):" in info.value.detail


def test_sendmode_wrong_key_is_an_auth_error(make_client):
    client = make_client(ProviderKey.SENDMODE, "/v2", api_key="wrong-key-123")
    with pytest.raises(ProviderAuthError) as info:
        client.credits()
    assert info.value.detail.startswith("INVALID_ACCESS_KEY (14)")
    assert "wrong-key-123" not in str(info.value) and "wrong-key-123" not in repr(client)


def test_sendmode_insufficient_credit_is_retryable(sendmode, state):
    state.set_credits(DEFAULT_API_KEY, 0.0)  # a float: see the report about int balances
    with pytest.raises(InsufficientCredits) as info:
        sendmode.send(SendmodeMessage(messagetext="Hi", recipients=[SM_NUMBER]))
    assert info.value.detail.startswith("INSUFFICIENT_CREDITS (3)")
    assert sendmode.credits() == 0


def test_sendmode_throttling_and_server_errors(sendmode, state):
    with pytest.raises(ProviderThrottled) as throttled:
        sendmode.send(SendmodeMessage(messagetext="Hi", recipients=["+353870000429"]))
    assert throttled.value.retry_after_s == 1.0
    with pytest.raises(ProviderUnavailable) as failing:
        sendmode.send(SendmodeMessage(messagetext="Hi", recipients=["+353870000500"]))
    assert failing.value.status_code == 500
    state.malformed(path_prefix="/v2/send")
    with pytest.raises(DeliveryUnknown):
        sendmode.send(SendmodeMessage(messagetext="Hi", recipients=[SM_NUMBER]))
    assert len(state.sendmode_messages()) == 1


def test_no_secret_reaches_any_error_from_the_sandbox(make_client, state):
    errors: list[ProviderError] = []
    for provider, path in [
        (ProviderKey.RETARUS, "/rest/v1"),
        (ProviderKey.RETARUS_HTTP, "/httpsimple/v1"),
        (ProviderKey.SENDMODE, "/v2"),
    ]:
        client = make_client(provider, path)
        state.drop(path_prefix=path)
        try:
            if isinstance(client, RetarusClient):
                client.job_report("J.20300301-080000.000-000000000000000000")
            elif isinstance(client, RetarusHttpClient):
                client.report("J.20300301-080000.000-000000000000000000")
            else:
                client.credits()
        except ProviderError as exc:
            errors.append(exc)
    assert len(errors) == 3
    for error in errors:
        for secret in (DEFAULT_PASSWORD, DEFAULT_API_KEY):
            assert secret not in str(error) and secret not in repr(error)
