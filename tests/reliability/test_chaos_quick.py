"""The fast cases of the reliability suite (bench/chaos.py), run in CI: a worker SIGKILLed mid-call and
Redis restarted empty with >= 40 messages reserved by the workers, each with real worker and beat
processes (restarted when they exit, as systemd `Restart=always` would), a private `redis-server`, the
sandbox as its own process and a SQLite file. The full suite, with a private PostgreSQL cluster and every
fault, is `python -m bench.chaos` (docs/reliability.md).
"""

from __future__ import annotations

from pathlib import Path

from bench.chaos import Result, kill_mid_call, redis_restart_reserved


def _assert_clean(result: Result) -> None:
    assert result.error is None, result.error
    assert (result.duplicates, result.lost) == (0, 0), (result.states, result.notes)
    assert result.max_window <= result.budget, result.max_window


def test_kill_9_of_a_worker_mid_call_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    result = kill_mid_call(tmp_path, None, 2, database="sqlite")
    _assert_clean(result)
    assert result.restarts.get("worker killed by the suite") == 2


def test_redis_restarted_empty_with_reserved_messages_loses_nothing(tmp_path: Path) -> None:
    result = redis_restart_reserved(tmp_path, None, 1, jobs=60, groups=3, want_reserved=40, database="sqlite")
    _assert_clean(result)
    assert result.jobs == 60 and set(result.states) <= {"finished"}
