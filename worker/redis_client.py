"""Redis clients from one URL: a plain `redis://` (or `rediss://`) server, or a master found through Sentinel.

Sentinel URLs name the sentinels and the service, the way kombu and redis-py take them apart:

    sentinel://[:password@]host:port[,host:port...]/service[?db=N]

(`;sentinel://host:port` between sentinels, kombu's own spelling, is accepted too). The password, if any,
is the Redis master's; the sentinels are asked without one. `redis_from_url` returns a client whose
connections always go to the current master and that follows a failover (a connection to a demoted master
is dropped and the master asked for again). `celery_broker` turns the same URL into kombu's broker URL and
its `master_name` transport option, so `SMSQ_BROKER_URL` takes the same form.

Failover and the limiter: Redis replicates asynchronously, so a promoted replica may miss the last grants
the old master made, while it does hold the limiter's state marker (`smsq:limiter:{name}:state`): the
limiter would then trust a window that lacks calls the provider did count. Each new connection of a
Sentinel client therefore compares the master's `run_id` with the one recorded in `smsq:redis:master`
(one Lua script, atomic); on the first connection to a new master it records it and deletes every limiter's
state marker, so the limiter rebuilds the window from the database before it grants anything, exactly as
after a Redis restart (`RedisRateLimiter.recover`). Commands that meet the failover are retried until the
new master answers (`FAILOVER_RETRY`); a retried limiter grant may count once more than it granted, which
errs on the safe side. A plain `redis://` client is built exactly as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

#: Where the run_id of the master the limiter's state belongs to is recorded.
MASTER_KEY = "smsq:redis:master"
#: The limiter's state markers (worker/rate_limit/limiter.py): deleted once per new master.
LIMITER_MARKERS = "smsq:limiter:*:state"

# KEYS[1] the master record; ARGV[1] the marker pattern. Returns the number of markers deleted (0: same master).
_NEW_MASTER_LUA = """
local info = redis.call('INFO', 'server')
local run_id = string.match(info, 'run_id:(%w+)')
if run_id == nil or redis.call('GET', KEYS[1]) == run_id then
  return 0
end
local deleted = 0
local previous = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], run_id)
if previous then
  for _, key in ipairs(redis.call('KEYS', ARGV[1])) do
    deleted = deleted + redis.call('DEL', key)
  end
end
return deleted
"""

SENTINEL_SCHEMES = ("sentinel", "sentinels")

#: A Sentinel client retries a command that met a dead or demoted master (connection refused, reset,
#: READONLY) with backoff 0.1 s doubling to 2 s, 10 times: about 15 s, longer than a failover takes with
#: `down-after-milliseconds` up to about 10 s. Each retry asks the Sentinels for the master again.
FAILOVER_RETRY = (ExponentialBackoff(cap=2.0, base=0.1), 10)


@dataclass(frozen=True)
class SentinelURL:
    """A parsed `sentinel://` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = None
    username: str | None = None
    ssl: bool = False


def is_sentinel(url: str) -> bool:
    return url.split(":", 1)[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelURL:
    """Parse `sentinel://[:pw@]h:p[,h:p...]/service[?db=N]` (or kombu's `;sentinel://h:p` list); ValueError
    says what is missing."""
    if not is_sentinel(url):
        raise ValueError(f"not a sentinel:// URL: {url.split('@')[-1]!r}")
    ssl = url.lower().startswith("sentinels:")
    # kombu's list form: "sentinel://h1:p/0;sentinel://h2:p/0" -> one URL with comma-separated hosts.
    parts = [part.strip() for part in url.split(";") if part.strip()]
    first = urlsplit(parts[0])
    hosts = [first.netloc.rsplit("@", 1)[-1]]
    hosts += [urlsplit(part).netloc.rsplit("@", 1)[-1] for part in parts[1:]]
    sentinels: list[tuple[str, int]] = []
    for host in ",".join(hosts).split(","):
        host = host.strip()
        if not host:
            continue
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        try:
            sentinels.append((name.strip("[]"), int(port)))
        except ValueError:
            raise ValueError(f"sentinel URL: bad port in {host!r}") from None
    if not sentinels:
        raise ValueError("sentinel URL: name at least one sentinel host:port")
    query = parse_qs("&".join(urlsplit(part).query for part in parts))
    segments = [segment for segment in first.path.split("/") if segment]
    service = (query.get("master_name") or query.get("service") or [""])[0]
    db_text = (query.get("db") or [""])[0]
    for segment in segments:
        if segment.isdigit() and not db_text:
            db_text = segment
        elif not segment.isdigit() and not service:
            service = segment
    if not service:
        raise ValueError("sentinel URL: name the service (master name): sentinel://host:26379/mymaster")
    userinfo = first.netloc.rpartition("@")[0] if "@" in first.netloc else ""
    username, _, password = userinfo.partition(":") if ":" in userinfo else ("", "", userinfo)
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=service,
        db=int(db_text or 0),
        password=unquote(password) or None,
        username=unquote(username) or None,
        ssl=ssl,
    )


class _FailoverAwareConnection(SentinelManagedConnection):
    """A connection to the current master that, on connecting, notes a new master (see module doc)."""

    def on_connect_check_health(self, check_health: bool = True) -> None:
        super().on_connect_check_health(check_health=check_health)  # type: ignore[misc]
        if self.connection_pool.is_master:
            self.send_command("EVAL", _NEW_MASTER_LUA, 1, MASTER_KEY, LIMITER_MARKERS)
            self.read_response()


def redis_from_url(url: str, **kwargs: Any) -> redis.Redis[Any]:
    """A Redis client for `url`: `redis.Redis.from_url` for redis:// and rediss://, the master of a
    Sentinel service for sentinel:// (see module doc). `kwargs` are connection options (timeouts...)."""
    if not is_sentinel(url):
        return redis.Redis.from_url(url, **kwargs)
    parsed = parse_sentinel_url(url)
    sentinel_kwargs: dict[str, Any] = {
        key: kwargs[key] for key in ("socket_timeout", "socket_connect_timeout") if key in kwargs
    }
    sentinel = Sentinel(list(parsed.sentinels), sentinel_kwargs=sentinel_kwargs)
    backoff, retries = FAILOVER_RETRY
    client: redis.Redis[Any] = sentinel.master_for(
        parsed.service,
        connection_class=_FailoverAwareConnection,
        retry=Retry(backoff, retries),
        db=parsed.db,
        password=parsed.password,
        username=parsed.username,
        **kwargs,
    )
    return client


def celery_broker(url: str) -> tuple[str, dict[str, Any]]:
    """The broker URL and extra transport options kombu needs for `url` (sentinel: one `sentinel://h:p/db`
    per sentinel joined by `;`, and `master_name`); any other URL is returned as it is."""
    if not is_sentinel(url):
        return url, {}
    parsed = parse_sentinel_url(url)
    auth = f":{parsed.password}@" if parsed.password else ""
    broker = ";".join(f"sentinel://{auth}{host}:{port}/{parsed.db}" for host, port in parsed.sentinels)
    return broker, {"master_name": parsed.service}
