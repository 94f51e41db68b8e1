"""A worker process holds one large batch at a time; small rounds never wait for each other."""

from __future__ import annotations

import threading

from worker.memory import LARGE_BATCH, batch_gate


def _overlapped(recipients: int) -> bool:
    """Two threads enter the gate with `recipients` each: did the second get in while the first was inside?"""
    inside, second_in, release = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with batch_gate(recipients):
            inside.set()
            release.wait(5)

    def second() -> None:
        inside.wait(5)
        with batch_gate(recipients):
            second_in.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    overlapped = second_in.wait(0.3)
    release.set()
    for thread in threads:
        thread.join(5)
    assert second_in.is_set()  # the waiting one always gets in once the first leaves
    return overlapped


def test_a_large_batch_waits_for_the_one_in_memory() -> None:
    assert _overlapped(LARGE_BATCH) is False
    assert _overlapped(3000) is False


def test_small_rounds_run_side_by_side() -> None:
    assert _overlapped(LARGE_BATCH - 1) is True
    assert _overlapped(1) is True


def test_a_thread_holding_the_gate_may_enter_it_again() -> None:
    # A poll that wakes a drain round in the same thread must not deadlock on itself.
    with batch_gate(3000), batch_gate(3000):
        pass
