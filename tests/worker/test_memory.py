"""Memory freed after a large batch goes back to the operating system (glibc's `malloc_trim`)."""

from __future__ import annotations

import platform
import sys

import pytest

from worker.memory import release_freed_memory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def test_a_freed_batch_no_longer_counts_as_resident_memory() -> None:
    # 100 MiB in 64 KiB blocks (below the mmap threshold: they live in the heap), each followed by a block
    # of the same size that stays, so every freed block sits between live ones and cannot be given back
    # by shrinking the heap: the allocator keeps it, as it keeps a worker's freed 3,000-recipient batches.
    blocks, keep = [], []
    for _ in range(1600):
        blocks.append(bytearray(64 * 1024))
        keep.append(bytearray(64 * 1024))
    del blocks
    before = _rss_kib()
    assert release_freed_memory() is True
    after = _rss_kib()
    assert before - after > 80 * 1024, (before, after)
    assert len(keep) == 1600
