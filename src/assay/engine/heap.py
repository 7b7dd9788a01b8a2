"""Process heap settings for long batch loops (glibc only; elsewhere a no-op)."""

from __future__ import annotations

#: The heap keeps this much freed memory at its top for reuse; anything above goes back to the system.
MALLOC_TRIM_THRESHOLD = 256 * 2**20
MALLOC_TOP_PAD = 16 * 2**20
#: Blocks up to this size come from the heap, not from a mapping of their own (glibc's ceiling on 64-bit).
MALLOC_MMAP_THRESHOLD = 32 * 2**20

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_heap() -> None:
    """Let this process's heap keep what it frees for its next batches instead of handing it back to the system.

    Called by each hunt worker when it starts.

    A batch's record texts (tens of MB of Python strings the Rust parser allocates with malloc) are freed a moment
    later. Trimming the heap after each unit (``malloc_trim``, as this did before) and glibc's default 128 KB trim
    threshold gave those pages back, and every batch faulted them in again: ~0.8 page faults per event, 6 CPU-s of
    kernel time per 1M events over two workers. Now the heap keeps up to ``MALLOC_TRIM_THRESHOLD`` free at its top
    (anything above goes back), and blocks up to 32 MB come from the heap rather than from a fresh mapping each
    time: 0.45 faults per event, kernel time 6.2 -> 3.9 s. Peak PSS at 10M events: 1,290-1,313 MiB, against
    1,263-1,278 before (bench/bench_hunt.py)."""
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return  # not glibc: its allocator keeps its own defaults
    mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD)
    mallopt(M_TOP_PAD, MALLOC_TOP_PAD)
    mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)
