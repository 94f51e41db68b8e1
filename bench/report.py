"""What a benchmark run measured, and docs/benchmarks.md rendered from it.

The figures are kept as raw counts and seconds; every rate and ratio shown is derived here, so the
document and the console summary cannot disagree.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The top of docs/benchmarks.md; each script under bench/ owns one marked section below it.
DOCUMENT_HEADER = (
    "# Benchmarks\n\n"
    "Each section below is written by one script under `bench/` and replaced whole when it runs again "
    "(do not edit by hand; re-run it). Figures within a section come from one run, smsq beside its "
    "baseline, on the machine that section describes.\n"
)


@dataclass
class SendRun:
    """One send-throughput run: N single-recipient jobs enqueued at once, drained by worker processes."""

    label: str
    #: Seconds after t0 at which the first and the last accepted send call reached the sandbox.
    first_call_s: float | None
    last_call_s: float | None
    #: Recipients per second between the first and the last accepted call (None with fewer than 2 calls).
    steady_recipients_per_s: float | None
    batch_max_recipients: int
    jobs: int
    #: Seconds from t0 (just before enqueue_many) until every job was submitted (or the time cap).
    window_s: float
    completed: bool
    #: Recipients in provider calls the sandbox accepted inside the window (the sandbox's own records).
    recipients_delivered: int
    #: Send calls (POST .../jobs) the sandbox accepted inside the window.
    provider_calls: int
    #: Answers with status 429 over the whole run, any API.
    throttled_429: int
    #: Recipients that reached the sandbox more than once (same customerRef), whole run.
    duplicates: int
    #: Jobs in state submitted/finished in the database at the end of the window.
    jobs_submitted_db: int
    enqueue_s: float
    worker_startup_s: float
    peak_rss_kib: int | None
    cap_s: float

    @property
    def recipients_per_s(self) -> float:
        return self.recipients_delivered / self.window_s if self.window_s > 0 else 0.0

    @property
    def recipients_per_call(self) -> float:
        return self.recipients_delivered / self.provider_calls if self.provider_calls else 0.0


@dataclass
class EnqueueRun:
    """Enqueueing N jobs against one database, broker publish included, repeated a few times."""

    database: str
    method: str
    jobs: int
    #: Seconds each repetition took (a fresh database and broker each time).
    samples_s: list[float]
    #: Drain wake-ups found in the broker after each repetition (one per connection, however many jobs).
    broker_messages: list[int]
    #: Jobs queued after each repetition (the warm-up job not counted).
    published_jobs: list[int]

    @property
    def total_s(self) -> float:
        return statistics.median(self.samples_s)

    @property
    def ms_per_job(self) -> float:
        return self.total_s * 1000 / self.jobs

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / self.total_s if self.total_s > 0 else 0.0


@dataclass
class BenchReport:
    command: str
    date_utc: str
    mode: str
    machine: dict[str, str]
    limit_calls: int
    limit_period_s: float
    send_slots: int
    workers: int
    send_runs: list[SendRun] = field(default_factory=list)
    enqueue_runs: list[EnqueueRun] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    total_s: float = 0.0


def _ratio(top: float, bottom: float) -> str:
    return f"{top / bottom:.1f}×" if bottom > 0 else "n/a"


def _rate(value: float | None) -> str:
    return f"{value:,.1f}" if value is not None else "n/a (one call)"


def _seconds(value: float | None) -> str:
    return f"{value:.2f} s" if value is not None else "n/a"


def _same(values: list[int]) -> str:
    """One number when every repetition agrees, else all of them."""
    return f"{values[0]:,}" if len(set(values)) == 1 else " / ".join(f"{v:,}" for v in values)


def _mib(kib: int | None) -> str:
    return f"{kib / 1024:.1f} MiB" if kib is not None else "n/a"


def throughput_ratio(report: BenchReport) -> float | None:
    smsq, baseline = _send_pair(report)
    if smsq is None or baseline is None or baseline.recipients_per_s == 0:
        return None
    return smsq.recipients_per_s / baseline.recipients_per_s


def _send_pair(report: BenchReport) -> tuple[SendRun | None, SendRun | None]:
    smsq = next((r for r in report.send_runs if r.batch_max_recipients > 1), None)
    baseline = next((r for r in report.send_runs if r.batch_max_recipients == 1), None)
    return smsq, baseline


def summary_lines(report: BenchReport) -> list[str]:
    """The headline figures, for the console and the top of the document."""
    lines: list[str] = []
    smsq, baseline = _send_pair(report)
    if smsq and baseline:
        lines.append(
            f"Send throughput under {report.limit_calls} calls / {report.limit_period_s:g} s: smsq "
            f"{smsq.recipients_per_s:,.1f} recipients/s vs baseline {baseline.recipients_per_s:,.1f} "
            f"recipients/s = **{_ratio(smsq.recipients_per_s, baseline.recipients_per_s)}** "
            f"(**{_ratio(smsq.recipients_per_s, report.send_slots / report.limit_period_s)}** against the "
            f"{report.send_slots / report.limit_period_s:.1f} recipients/s that one call per recipient can "
            "reach at best); "
            f"{smsq.recipients_per_call:,.0f} vs {baseline.recipients_per_call:,.0f} recipients per provider "
            f"call; 429 answers: {smsq.throttled_429} and {baseline.throttled_429}."
        )
    for database in dict.fromkeys(run.database for run in report.enqueue_runs):
        runs = {run.method: run for run in report.enqueue_runs if run.database == database}
        many, single = runs.get("enqueue_many"), runs.get("enqueue")
        if many and single:
            lines.append(
                f"Enqueue cost ({database}, broker publish included): enqueue_many "
                f"{many.ms_per_job:.2f} ms/job vs separate enqueue() {single.ms_per_job:.2f} ms/job = "
                f"**{_ratio(single.ms_per_job, many.ms_per_job)}** cheaper per job."
            )
    return lines


def render_markdown(report: BenchReport) -> str:
    out: list[str] = []
    add = out.append
    add("## Throughput and enqueue cost (`bench/throughput.py`)")
    add("")
    add(
        "Written by `python -m bench.throughput` (do not edit by hand; re-run it). Every figure below was "
        "measured in one run on the machine described at the end, smsq and its baseline side by side, so "
        "compare the **ratios**; the absolute numbers depend on the machine."
    )
    add("")
    add("### How to re-run")
    add("")
    add("```")
    add(".venv/bin/python -m bench.throughput           # full: about 2 minutes")
    add(".venv/bin/python -m bench.throughput --quick   # smaller N, shorter caps: under a minute")
    add("```")
    add("")
    add(
        "It needs Redis on 127.0.0.1:6379 or where `SMSQ_TEST_REDIS_URL` points (it uses and flushes db 12 "
        "only: the URL's db plus 12) and, for the PostgreSQL rows, "
        "PostgreSQL on 127.0.0.1:5432 (it creates and drops the database `smsq_bench`; `--no-postgres` "
        "skips them). The provider is the sandbox (`sandbox/`), served over real HTTP from a thread of the "
        "benchmark process; workers are real `celery -A worker.app worker` processes; the database is a "
        "SQLite file in a temporary directory."
    )
    add("")
    add("### What each figure means")
    add("")
    add(
        f"1. **Send throughput under a provider limit.** The sandbox allows {report.limit_calls} calls per "
        f"{report.limit_period_s:g} s per credential and smsq's limiter is set to the same; smsq keeps a "
        f"share for polling, so at most {report.send_slots} send calls go out per window. N "
        f"single-recipient jobs are enqueued at once with `enqueue_many` while {report.workers} worker "
        "processes (`-c 1` each) are running. *smsq* runs with default settings (claim-and-coalesce: one "
        "provider call carries the backlog head and every compatible queued job behind it, up to "
        "`batch_max_recipients` = 3000 recipients). The *baseline* is the naive one-provider-call-per-"
        "recipient Celery task, measured with the same code and limiter by setting "
        "`SMSQ_BATCH_MAX_RECIPIENTS=1`. *Recipients/s* = recipients in send calls the sandbox accepted "
        "(its own call records are the witness) divided by the *window*: the seconds from just before "
        "`enqueue_many` was called until the database showed every job `submitted` (the producer runs in "
        "a thread, so the window may end while it is still publishing send tasks). A run that has not "
        "finished by its time cap is measured over the cap instead (marked *capped*): the baseline is "
        "bound by the limit, so its rate is steady and the cap only keeps the benchmark short. "
        "*429 answers* counts the sandbox's 429s over the whole run: the limiter must keep it at 0. "
        "*Duplicates* counts recipients that reached the sandbox twice: it must be 0. smsq's window is "
        "short (one or a few calls, mostly the time `enqueue_many` needs to commit the backlog while the "
        "workers compete for the same two cores), so its rate varies more from run to run than the "
        "limit-bound baseline's; the ratio against the baseline's best possible rate is the conservative "
        "figure."
    )
    add(
        "2. **Enqueue cost.** N jobs stored and published with one `enqueue_many` call (one transaction, "
        "one broker connection) versus N separate `enqueue()` calls (a transaction and a publish each). "
        "The broker publish to Redis is included in both, and checked: afterwards every job is `queued` and "
        "the send queue holds the connection's `smsq.drain` wake-up: one, however many jobs (at most one "
        "waits per connection and queue; the warm-up job's wake-up already waits, so a second is not "
        "published). Each method is run a few times, "
        "alternating, each time on a fresh database and an empty broker, after one warm-up job that is not "
        "counted; the table shows the median. *ratio* is the cost per job relative to `enqueue_many`."
    )
    add(
        "3. **Peak RSS.** The largest `VmHWM` (resident-set high-water mark, from `/proc/<pid>/status`) "
        "among the worker pool processes, read at the end of each send run."
    )
    add("")
    add("### Results")
    add("")
    for line in summary_lines(report):
        add(f"- {line}")
    add("")
    if report.send_runs:
        add("#### 1. Send throughput")
        add("")
        add(
            "| run | batch_max_recipients | jobs (N) | window | recipients delivered | provider send calls "
            "| recipients / call | recipients / s | steady recipients / s | first / last send call "
            "| 429 answers | duplicates | jobs submitted (DB) | peak RSS (pool process) |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for run in report.send_runs:
            window = f"{run.window_s:.2f} s" + ("" if run.completed else f" (capped at {run.cap_s:g} s)")
            add(
                f"| {run.label} | {run.batch_max_recipients} | {run.jobs:,} | {window} | "
                f"{run.recipients_delivered:,} | {run.provider_calls:,} | {run.recipients_per_call:,.1f} | "
                f"{run.recipients_per_s:,.1f} | {_rate(run.steady_recipients_per_s)} | {_seconds(run.first_call_s)} / {_seconds(run.last_call_s)} | "
                f"{run.throttled_429} | {run.duplicates} | "
                f"{run.jobs_submitted_db:,} | {_mib(run.peak_rss_kib)} |"
            )
        add("")
        smsq, baseline = _send_pair(report)
        if smsq and baseline:
            ceiling = report.send_slots / report.limit_period_s
            steady = baseline.steady_recipients_per_s
            add(
                f"Ratio of throughputs (smsq / baseline, same window): **{_ratio(smsq.recipients_per_s, baseline.recipients_per_s)}**. "
                + (
                    f"Against the baseline's steady rate between its first and last call (leaving out its "
                    f"start-up): **{_ratio(smsq.recipients_per_s, steady)}**. "
                    if steady
                    else ""
                )
                + f"Against the best any one-call-per-recipient sender could do under this limit "
                f"({ceiling:.1f} recipients/s): **{_ratio(smsq.recipients_per_s, ceiling)}**. "
                f"Ratio of recipients per provider call (smsq / baseline): "
                f"**{_ratio(smsq.recipients_per_call, baseline.recipients_per_call)}**. Call times are "
                "seconds after `enqueue_many` was called."
            )
            add("")
            add(
                f"The baseline cannot beat {report.send_slots} calls per {report.limit_period_s:g} s "
                f"(≈ {ceiling:.1f} recipients/s) however many workers run. smsq's ceiling under the same limit "
                f"is {report.send_slots} calls × 3000 recipients per {report.limit_period_s:g} s, so here it "
                "is bound by enqueue, database and HTTP time, not by the limit. Setup (worker start-up: "
                + ", ".join(f"{run.label} {run.worker_startup_s:.1f} s" for run in report.send_runs)
                + "; `enqueue_many` of N, running while the workers drain the backlog: "
                + ", ".join(f"{run.label} {run.enqueue_s:.2f} s" for run in report.send_runs)
                + ")."
            )
            add("")
    if report.enqueue_runs:
        add("#### 2. Enqueue cost")
        add("")
        add(
            "| database | method | jobs (N) | median time (min–max) | ms / job | jobs / s | ratio "
            "| drain wake-ups in the broker | jobs queued |"
        )
        add("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for erun in report.enqueue_runs:
            many = next(
                (
                    r
                    for r in report.enqueue_runs
                    if r.database == erun.database and r.method == "enqueue_many"
                ),
                None,
            )
            ratio = _ratio(erun.ms_per_job, many.ms_per_job) if many else "n/a"
            add(
                f"| {erun.database} | `{erun.method}` | {erun.jobs:,} | {erun.total_s:.2f} s "
                f"({min(erun.samples_s):.2f}–{max(erun.samples_s):.2f}, {len(erun.samples_s)} runs) | "
                f"{erun.ms_per_job:.2f} | {erun.jobs_per_s:,.0f} | {ratio} | "
                f"{_same(erun.broker_messages)} | {_same(erun.published_jobs)} |"
            )
        add("")
    if report.notes:
        add("#### Notes")
        add("")
        for note in report.notes:
            add(f"- {note}")
        add("")
    add("### Run")
    add("")
    add(f"- Command: `{report.command}` ({report.mode} mode, {report.total_s:.0f} s in all)")
    add(f"- Date (UTC): {report.date_utc}")
    for key, value in report.machine.items():
        add(f"- {key}: {value}")
    add("")
    return "\n".join(out)


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- section {name}: start -->", f"<!-- section {name}: end -->"


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The `q` quantile of `values` by the nearest-rank method (a value that occurred), None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def write_section(path: Path, name: str, body: str) -> None:
    """Put `body` into `path` as the section `name`, replacing its previous version; other sections stay.

    A document from before sections (written whole by bench/throughput.py) becomes its
    `bench.throughput` section, headings moved one level down.
    """
    text = path.read_text() if path.exists() else ""
    start, end = _markers(name)
    block = f"{start}\n{body.strip()}\n{end}\n"
    if "<!-- section " not in text:
        legacy = text.strip()
        text = DOCUMENT_HEADER
        if legacy and name != "bench.throughput":
            lines = legacy.splitlines()
            if lines and lines[0].startswith("# "):
                lines[0] = "## Throughput and enqueue cost (`bench/throughput.py`)"
                lines[1:] = [f"#{line}" if line.startswith("##") else line for line in lines[1:]]
            old_start, old_end = _markers("bench.throughput")
            text += "\n" + old_start + "\n" + "\n".join(lines) + "\n" + old_end + "\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + block + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def notes_and_run(add: Callable[[str], None], report: Any, caveat: str) -> None:
    """The closing "Notes" and "Run" parts of a bench section (command, time per part, machine, caveat)."""
    if report.notes:
        add("### Notes")
        add("")
        for note in report.notes:
            add(f"- {note}")
        add("")
    add("### Run")
    add("")
    add(f"- Command: `{report.command}` ({report.mode} mode, {report.total_s:.0f} s in all)")
    add("- Time per part: " + ", ".join(f"{k} {v:.0f} s" for k, v in report.part_s.items()))
    add(f"- Date (UTC): {report.date_utc}")
    for key, value in report.machine.items():
        add(f"- {key}: {value}")
    add(f"- {caveat}")
