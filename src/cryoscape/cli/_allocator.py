"""Memory-allocator settings of the ``cryoscape`` process (glibc malloc on Linux).

Training allocates and frees the same large activation tensors (tens of MB) at every step. glibc serves
blocks above its mmap threshold with fresh ``mmap`` calls and returns them to the system when freed, so
every step pays the page faults of first-touching tens of MB again: measured 15–20 % of the CPU training
time of the 256×3 decoder at box 64. Keeping freed memory in the heap for reuse removes that cost; the peak
memory (what the largest step needs) is unchanged.

This is a process-wide setting, applied by the command-line entry point (never at import). A user who sets
glibc's own ``MALLOC_*`` environment variables keeps them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: glibc ``mallopt`` parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks up to this size come from the heap (bytes); the heap is trimmed only above this much free top.
_THRESHOLD_BYTES = 1 << 30


def retain_freed_memory() -> bool:
    """Ask glibc malloc to reuse freed large blocks instead of unmapping them; True if applied.

    Does nothing (False) off Linux/glibc or when any ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``
    environment variable is set.
    """
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _THRESHOLD_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                _THRESHOLD_BYTES))
