"""keep_freed_heap: a freed 20 MB buffer is reused from the heap, not mapped and faulted in again."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

# Allocates, touches and frees a 20 MB block twice; prints the page faults of the second round.
_PROBE = """
import ctypes, json, resource, sys
sys.path[:0] = {paths!r}
if {tuned!r}:
    from assay.engine.heap import keep_freed_heap
    keep_freed_heap()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 20 * 2**20
def round_trip():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
round_trip()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _second_round_faults(tuned: bool) -> int:
    code = _PROBE.format(paths=sys.path, tuned=tuned)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return int(json.loads(done.stdout))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_block_is_reused_without_page_faults() -> None:
    pages = 20 * 2**20 // 4096
    # glibc's defaults map a 20 MB block afresh each time: every page faults in again
    assert _second_round_faults(tuned=False) > pages // 2
    # kept in the heap: the second round touches pages already there
    assert _second_round_faults(tuned=True) < pages // 20
