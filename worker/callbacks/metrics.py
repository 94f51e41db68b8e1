"""Prometheus counters of outcome callbacks (served like every smsq counter: docs/operations.md)."""

from __future__ import annotations

from prometheus_client import Counter

CALLBACK_EVENTS = Counter(
    "smsq_callback_events_total",
    "Callback events that ended, by connection, kind (webhook, task) and result (delivered, failed)",
    ["connection", "kind", "result"],
)
CALLBACK_ATTEMPTS = Counter(
    "smsq_callback_attempts_total",
    "Callback delivery attempts by connection, kind and result (ok, error)",
    ["connection", "kind", "result"],
)
CALLBACK_NOTED = Counter(
    "smsq_callback_noted_total",
    "Callback events written to the outbox",
)
