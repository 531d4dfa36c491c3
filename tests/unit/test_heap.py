"""The C heap setting the launcher makes before anything else (vmkit_tui/heap.py): large
transient buffers freed must not stay inside the process."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter: a large block freed first (what raises glibc's dynamic threshold),
# then a hundred 0.7 MB buffers (run-list pages) among small long-lived blocks; the buffers
# go, and glibc's free bytes are printed.
SCRIPT = """
import ctypes, sys
from vmkit_tui.heap import keep_heap_small

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

if sys.argv[1] == "set" and not keep_heap_small():
    sys.exit("not set")
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
big = bytes(4 << 20)
del big
pages, kept = [], []
for n in range(100):
    pages.append(bytes(700_000 + n))
    kept.append(bytes(600 + n))
pages.clear()
print(libc.mallinfo2().fordblks)
"""


def free_bytes_after_pages(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_large_buffers_leave_the_heap() -> None:
    assert free_bytes_after_pages("set") < 8 * 2**20  # a few blocks' worth at most
    assert free_bytes_after_pages("default") > 32 * 2**20  # what it was: most of the pages
