"""Keep freed host memory in the process, so a training step does not page-fault its activations back in.

PyTorch's CPU allocator has no cache: every activation, gradient and kernel output is a fresh ``malloc``
and is freed at the end of its life. glibc serves blocks above its mmap threshold with ``mmap`` and gives
them back to the kernel on ``free`` (and trims the heap top above its trim threshold), so the next step
touches brand-new pages and pays a minor page fault per 4 KiB. Measured on the Zen 5 (bert-small, 2048
tokens per step, 2 threads, benchmarks/results/zen5-f26m2/step-memory.json): 75,000-90,000 faults per step,
5 % of a dense step's wall time, 11-16 % of a sparse-executed one's; with the thresholds raised, zero.
PyTorch's Performance Tuning Guide ("Switch Memory allocator") recommends jemalloc or tcmalloc for the same
reason; raising glibc's thresholds gets the effect without preloading a library.

Why ``mallopt`` through ctypes: it is the C library this process already runs on (no new native code is
loaded), and glibc's ``GLIBC_TUNABLES`` would only apply to a process started with it. Elsewhere (musl,
macOS, Windows) this is a no-op and says so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
#: blocks up to this size come from the heap and are reused there (the largest a BERT step allocates is
#: its logits, tokens x vocabulary x 4 B: 250 MB at 2048 x 30522)
MMAP_THRESHOLD = 1 << 30
#: never give the heap top back to the kernel during training (the process frees it all at exit)
TRIM_THRESHOLD = (1 << 31) - 1

_applied: str | None = None


def retain_freed_memory() -> str:
    """Raise glibc's mmap and trim thresholds once per process; returns what was done (for the trace)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = "not applied: not glibc on Linux"
    if sys.platform.startswith("linux"):
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None)
        except OSError:
            mallopt = None
        if mallopt is not None and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 \
                and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1:
            _applied = f"glibc mallopt: mmap_threshold {MMAP_THRESHOLD}, trim_threshold {TRIM_THRESHOLD}"
    return _applied


def retain_state() -> str:
    """What :func:`retain_freed_memory` did in this process ("default glibc policy" when not called)."""
    return _applied if _applied is not None else "default allocator policy"
