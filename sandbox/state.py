"""Everything the sandbox remembers, in memory behind one lock: jobs per data center, Sendmode sends,
credits, opt-outs, contacts, duplicate-detection fingerprints, call records, the rate limiter and the
fault knobs. `reset()` forgets it all. The control API (control.py) and tests read and steer it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from models.clock import Clock, SystemClock
from sandbox.config import SandboxConfig
from sandbox.faults import FaultKind, Faults, Knob
from sandbox.jobs import RetarusJob, SendmodeMessage, format_ts
from sandbox.limiter import SlidingWindowLimiter
from sandbox.progress import Timing

#: Name of the data center served under `/rest/v1` (HTTP Simple jobs live there too).
PRIMARY_DATACENTER = "primary"
#: Retarus duplicateDetection window (PROVIDERS.md 1.4), in sandbox time.
DUPLICATE_WINDOW = timedelta(minutes=10)


@dataclass
class CallRecord:
    """One API call as the sandbox saw it. `status_code` is None while the call is in flight (held)."""

    seq: int
    real_ts: float
    sandbox_ts: datetime
    api: str
    method: str
    path: str
    credential: str | None = None
    status_code: int | None = None
    job_ids: list[str] = field(default_factory=list)
    #: Why the answer is not the plain one: "fail_next", "rate_limited", "magic", "slow", "drop",
    #: "malformed", "held", "disconnected" (the caller went away while held; nothing was processed).
    fault: str | None = None
    held: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "real_ts": self.real_ts,
            "sandbox_ts": format_ts(self.sandbox_ts),
            "api": self.api,
            "method": self.method,
            "path": self.path,
            "credential": self.credential,
            "status_code": self.status_code,
            "job_ids": list(self.job_ids),
            "fault": self.fault,
            "held": self.held,
        }


class SandboxState:
    """The sandbox's memory; safe to use from the server thread and test threads at once."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        clock: Clock | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SandboxConfig()
        self.clock: Clock = clock or SystemClock()
        self.timing = Timing(self.config.accept_s, self.config.deliver_s)
        self.datacenters = (PRIMARY_DATACENTER, *self.config.extra_datacenters)
        self.limiter = SlidingWindowLimiter(
            self.config.limit_calls, self.config.limit_period_s, monotonic=monotonic
        )
        self.faults = Faults()
        self._lock = threading.Lock()
        self._calls: list[CallRecord] = []
        self._jobs: dict[str, RetarusJob] = {}
        self._fingerprints: dict[tuple[str, str], datetime] = {}
        self._sendmode: list[SendmodeMessage] = []
        self._credits: dict[str, float] = {}
        self._optouts: dict[str, dict[str, dict[str, object]]] = {}
        self._contacts: dict[str, dict[str, dict[str, dict[str, object]]]] = {}

    def now(self) -> datetime:
        return self.clock.now()

    def reset(self) -> None:
        """Forget every job, call, credit change, opt-out, contact, knob and rate-limit window."""
        with self._lock:
            self._calls.clear()
            self._jobs.clear()
            self._fingerprints.clear()
            self._sendmode.clear()
            self._credits.clear()
            self._optouts.clear()
            self._contacts.clear()
        self.limiter.reset()
        self.faults.clear()

    # -- call records -------------------------------------------------------------------------------

    def begin_call(self, api: str, method: str, path: str) -> CallRecord:
        with self._lock:
            record = CallRecord(len(self._calls) + 1, time.time(), self.now(), api, method, path)
            self._calls.append(record)
            return record

    def calls(
        self, credential: str | None = None, path_prefix: str | None = None, since: int = 0
    ) -> list[CallRecord]:
        """Copies of the call records, oldest first; `credential` may be a label or a raw API key; `since`
        skips the first records (as counted before any filter), so a poller reads only what is new."""
        label = None if credential is None else self.config.credential_label(credential)
        with self._lock:
            return [
                CallRecord(**{**vars(c), "job_ids": list(c.job_ids)})
                for c in self._calls[since:]
                if (label is None or c.credential == label)
                and (path_prefix is None or c.path.startswith(path_prefix))
            ]

    # -- Retarus jobs -------------------------------------------------------------------------------

    def add_job(self, job: RetarusJob) -> None:
        with self._lock:
            self._jobs[job.job_id] = job

    def job(self, datacenter: str, job_id: str) -> RetarusJob | None:
        """The job if this data center holds it (another data center's job is "not found" here)."""
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.datacenter == datacenter else None

    def jobs(self, datacenter: str | None = None) -> list[RetarusJob]:
        """Jobs in receipt order, of one data center or of all."""
        with self._lock:
            found = [j for j in self._jobs.values() if datacenter is None or j.datacenter == datacenter]
        return sorted(found, key=lambda j: j.receipt_ts)

    def is_duplicate(self, credential: str, fingerprint: str, now: datetime) -> bool:
        """True when an equal request from this credential was accepted within the window; else remember it.

        ASSUMPTION: the window is per credential across all data centers (one account), so a resend to
        the other data center is caught too.
        """
        key = (credential, fingerprint)
        with self._lock:
            # Oldest first (insertion order follows the clock): forgetting expired ones stops at the first
            # one still inside the window, so a call costs the same whatever the traffic of the last 10 min.
            while self._fingerprints:
                oldest, seen = next(iter(self._fingerprints.items()))
                if now - seen < DUPLICATE_WINDOW:
                    break
                del self._fingerprints[oldest]
            last = self._fingerprints.get(key)
            if last is not None and now - last < DUPLICATE_WINDOW:
                return True
            self._fingerprints.pop(key, None)
            self._fingerprints[key] = now  # (re)inserted last: the dict stays in time order
            return False

    # -- Sendmode -----------------------------------------------------------------------------------

    def add_sendmode_message(self, message: SendmodeMessage) -> None:
        with self._lock:
            self._sendmode.append(message)

    def sendmode_messages(self) -> list[SendmodeMessage]:
        with self._lock:
            return list(self._sendmode)

    def balance(self, credential: str) -> float:
        with self._lock:
            return self._credits.get(credential, self.config.initial_credits)

    def try_charge(self, credential: str, credits: float) -> bool:
        """Take `credits` from the balance if it covers them."""
        with self._lock:
            balance = self._credits.get(credential, self.config.initial_credits)
            if credits > balance:
                return False
            self._credits[credential] = balance - credits
            return True

    def set_credits(self, credential: str, balance: float) -> None:
        """Set a Sendmode balance; `credential` may be a raw API key or its label."""
        with self._lock:
            self._credits[self.config.credential_label(credential)] = float(balance)

    def opt_out(self, credential: str, number: str, details: dict[str, object]) -> None:
        with self._lock:
            self._optouts.setdefault(credential, {})[_number_key(number)] = {
                "mobilenumber": number,
                **details,
            }

    def is_opted_out(self, credential: str, number: str) -> bool:
        with self._lock:
            return _number_key(number) in self._optouts.get(credential, {})

    def optouts(self) -> dict[str, list[dict[str, object]]]:
        with self._lock:
            return {cred: list(numbers.values()) for cred, numbers in self._optouts.items()}

    def import_contact(self, credential: str, group: str, contact: dict[str, object]) -> None:
        """Store (or replace, by number) a contact in a group; the group is created when new."""
        number = str(contact["mobilenumber"])
        with self._lock:
            groups = self._contacts.setdefault(credential, {})
            groups.setdefault(group, {})[_number_key(number)] = dict(contact)

    def contacts(self) -> dict[str, dict[str, list[dict[str, object]]]]:
        with self._lock:
            return {
                cred: {group: list(members.values()) for group, members in groups.items()}
                for cred, groups in self._contacts.items()
            }

    # -- snapshots ----------------------------------------------------------------------------------

    def snapshot_jobs(self) -> list[dict[str, object]]:
        now = self.now()
        retarus = [job.snapshot(now) for job in self.jobs()]
        return retarus + [m.snapshot() for m in self.sendmode_messages()]

    # -- fault knobs --------------------------------------------------------------------------------

    def _label(self, credential: str | None) -> str | None:
        return None if credential is None else self.config.credential_label(credential)

    def fail_next(
        self, n: int = 1, status: int = 500, credential: str | None = None, path_prefix: str | None = None
    ) -> None:
        """Answer the next `n` matching calls with `status` (5xx) without processing them."""
        self.faults.add(Knob(FaultKind.FAIL_NEXT, self._label(credential), path_prefix, n, status=status))

    def slow(
        self,
        seconds: float,
        credential: str | None = None,
        path_prefix: str | None = None,
        n: int | None = None,
    ) -> None:
        """Process matching calls, then wait `seconds` before answering (until cleared, or `n` calls)."""
        self.faults.add(Knob(FaultKind.SLOW, self._label(credential), path_prefix, n, seconds=seconds))

    def drop(self, n: int = 1, credential: str | None = None, path_prefix: str | None = None) -> None:
        """Process the next `n` matching calls, then close the connection without answering."""
        self.faults.add(Knob(FaultKind.DROP, self._label(credential), path_prefix, n))

    def malformed(self, n: int = 1, credential: str | None = None, path_prefix: str | None = None) -> None:
        """Process the next `n` matching calls, then answer their 2xx status with an unreadable body."""
        self.faults.add(Knob(FaultKind.MALFORMED, self._label(credential), path_prefix, n))

    def hold(
        self,
        path_prefix: str | None = None,
        credential: str | None = None,
        *,
        late: bool = False,
        n: int | None = None,
    ) -> None:
        """Block matching calls (the next `n`, or all) before processing until `release()`; `late`:
        process them then even if their caller has gone (a late arrival)."""
        self.faults.add(Knob(FaultKind.HOLD, self._label(credential), path_prefix, n, late=late))

    def release(self, path_prefix: str | None = None) -> int:
        """Let held calls proceed (all holds, or those set with this path prefix)."""
        return self.faults.release(path_prefix)


def _number_key(number: str) -> str:
    """ASSUMPTION: Sendmode numbers are compared by their digits only (spaces, dashes and `+` ignored)."""
    return "".join(ch for ch in number if ch.isdigit())
