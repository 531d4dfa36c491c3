"""The C heap of a long-running process: freed memory goes back to the system.

glibc's malloc raises its mmap threshold to the size of each large block freed, so after the
first few, every large transient buffer (a 0.7 MB run-list page, a job log, the history file
read for a write) comes from the heap instead of its own mapping, and what is freed there stays
in the process. Worker threads (spool and history writes) each get an arena of their own, each
keeping its own freed memory. In the soak bench (`bench/soak.py --census`, 6 minutes at 20x),
from minute 1 to the end the memory free inside glibc's arenas went from 32 to 50 MiB and the
RSS grew 20.6 MiB; with a fixed 128 KiB threshold and two arenas, 1.6 to 2.0 MiB free and 8.0
MiB growth (the history and the caches filling toward their bounds). Elsewhere (another libc,
another system) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed: no dynamic raise
ARENA_MAX = 2


def keep_heap_small() -> bool:
    """Set glibc's malloc to return large freed blocks and use few arenas; whether it could.
    Call it before any thread starts."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        # The C library this process already runs on: no search (ctypes.util's find_library
        # costs 15 ms of imports and a subprocess at every start).
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only (musl has mallopt as a stub)
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) & bool(mallopt(M_ARENA_MAX, ARENA_MAX))
