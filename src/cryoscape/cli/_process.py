"""Process-wide settings of the ``cryoscape`` command, applied by its entry point (never at import).

Memory allocator (glibc malloc on Linux): training allocates and frees the same large activation tensors
(tens of MB) at every step. glibc serves blocks above its mmap threshold with fresh ``mmap`` calls and returns
them to the system when freed, so every step pays the page faults of first-touching them again, a sizeable
part of the CPU training time. Freed memory is kept in the heap for reuse instead; the price is a higher
resident peak. Throughput and peak resident memory of training with these settings are measured by
``benchmarks/vs_cryodrgn.py`` (``benchmarks/results/vs_cryodrgn.json``: ``images_per_s``, ``peak_rss_mib``).

A user who sets glibc's own ``MALLOC_*`` environment variables keeps them.

Reproducibility of Intel MKL (the float32 matrix products of PyTorch's CPU build): MKL may take different code
paths depending on the memory alignment of its arguments, which varies between runs, so two runs with the same
seed can differ in the last bits and then drift apart (bf16 autocast runs show it most). With
``MKL_CBWR=AUTO,STRICT`` (Intel's conditional bitwise reproducibility, strict mode: the fastest code path of
this CPU, independent of alignment) reruns on the same machine are bit-identical. It must be set before MKL's
first call; a user's own ``MKL_CBWR`` is kept.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

#: Intel MKL conditional bitwise reproducibility: this CPU's code path, alignment-independent
MKL_CBWR = "AUTO,STRICT"

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


def reproducible_mkl() -> bool:
    """Set ``MKL_CBWR`` (see module docstring) unless the user set it; True if this call set it.

    Takes effect only if MKL has not run in this process yet (the command modules import torch lazily).
    """
    if "MKL_CBWR" in os.environ:
        return False
    os.environ["MKL_CBWR"] = MKL_CBWR
    return True


#: GNU OpenMP spin count of idle threads before they sleep (its own default: 300000).
OPENMP_SPIN_COUNT = "1000"


def short_openmp_spin() -> bool:
    """Let idle OpenMP threads spin only briefly before they sleep (``GOMP_SPINCOUNT``) unless the user chose a
    wait policy or a spin count; True if this call set it.

    PyTorch's CPU build waits at the end of each parallel region with GNU OpenMP's default: idle threads spin a
    long while before they sleep. Two trainings (or any other busy process) on the same cores then spend each
    other's time slices spinning and each runs far below a fair share of the cores; threads that never spin
    (``OMP_WAIT_POLICY=PASSIVE``) avoid that but slow a run alone on its cores, whose many short parallel regions
    then pay a wake-up each. A short spin keeps both (``benchmarks/cpu_contention.py`` measures the three).
    It must be set before the OpenMP runtime starts (before torch is imported).
    """
    if any(name in os.environ for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")):
        return False
    os.environ["GOMP_SPINCOUNT"] = OPENMP_SPIN_COUNT
    return True


def configure_process() -> None:
    """Apply every setting of this module (called by ``cryoscape.cli.main.main`` before the command runs)."""
    reproducible_mkl()
    retain_freed_memory()
    short_openmp_spin()
