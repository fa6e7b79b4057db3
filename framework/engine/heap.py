"""The C allocator's thresholds for a run: a block of records must not pay page faults for its temporaries.

The chief handles its records in blocks of up to ``record.BLOCK_ITEMS`` items, each column 512 KiB, and
every numpy step over a block makes a temporary of that size. glibc serves an allocation of 128 KiB or
more with a fresh ``mmap`` and gives it back on ``free``, so each temporary is faulted in page by page,
again and again: a block's histograms cost 5x what the same steps cost on warm memory (measured: 5.0
against 1.0 ns per item for ``frexp((d | mask).astype(float))`` over 65,536 items). Raising the mmap
threshold keeps such blocks on the heap, and raising the trim threshold keeps the freed top of the heap
for the next block.

The setting is per process and stays (glibc cannot say what it was before); a worker forked from the
chief inherits it. The chief's memory stays flat: what it keeps is bounded by its largest block's
temporaries plus ``TRIM_THRESHOLD_BYTES``. Elsewhere than glibc (macOS, musl) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

MMAP_THRESHOLD_BYTES = 8 << 20
"""Allocations below this come from the heap (glibc's default: 128 KiB, rising as large blocks are freed)."""
TRIM_THRESHOLD_BYTES = 64 << 20
"""Free memory at the top of the heap kept for reuse instead of being returned to the system."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_applied: bool | None = None


def keep_blocks_on_the_heap() -> bool:
    """Raise glibc's mmap and trim thresholds in this process (once); whether they are raised."""
    global _applied
    if _applied is None:
        _applied = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):
                return False  # not glibc
            mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
            _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and \
                bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
    return _applied
