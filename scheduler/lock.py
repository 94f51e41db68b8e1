"""A short Redis lock so a second beat (or a slow sweep) never runs the same sweep twice at once."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@contextlib.contextmanager
def sweep_lock(client: redis.Redis[Any], name: str, ttl_s: float) -> Iterator[bool]:
    """Yields True when this process holds the lock `name` (released on exit), False when another does."""
    key = f"smsq:lock:{name}"
    token = secrets.token_hex(8)
    held = bool(client.set(key, token, nx=True, px=max(int(ttl_s * 1000), 1000)))
    try:
        yield held
    finally:
        if held:
            client.eval(_RELEASE, 1, key, token)  # type: ignore[no-untyped-call]
