"""Three `redis-server`s (a master and two replicas) and three Sentinels on loopback, in a temp dir.

Private servers on free ports: nothing shared is touched. `kill_master()` SIGKILLs the current master;
the Sentinels (quorum 2, down after 1 s) promote a replica.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.sentinel import Sentinel

from bench.chaos import free_port

SERVICE = "smsq"


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (the Sentinel test starts its own)")
    return binary


class SentinelCluster:
    def __init__(self, workdir: Path, *, down_after_ms: int = 1000) -> None:
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.redis_ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        for index, port in enumerate(self.redis_ports):
            args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            args += ["--dir", str(self._dir(f"redis-{port}"))]
            if index:
                args += ["--replicaof", "127.0.0.1", str(self.redis_ports[0])]
            self._start(port, args)
        self._wait_replicas()
        for port in self.sentinel_ports:
            conf = self._dir(f"sentinel-{port}") / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {conf.parent}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.redis_ports[0]} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 2\n"
            )
            self._start(port, [str(conf), "--sentinel"])
        self.sentinel = Sentinel([("127.0.0.1", p) for p in self.sentinel_ports], socket_timeout=1)
        self._wait(lambda: self._sentinels_agree(), 30, "the Sentinels to see the master and replicas")

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"sentinel://{hosts}/{SERVICE}?db=0"

    def _dir(self, name: str) -> Path:
        path = self.workdir / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _start(self, port: int, args: list[str]) -> None:
        log = (self.workdir / f"{port}.log").open("ab")
        self.procs[port] = subprocess.Popen(
            [_binary(), *args], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        client: redis.Redis[Any] = redis.Redis(port=port, socket_connect_timeout=0.5)
        self._wait(lambda: _pings(client), 20, f"redis-server on {port}")
        client.close()

    def _wait_replicas(self) -> None:
        master: redis.Redis[Any] = redis.Redis(port=self.redis_ports[0])
        self._wait(lambda: master.info("replication").get("connected_slaves") == 2, 30, "two replicas")
        master.close()

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            client: redis.Redis[Any] = redis.Redis(port=port, decode_responses=True)
            try:
                info = client.sentinel_master(SERVICE)
                if int(info.get("num-slaves", 0)) < 2 or int(info.get("num-other-sentinels", 0)) < 2:
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    @staticmethod
    def _wait(predicate: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what}")

    def master_port(self) -> int:
        return int(self.sentinel.discover_master(SERVICE)[1])

    def kill_master(self) -> tuple[int, float]:
        """SIGKILL the master; returns its port and the monotonic time of the kill."""
        port = self.master_port()
        proc = self.procs.pop(port)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return port, time.monotonic()

    def wait_new_master(self, old_port: int, timeout_s: float = 30) -> int:
        def moved() -> bool:
            try:
                return self.master_port() != old_port
            except redis.RedisError:
                return False

        self._wait(moved, timeout_s, "the Sentinels to promote a replica")
        return self.master_port()

    def stop(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self.procs.clear()


def _pings(client: redis.Redis[Any]) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
