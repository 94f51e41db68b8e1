"""The low-credit pause of Sendmode connections.

Sendmode charges credits per SMS part and refuses sends the balance cannot cover. Before submitting,
the send path asks `credit_pause(rt, connection)`: when the connection's balance is below the SMS
parts of its waiting (`queued`) jobs, the connection is paused and the jobs simply stay `queued`;
once the balance covers them again (an operator topped the account up), sending resumes.

State in Redis, shared by every process:

- `smsq:paused:{connection}`: the pause, holding its reason, with a TTL (`PAUSE_TTL_S`) so a pause
  whose evaluator died cannot outlive it; every check sets or clears it.
- `smsq:credits:{connection}`: a hash {balance, fetched_us} with the last balance read and when
  (Redis time). A balance younger than `BALANCE_MAX_AGE_S` is used as is; an older one is refreshed
  by whichever process wins the short `smsq:credits-lock:{connection}` lock, the others keep using
  the old value meanwhile, so a fleet of workers makes about one GET /credits per connection per
  `BALANCE_MAX_AGE_S`. The call goes through the connection's client (and so its rate limiter).

Other providers are never paused here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import func
from sqlmodel import select

from models.db import transaction
from models.enums import JobState, ProviderKey
from models.tables import Job
from worker.errors import ProviderError, RateLimitExceeded
from worker.providers import SendmodeClient
from worker.runtime import Runtime

log = logging.getLogger("smsq.credits")

#: A balance read from Sendmode is trusted for this long.
BALANCE_MAX_AGE_S = 30.0
#: A pause lapses after this long unless a check renews it.
PAUSE_TTL_S = 60
#: How long a paused send should wait before asking again (what `submit_next` returns as wait_s).
RECHECK_S = 10.0
#: Lifetime of the refresh lock (longer than one credits call with its timeout).
_LOCK_TTL_S = 15


def pause_key(connection: str) -> str:
    return f"smsq:paused:{connection}"


def balance_key(connection: str) -> str:
    return f"smsq:credits:{connection}"


def _lock_key(connection: str) -> str:
    return f"smsq:credits-lock:{connection}"


@dataclass(frozen=True)
class CreditState:
    """What the last check found: the balance (None when unknown), the parts waiting, the pause."""

    connection: str
    balance: Decimal | None
    waiting_parts: int
    paused: str | None


def is_sendmode(rt: Runtime, connection: str) -> bool:
    return rt.connection(connection).provider is ProviderKey.SENDMODE


def waiting_parts(rt: Runtime, connection: str) -> int:
    """SMS parts of the connection's jobs waiting to be sent (`queued`)."""
    query = select(func.coalesce(func.sum(Job.parts), 0)).where(
        Job.connection == connection, Job.state == JobState.QUEUED
    )
    with transaction(rt.sessions) as session:
        return int(session.exec(query).one())


def pause_reason(rt: Runtime, connection: str) -> str | None:
    """The reason the connection is paused, or None; reads Redis only (no provider call)."""
    value = rt.redis.get(pause_key(connection))
    return value.decode() if isinstance(value, bytes) else None


def _redis_now_us(rt: Runtime) -> int:
    seconds, micros = rt.redis.time()
    return int(seconds) * 1_000_000 + int(micros)


def _cached(rt: Runtime, connection: str) -> tuple[Decimal | None, int | None]:
    raw = rt.redis.hgetall(balance_key(connection))
    try:
        balance = Decimal(raw[b"balance"].decode())
        fetched_us = int(raw[b"fetched_us"])
    except (KeyError, InvalidOperation, ValueError):
        return None, None
    return balance, fetched_us


def forget_balance(rt: Runtime, connection: str) -> None:
    """Drop the cached balance, so the next check asks Sendmode (after a top-up, `smsq credits`)."""
    rt.redis.delete(balance_key(connection))


def fetch_balance(rt: Runtime, connection: str) -> Decimal:
    """Ask Sendmode now (through the connection's limiter) and cache the answer. Raises provider errors."""
    client = rt.client(connection)
    if not isinstance(client, SendmodeClient):
        raise TypeError(f"connection {connection!r} is not a Sendmode connection")
    balance = client.credits()
    rt.redis.hset(balance_key(connection), mapping={"balance": str(balance), "fetched_us": _redis_now_us(rt)})
    return balance


def read_balance(rt: Runtime, connection: str, *, max_age_s: float = BALANCE_MAX_AGE_S) -> Decimal | None:
    """The balance, from the cache when fresh enough; None when it is unknown and cannot be read now."""
    balance, fetched_us = _cached(rt, connection)
    fresh = fetched_us is not None and _redis_now_us(rt) - fetched_us < max_age_s * 1_000_000
    if balance is not None and fresh:
        return balance
    # One process refreshes; the others go on with the stale value (or None) meanwhile.
    if not rt.redis.set(_lock_key(connection), "1", nx=True, ex=_LOCK_TTL_S):
        return balance
    try:
        return fetch_balance(rt, connection)
    except (ProviderError, RateLimitExceeded) as exc:
        log.warning("cannot read the Sendmode balance of connection %s: %s", connection, type(exc).__name__)
        return balance
    finally:
        rt.redis.delete(_lock_key(connection))


def evaluate(rt: Runtime, connection: str, *, max_age_s: float = BALANCE_MAX_AGE_S) -> CreditState:
    """Compare the balance with the waiting parts, set or clear the pause, and say what was found."""
    if not is_sendmode(rt, connection):
        return CreditState(connection, None, 0, None)
    needed = waiting_parts(rt, connection)
    balance = read_balance(rt, connection, max_age_s=max_age_s)
    if balance is None:
        # Unknown balance: keep whatever was decided last (a pause lapses on its own).
        return CreditState(connection, None, needed, pause_reason(rt, connection))
    if balance < needed:
        reason = (
            f"insufficient Sendmode credits: balance {balance} < {needed} SMS parts waiting; "
            "sending resumes once the account is topped up"
        )
        rt.redis.set(pause_key(connection), reason, ex=PAUSE_TTL_S)
        return CreditState(connection, balance, needed, reason)
    rt.redis.delete(pause_key(connection))
    return CreditState(connection, balance, needed, None)


def check_credits(rt: Runtime, connection: str) -> bool:
    """True when the connection may send (not paused for credits); sets or clears the pause."""
    return evaluate(rt, connection).paused is None


def credit_pause(rt: Runtime, connection: str) -> str | None:
    """The reason the connection must not send now, or None. Call before claiming jobs to submit."""
    if not is_sendmode(rt, connection):
        return None
    return evaluate(rt, connection).paused
