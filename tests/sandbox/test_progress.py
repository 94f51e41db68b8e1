"""How recipients progress on the sandbox clock, read over HTTP while a ManualClock is advanced, plus the
pure timeline arithmetic underneath."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.enums import ProcessStatus
from models.intervals import Interval, parse_interval
from sandbox.progress import Timing, effective_blackouts, first_free_moment, plan, status_at
from sandbox.scenarios import SUCCESS_WITH_NOTIFICATION, outcome_for
from tests.sandbox.support import START, Sim, one_sms


def at(offset_s: float) -> str:
    """The Retarus timestamp `offset_s` seconds after START."""
    return (START + timedelta(seconds=offset_s)).strftime("%Y-%m-%dT%H:%M:%S") + ".000Z"


class Watch:
    """Reads one job's recipients over HTTP at chosen moments of the ManualClock.

    Jobs ask for a delivery notification unless the body says otherwise: RUNNING exists only then.
    """

    def __init__(self, sim: Sim, body: dict[str, Any]) -> None:
        body.setdefault("options", {}).setdefault("statusRequested", True)
        self.sim = sim
        self.client = sim.retarus()
        response = self.client.post("/jobs", json=body)
        assert response.status_code == 201, response.text
        self.job_id = response.json()["jobId"]

    def states_at(self, offset_s: float) -> list[tuple[str, str | None]]:
        self.sim.clock.set(START + timedelta(seconds=offset_s))
        reports = self.client.get("/sms", params={"jobId": self.job_id}).json()
        return [(r["processStatus"], r["status"]) for r in reports]

    def recipients(self) -> list[dict[str, Any]]:
        return list(self.client.get("/sms", params={"jobId": self.job_id}).json())

    def job(self) -> dict[str, Any]:
        return dict(self.client.get(f"/jobs/{self.job_id}").json())


OPEN, RUNNING = ("OPEN", None), ("RUNNING", None)


def test_a_recipient_is_open_then_running_then_done(sim: Sim) -> None:
    watch = Watch(sim, one_sms())

    assert watch.states_at(0) == [OPEN]
    assert watch.states_at(1.999) == [OPEN]
    assert watch.states_at(2) == [RUNNING]
    [running] = watch.recipients()
    assert running["sentTs"] == at(2) and "finishedTs" not in running
    assert watch.states_at(4.9) == [RUNNING]
    assert watch.states_at(5) == [("DONE", "SUC_FIN")]
    [done] = watch.recipients()
    assert (done["sentTs"], done["finishedTs"]) == (at(2), at(5))
    assert watch.job()["finishedTs"] == at(5)


def test_status_requested_ends_in_suc_fin(sim: Sim) -> None:
    watch = Watch(sim, one_sms(statusRequested=True))

    assert watch.states_at(5) == [("DONE", "SUC_FIN")]


def test_job_period_holds_every_recipient_until_it_is_due(sim: Sim) -> None:
    watch = Watch(sim, one_sms(jobPeriod="2030-01-01T14:00:00.000+01:00"))  # START + 1 h

    assert watch.states_at(3600 + 1) == [OPEN]
    assert watch.states_at(3600 + 2) == [RUNNING]
    assert watch.states_at(3600 + 5) == [("DONE", "SUC_FIN")]


def test_a_short_blackout_period_counts_as_one_hour_from_its_start(sim: Sim) -> None:
    # 11:50-12:20 is under an hour, so it blacks out 11:50-12:50.
    watch = Watch(sim, one_sms(blackoutPeriods=["2030-01-01T11:50Z/2030-01-01T12:20Z"]))

    assert watch.states_at(20 * 60 + 10) == [OPEN]  # past the written end, still held
    assert watch.states_at(50 * 60 + 1) == [OPEN]  # out of the blackout, accepting
    assert watch.states_at(50 * 60 + 2) == [RUNNING]
    assert watch.states_at(50 * 60 + 5) == [("DONE", "SUC_FIN")]


def test_recipient_blackout_periods_replace_the_jobs(sim: Sim) -> None:
    body = {
        "options": {"blackoutPeriods": ["2030-01-01T11:00Z/2030-01-01T14:00Z"]},
        "messages": [
            {
                "text": "x",
                "recipients": [
                    {"dst": "+4917600000011"},  # the job's period: held until 14:00
                    {"dst": "+4917600000012", "blackoutPeriods": []},  # its own: none
                    {
                        "dst": "+4917600000013",
                        "blackoutPeriods": ["2030-01-01T12:00Z/2030-01-01T12:30+00:00"],
                    },
                ],
            }
        ],
    }
    watch = Watch(sim, body)

    assert watch.states_at(5) == [OPEN, ("DONE", "SUC_FIN"), OPEN]
    assert watch.states_at(3600 + 5) == [OPEN, ("DONE", "SUC_FIN"), ("DONE", "SUC_FIN")]
    assert watch.states_at(2 * 3600 + 4) == [RUNNING, ("DONE", "SUC_FIN"), ("DONE", "SUC_FIN")]
    assert watch.states_at(2 * 3600 + 5) == [("DONE", "SUC_FIN")] * 3


@pytest.mark.parametrize("status_requested", [True, False])
def test_validity_running_out_before_sending_is_canceled_never_timeout(
    sim: Sim, status_requested: bool
) -> None:
    # TIMEOUT means "sent, but validity period exceeded" (seed 002): an SMS never sent is not TIMEOUT.
    watch = Watch(
        sim,
        one_sms(
            validityMin=5,
            blackoutPeriods=["2030-01-01T12:00Z/2030-01-01T13:00Z"],
            statusRequested=status_requested,
        ),
    )

    assert watch.states_at(5 * 60 - 1) == [OPEN]
    assert watch.states_at(5 * 60) == [("CANCELED", None)]
    [report] = watch.recipients()
    assert "sentTs" not in report and report["finishedTs"] == at(5 * 60)
    assert watch.job()["finishedTs"] == at(5 * 60)


def test_validity_running_out_while_running_is_sent_but_timed_out(start_sim: Any) -> None:
    sim = start_sim(deliver_s=600.0)  # ten minutes RUNNING, longer than the validity
    watch = Watch(sim, one_sms(validityMin=5))

    assert watch.states_at(2) == [RUNNING]
    assert watch.states_at(5 * 60) == [("DONE", "TIMEOUT")]
    [report] = watch.recipients()
    assert report["sentTs"] == at(2) and report["finishedTs"] == at(5 * 60)
    assert report["reason"] == "Sent, but validity period exceeded"


def test_validity_counts_from_the_job_period(sim: Sim) -> None:
    watch = Watch(sim, one_sms(validityMin=5, jobPeriod="2030-01-01T15:00Z"))

    assert watch.states_at(3 * 3600 + 5) == [("DONE", "SUC_FIN")]


def test_job_finishes_when_its_last_recipient_does(sim: Sim) -> None:
    body = {
        "messages": [
            {"text": "x", "recipients": [{"dst": "+4917600000021"}]},
            {
                "text": "y",
                "recipients": [
                    {"dst": "+4917600000022", "blackoutPeriods": ["2030-01-01T12:00Z/2030-01-01T12:10Z"]}
                ],
            },
        ]
    }
    watch = Watch(sim, body)

    watch.states_at(60)
    assert "finishedTs" not in watch.job()
    assert watch.states_at(3600 + 5) == [("DONE", "SUC_FIN")] * 2
    assert watch.job()["finishedTs"] == at(3600 + 5)


@pytest.mark.parametrize(
    ("suffix", "final"),
    [
        ("0002", ("DONE", "FAILED_FIN")),
        ("0014", ("DONE", "STATUS_ERR")),
        ("0016", ("KILL", None)),
        ("0020", ("DONE", "SUC_FIN")),
    ],
)
def test_rows_that_need_a_delivery_notification_pass_through_running(
    sim: Sim, suffix: str, final: tuple[str, str]
) -> None:
    watch = Watch(sim, one_sms(dst="+491760000" + suffix))

    assert watch.states_at(2) == [RUNNING]
    assert watch.states_at(5) == [final]
    [report] = watch.recipients()
    assert report["sentTs"] == at(2)
    assert watch.job()["finishedTs"] == at(5)


@pytest.mark.parametrize("suffix", ["0002", "0004", "0014", "0016", "0020"])
def test_without_a_delivery_notification_those_rows_never_appear_the_sms_ends_suc_acc(
    sim: Sim, suffix: str
) -> None:
    watch = Watch(sim, one_sms(dst="+491760000" + suffix, statusRequested=False))

    assert watch.states_at(1.999) == [OPEN]
    assert watch.states_at(2) == [("DONE", "SUC_ACC")]  # never RUNNING: that row needs statusRequested
    [report] = watch.recipients()
    assert (report["sentTs"], report["finishedTs"]) == (at(2), at(2))


@pytest.mark.parametrize(
    ("suffix", "final"),
    [
        ("0001", ("DONE", "INVALID_DST")),
        ("0003", ("DONE", "BLOCKED")),
        ("0005", ("DONE", "CON_ERR")),
        ("0006", ("DONE", "NOT_ACC_FIN")),
        ("0007", ("CANCELED", "NOT_ACC_REC")),
        ("0008", ("DONE", "SEND_ERR")),
        ("0015", ("CANCELED", None)),
    ],
)
@pytest.mark.parametrize("status_requested", [True, False])
def test_rows_reached_at_the_send_attempt_whatever_the_notification(
    sim: Sim, suffix: str, final: tuple[str, str], status_requested: bool
) -> None:
    watch = Watch(sim, one_sms(dst="+491760000" + suffix, statusRequested=status_requested))

    assert watch.states_at(1.999) == [OPEN]
    assert watch.states_at(2) == [final]
    [report] = watch.recipients()
    assert "sentTs" not in report and report["finishedTs"] == at(2)


def test_magic_number_0017_retries_open_with_a_status_until_its_validity_ends(sim: Sim) -> None:
    watch = Watch(sim, one_sms(dst="+4917600000017", validityMin=5))

    assert watch.states_at(1) == [OPEN]
    assert watch.states_at(2) == [("OPEN", "CON_ERR")]  # OPEN (any): in retry state
    assert watch.states_at(5 * 60 - 1) == [("OPEN", "CON_ERR")]
    assert watch.states_at(5 * 60) == [("DONE", "CON_ERR")]
    assert watch.job()["finishedTs"] == at(5 * 60)


def test_magic_number_0004_never_becomes_final(sim: Sim) -> None:
    watch = Watch(sim, one_sms(dst="+4917600000004", validityMin=5))
    client = watch.client

    assert watch.states_at(30 * 24 * 3600) == [RUNNING]
    assert "finishedTs" not in watch.job()
    assert client.get("/jobs", params={"open": "true", "jobIdsOnly": "true"}).json() == [
        {"jobId": watch.job_id}
    ]


def test_a_dst_that_is_no_number_ends_invalid(sim: Sim) -> None:
    watch = Watch(sim, one_sms(dst="not-a-number"))

    assert watch.states_at(5) == [("DONE", "INVALID_DST")]


# --- the pure arithmetic -----------------------------------------------------------------------------


def test_chained_blackouts_move_the_send_time_to_the_last_end() -> None:
    periods = effective_blackouts(
        [
            parse_interval("2030-01-01T12:00Z/2030-01-01T12:10Z"),
            parse_interval("2030-01-01T12:30Z/2030-01-01T15:00Z"),
        ],
        None,
    )

    assert periods[0].end == datetime(2030, 1, 1, 13, 0, tzinfo=UTC)  # expanded to one hour
    assert first_free_moment(START, periods) == datetime(2030, 1, 1, 15, 0, tzinfo=UTC)


moments = st.datetimes(min_value=datetime(2030, 1, 1), max_value=datetime(2030, 1, 3), timezones=st.just(UTC))


@st.composite
def intervals(draw: st.DrawFn) -> Interval:
    start = draw(moments)
    return Interval(start, start + timedelta(minutes=draw(st.integers(1, 600))))


@given(
    receipt=moments,
    job_period=st.none() | moments,
    blackouts=st.lists(intervals(), max_size=4),
    validity_min=st.sampled_from([0, 5, 30, 2880]),
    probes=st.lists(st.integers(0, 4 * 24 * 3600), min_size=2, max_size=12),
)
def test_a_recipient_never_goes_back_and_never_starts_inside_a_blackout(
    receipt: datetime,
    job_period: datetime | None,
    blackouts: list[Interval],
    validity_min: int,
    probes: list[int],
) -> None:
    periods = effective_blackouts(blackouts, None)
    timeline = plan(
        receipt=receipt, job_period=job_period, blackouts=periods, validity_min=validity_min,
        timing=Timing(), outcome=SUCCESS_WITH_NOTIFICATION,
    )  # fmt: skip
    rank = {ProcessStatus.OPEN: 0, ProcessStatus.RUNNING: 1, ProcessStatus.DONE: 2, ProcessStatus.CANCELED: 2}
    seen = [status_at(timeline, receipt + timedelta(seconds=s)) for s in sorted(probes)]

    assert [rank[s.process_status] for s in seen] == sorted(rank[s.process_status] for s in seen)
    assert not any(p.contains(timeline.sendable) for p in periods)
    assert timeline.finished is not None
    assert timeline.finished <= timeline.due + timedelta(minutes=validity_min or 2880)
    if timeline.sent is not None:
        assert timeline.due <= timeline.sendable < timeline.sent < timeline.finished
    else:  # never sent: never TIMEOUT (which means "sent, but validity exceeded")
        assert timeline.end.status != "TIMEOUT"


def test_outcome_depends_on_status_requested() -> None:
    assert outcome_for("+4917600000000", status_requested=True).status == "SUC_FIN"
    assert outcome_for("+4917600000000", status_requested=False).status == "SUC_ACC"
