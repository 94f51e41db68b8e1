"""The sandbox's records of what it accepted: Retarus jobs (REST v1 and HTTP Simple) and Sendmode sends.

A Retarus job is immutable once received; its recipients' states are read off their planned timelines
(progress.py) at the sandbox clock's "now", and rendered here as the contract's JobReport and
RecipientReport (PROVIDERS.md 1.5): camelCase, encoding lowercase, timestamps `...T10:25:00.000Z`, and
`sentTs` / `finishedTs` present only once they happened.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime

from sandbox.progress import RecipientStatus, Timeline, status_at

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, now: datetime) -> str:
    """`J.YYYYMMDD-HHMMSS.mmm-<18 alnum>` (prefix "J" for jobs, "S" for SMS) stamped with sandbox time."""
    utc = now.astimezone(UTC)
    stamp = utc.strftime("%Y%m%d-%H%M%S") + f".{utc.microsecond // 1000:03d}"
    suffix = "".join(secrets.choice(_ID_ALPHABET) for _ in range(18))
    return f"{prefix}.{stamp}-{suffix}"


def format_ts(when: datetime) -> str:
    """UTC with milliseconds and `Z`, as the Retarus examples write timestamps."""
    utc = when.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{utc.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class RetarusRecipient:
    sms_id: str
    dst: str
    customer_ref: str
    timeline: Timeline

    def status(self, now: datetime) -> RecipientStatus:
        return status_at(self.timeline, now)

    def report(self, now: datetime) -> dict[str, object]:
        """RecipientReport at `now`."""
        state = self.status(now)
        body: dict[str, object] = {
            "smsId": self.sms_id,
            "dst": self.dst,
            "processStatus": state.process_status.value,
            "status": state.status,
            "customerRef": self.customer_ref,
            "reason": state.reason,
        }
        if state.sent_ts is not None:
            body["sentTs"] = format_ts(state.sent_ts)
        if state.finished_ts is not None:
            body["finishedTs"] = format_ts(state.finished_ts)
        return body


@dataclass(frozen=True)
class RetarusJob:
    job_id: str
    #: Data center whose store holds the job ("primary" or an extra data center's name).
    datacenter: str
    #: "rest" or "httpsimple": which API created it.
    api: str
    credential: str
    receipt_ts: datetime
    #: JobReport option fields, fixed at receipt (src, encoding, billcode, ...).
    options: dict[str, object]
    recipients: tuple[RetarusRecipient, ...]

    def finished_ts(self, now: datetime) -> datetime | None:
        """Latest recipient finishedTs once every recipient is final, else None."""
        finished = [r.status(now).finished_ts for r in self.recipients]
        if any(ts is None for ts in finished):
            return None
        return max(ts for ts in finished if ts is not None)

    def report(self, now: datetime) -> dict[str, object]:
        """JobReport at `now`."""
        body: dict[str, object] = {
            "jobId": self.job_id,
            **self.options,
            "receiptTs": format_ts(self.receipt_ts),
        }
        finished = self.finished_ts(now)
        if finished is not None:
            body["finishedTs"] = format_ts(finished)
        body["recipientIds"] = [r.sms_id for r in self.recipients]
        return body

    def snapshot(self, now: datetime) -> dict[str, object]:
        """Everything the control API shows about the job."""
        return {
            "api": self.api,
            "datacenter": self.datacenter,
            "credential": self.credential,
            **self.report(now),
            "recipients": [r.report(now) for r in self.recipients],
        }


@dataclass(frozen=True)
class SendmodeRecipient:
    number: str
    #: Opted out: accepted (and not charged) but never delivered.
    suppressed: bool


@dataclass(frozen=True)
class SendmodeMessage:
    message_id: str
    credential: str
    accepted_ts: datetime
    scheduled_ts: datetime | None
    senderid: str | None
    customerid: str | None
    parts: int
    recipients: tuple[SendmodeRecipient, ...]

    def snapshot(self) -> dict[str, object]:
        return {
            "api": "sendmode",
            "messageId": self.message_id,
            "credential": self.credential,
            "acceptedTs": format_ts(self.accepted_ts),
            "scheduledTs": None if self.scheduled_ts is None else format_ts(self.scheduled_ts),
            "senderid": self.senderid,
            "customerid": self.customerid,
            "parts": self.parts,
            "recipients": [
                {"number": r.number, "outcome": "suppressed" if r.suppressed else "accepted"}
                for r in self.recipients
            ],
        }
