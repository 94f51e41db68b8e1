"""What `smsq demo` enqueues (a realistic mix over three connections) and how it shows progress and outcomes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rich.console import Group
from rich.table import Table
from sqlmodel import col, select

from models.db import transaction
from models.enums import JobState
from models.tables import Job, Recipient
from worker.runtime import Runtime


@dataclass(frozen=True)
class DemoJob:
    """One job of the demo mix: what it shows, the request, and its connection."""

    label: str
    request: dict[str, Any]
    connection: str = "default"


def iso(value: datetime) -> str:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z")


def demo_mix(now: datetime) -> list[DemoJob]:
    """The jobs the demo enqueues, with windows relative to `now` (message time)."""

    def job(text: str, numbers: list[str], **options: Any) -> dict[str, Any]:
        return {"messages": [{"text": text, "recipients": [{"dst": n} for n in numbers]}], "options": options}

    failing = [f"+491761234000{digit}" for digit in (1, 2, 3, 5, 6, 7)]
    blackout = f"{iso(now - timedelta(minutes=55))}/{iso(now + timedelta(minutes=5))}"
    two_messages = {
        "messages": [
            {
                "text": "Your parcel arrives today.",
                "recipients": [{"dst": "+4917612341001"}, {"dst": "+4917612341002"}],
            },
            {"text": "Ihr Paket kommt heute.", "recipients": [{"dst": "+4917612341003"}]},
        ],
        "options": {"statusRequested": True},
    }
    return [
        DemoJob(
            "welcome, 3 recipients",
            job(
                "Welcome to smsq!",
                ["+4917612340100", "+4917612340101", "+4917612340102"],
                statusRequested=True,
            ),
        ),
        DemoJob("two messages in one job", two_messages),
        DemoJob(
            "express",
            job("Your login code is 424242", ["+4917612340200"], qos="EXPRESS", statusRequested=True),
        ),
        DemoJob("magic failures 0001-0007", job("Failure showcase", failing, statusRequested=True)),
        DemoJob(
            "jobPeriod in 10 min",
            job(
                "Reminder: meeting soon",
                ["+4917612340300"],
                jobPeriod=iso(now + timedelta(minutes=10)),
                statusRequested=True,
            ),
        ),
        DemoJob(
            "blackout until +5 min",
            job("Good morning", ["+4917612340400"], blackoutPeriods=[blackout], statusRequested=True),
        ),
        DemoJob("provider error 0500", job("Never accepted", ["+4917612340500"], billcode="demo-500")),
        DemoJob(
            "suppressed number",
            job("You opted out", ["+4917612340600", "+4917612340601"], billcode="demo-optout"),
        ),
        DemoJob(
            "HTTP Simple",
            job("Hello over HTTP Simple", ["+4917612340700", "+4917612340002"], statusRequested=True),
            "http-simple",
        ),
        DemoJob("Sendmode", job("Hello from Sendmode", ["+4917612340800", "+4917612340801"]), "sendmode"),
    ]


#: Opted out before the mix is enqueued: its recipient ends `suppressed`.
SUPPRESSED_NUMBER = "+4917612340601"


@dataclass
class Snapshot:
    """Counts read from the database while the demo runs."""

    jobs: Counter[str]
    outcomes: Counter[str]

    @property
    def open_jobs(self) -> int:
        return sum(n for state, n in self.jobs.items() if not JobState(state).is_terminal)


def snapshot(rt: Runtime, job_ids: list[str]) -> Snapshot:
    with transaction(rt.sessions) as session:
        states = session.exec(select(Job.state).where(col(Job.id).in_(job_ids))).all()
        outcomes = session.exec(select(Recipient.outcome).where(col(Recipient.job_id).in_(job_ids))).all()
    return Snapshot(Counter(states), Counter(outcomes))


def progress_view(snap: Snapshot, elapsed_s: float, timeout_s: float) -> Group:
    jobs = Table(title="jobs by state", title_justify="left")
    jobs.add_column("state")
    jobs.add_column("jobs", justify="right")
    for state in JobState:
        if snap.jobs.get(state.value):
            jobs.add_row(state.value, str(snap.jobs[state.value]))
    outcomes = Table(title="recipients by outcome", title_justify="left")
    outcomes.add_column("outcome")
    outcomes.add_column("recipients", justify="right")
    for outcome, count in sorted(snap.outcomes.items()):
        outcomes.add_row(outcome, str(count))
    header = f"{snap.open_jobs} job(s) still open after {elapsed_s:4.1f} s (timeout {timeout_s:.0f} s)"
    return Group(header, jobs, outcomes)


def summary_table(rt: Runtime, handles: list[tuple[DemoJob, str]]) -> Table:
    """One row per recipient: the job (on its first row), the number's last digits, outcome and status."""
    table = Table(title="outcomes", title_justify="left")
    for column in ("job", "connection", "state", "number", "outcome", "provider status"):
        table.add_column(column, no_wrap=column in ("number", "outcome"))
    with transaction(rt.sessions) as session:
        for demo_job, job_id in handles:
            job = session.get(Job, job_id)
            rows = session.exec(
                select(Recipient)
                .where(Recipient.job_id == job_id)
                .order_by(col(Recipient.message_index), col(Recipient.position))
            ).all()
            for index, row in enumerate(rows):
                first = index == 0
                table.add_row(
                    demo_job.label if first else "",
                    demo_job.connection if first else "",
                    (job.state if job else "?") if first else "",
                    f"…{row.dst[-4:]}",
                    row.outcome,
                    row.status or "",
                    end_section=index == len(rows) - 1,
                )
    return table
