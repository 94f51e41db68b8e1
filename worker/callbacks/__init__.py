"""Outcome callbacks: tell the application when a recipient's state (or its job's) changes.

    spec.py      what a callback is (a webhook URL, or a task name and queue) and how it is validated
    signing.py   the webhook signature (HMAC-SHA256 over "timestamp.body") and its verification
    outbox.py    the sweep that notes changed outcomes as outbox events, in one transaction
    delivery.py  sends due outbox events: bounded per receiver, retried with backoff, then failed
    tasks.py     the beat task `smsq.callbacks` on its own queue
    report.py    what `smsq status` shows about a job's callbacks

Outcomes are written by the send path (submit, poll, sweeps); this package never hooks into it. It reads
the database, where outcomes are durable before it looks, so a crash anywhere loses no event.
"""

from __future__ import annotations

from worker.callbacks.signing import SignatureError, sign, verify
from worker.callbacks.spec import CallbackSpec

__all__ = ["CallbackSpec", "SignatureError", "sign", "verify"]
