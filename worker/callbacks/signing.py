"""The webhook signature, Stripe's scheme: `Smsq-Signature: t=<unix seconds>,v1=<hex>` where the hex is
HMAC-SHA256 of the connection's callback secret over `"<t>.<raw body>"`.

A receiver recomputes the HMAC over the raw body it received, compares in constant time, and refuses a
timestamp further than a tolerance (default 300 s) from its own clock, so a captured request cannot be
replayed later; within the window it deduplicates on the event id (the body's `id`, also the
`Smsq-Event-Id` header), which it must do anyway because delivery is at least once.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Smsq-Signature"
EVENT_ID_HEADER = "Smsq-Event-Id"
#: How far a signature's timestamp may be from the receiver's clock.
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, does not match the body, or is too old."""


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value for `body` sent at `timestamp` (now when None)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return f"t={ts},v1={_mac(secret, ts, body)}"


def verify(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check `header` against `body`; returns its timestamp or raises SignatureError."""
    if not header:
        raise SignatureError("no signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError("malformed signature header")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureError("signature does not match the body")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError("timestamp outside the tolerance window")
    return timestamp
