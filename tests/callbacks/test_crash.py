"""A worker killed between the outcome write and the callback: the event still arrives, with the same id.

Real processes: one beat and a worker consuming `smsq.callback`. The receiver holds the first request;
the worker is killed (SIGKILL) while that request is open, so the event was never acknowledged. A new
worker sends it again once the dead one's lock has expired.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from tests.callbacks.conftest import Receiver, callback_settings
from tests.callbacks.support import enqueue_with, finish_job, outbox, recipient_ids, write_outcome
from tests.conftest import Processes, Sandbox, settings_env, wait_until
from worker.callbacks.outbox import event_id
from worker.runtime import Runtime

NO_PROVIDER = Sandbox("http://127.0.0.1:9", None)


def test_a_worker_killed_mid_callback_loses_no_event(
    tmp_path: Path, make_runtime: Callable[..., Runtime], receiver: Receiver, processes: Processes
) -> None:
    from models.migrate import upgrade

    database_url = f"sqlite:///{tmp_path / 'smsq.db'}"
    upgrade(database_url)
    settings = callback_settings(NO_PROVIDER, database_url, callback_interval_s=0.5, callback_timeout_s=1.0)
    rt = make_runtime(settings, manual=False)
    job_id = enqueue_with(rt, {"url": receiver.url})
    [rid] = recipient_ids(rt, job_id)
    # Given the outcome durable in the database, and a receiver that holds the first request open
    write_outcome(rt, rid, "delivered", True, process_status="DONE", status="SUC_FIN")
    receiver.hold, receiver.status = threading.Event(), 503
    env = settings_env(settings)
    processes.beat(env)
    worker = processes.worker(env, name="cb", queues="smsq.callback")
    # When the worker is killed while its callback is in flight
    assert receiver.arrived.wait(30), processes.logs()
    processes.kill(worker)
    receiver.status = 200
    receiver.hold.set()  # the held request answers a dead socket: never counted as delivered
    assert outbox(rt, job_id)[0].state == "pending"
    # Then a new worker delivers it, under the same id
    processes.worker(env, name="cb2", queues="smsq.callback")
    wait_until(lambda: receiver.ids(), 30, what="the event after the crash")
    finish_job(rt, job_id)
    wait_until(lambda: len(receiver.ids()) >= 2, 30, what="the job event")
    assert set(receiver.ids()) == {event_id(rid, "delivered", True), event_id(job_id, "finished", True)}
    receiver.verified()
    wait_until(lambda: {e.state for e in outbox(rt, job_id)} == {"delivered"}, 10)
