"""Handing memory freed after a large batch back to the operating system.

A drain round or a poll handles up to 3,000 recipients at once: their rows, request body and answer are
freed when the round ends, but glibc's allocator keeps the freed pages inside each thread's heap, so a
worker whose threads once held several batches at the same time keeps that peak as resident memory for
good (measured: +50 MB on a `-P threads -c 4` worker after a 30,000-job backlog). `malloc_trim(0)`
returns those free pages; it is called when a drain or poll task ends (worker/app.py). Where the C
library has no `malloc_trim` (musl, macOS) this does nothing.

Trimming cannot return what CPython's own small-object arenas hold: an arena is freed only when every
object in it is, and the objects of threads that ran batches at the same time interleave in the same
arenas. So a process holds one large batch at a time (`batch_gate`): a drain round that may claim, or a
poll that reads, `LARGE_BATCH` recipients or more waits for the one running in another thread of the
same process. Under the provider's limit this costs no throughput (a round waits for slots far longer
than it computes, and the GIL runs one thread's Python at a time anyway); other processes are not held.
"""

from __future__ import annotations

import ctypes
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: A round or poll of this many recipients or more holds the process's batch gate while it runs.
LARGE_BATCH = 500

_GATE = threading.RLock()


def _find_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the symbols of the running process, its C library included
    except OSError:
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _find_trim()


def release_freed_memory() -> bool:
    """Give the C allocator's free pages back to the OS; False where that is not possible."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


@contextmanager
def batch_gate(recipients: int) -> Iterator[None]:
    """Hold the process's batch gate while a batch of `recipients` (if large) is in memory."""
    if recipients < LARGE_BATCH:
        yield
        return
    with _GATE:
        yield
