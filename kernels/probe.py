"""This machine's core clock, fp32 FMA peak, cache sizes and copy bandwidth per memory level.

The measuring code of benchmarks/bench_cpu_peak.py and benchmarks/bench_memory.py, in the package so that
``accelsim hw calibrate-local`` (kernels.local) can run it on an installed copy; those scripts call it.

Clock: /proc/cpuinfo shows a KVM guest's TSC rate, not the clock the cores run at, and ``perf stat`` has no
cycle counter in such a guest. So a chain of dependent integer adds (one cycle each, kernels/cpu_peak.c)
runs for a known number of cycles. FMA probes then give FLOP per cycle for 512-bit (skipped without
AVX-512) and 256-bit vectors. Every probe keeps the best of ``tries`` short runs: another process on a
shared machine can only make a run slower.

Bandwidth: a numpy copy (one thread: numpy does not split a copy) of an array sized to live in one level
(half the per-core L2, 8 MiB inside the L3, 256 MiB in DRAM); read + write bytes; best of ``tries``.
"""
from __future__ import annotations

import ctypes
import time
from pathlib import Path

import numpy as np

from accelsim.errors import UserError
from accelsim.kernels.machine import machine_info

SOURCE = Path(__file__).with_name("cpu_peak.c")
CHAIN_ADDS = 100  # dependent adds per repetition in cp_chain
FMA_FLOP = {"fma512": 12 * 16 * 2, "fma256": 12 * 8 * 2}  # FLOP per repetition


def _lib():
    import torch  # noqa: F401  (load torch's libgomp first, as every kernel of the project does)

    from accelsim.kernels.native import build

    lib, reason = build(SOURCE, "cpu-peak", "the clock probe")
    if lib is None:
        raise UserError(f"cannot measure the clock and FMA peak: {reason}")
    for name in ("cp_chain", *(f"cp_{kind}" for kind in FMA_FLOP)):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = ctypes.c_double, [ctypes.c_int64, ctypes.c_int]
    return lib


def probe_peak(tries: int, reps: int, threads: int) -> dict:
    """{"threads", "clock_hz", "<fma>_flop_per_cycle", "<fma>_gflops_all_threads"} on ``threads`` cores at once."""
    lib = _lib()
    # the chain runs 16x fewer repetitions (~0.3 ms, as long as an FMA run): a 5 ms chain was preempted in every
    # one of 40 tries on the loaded shared machine (1.56 GHz measured on a ~4 GHz core), a 0.3 ms one fits
    # between scheduler ticks; 4x the tries, as each is cheap
    chain_reps = max(1, reps // 16)
    chain = min(lib.cp_chain(chain_reps, threads) for _ in range(4 * tries))
    hz = CHAIN_ADDS * chain_reps / chain
    out = {"threads": threads, "clock_hz": hz}
    for kind, flop in FMA_FLOP.items():
        if kind == "fma512" and "avx512f" not in machine_info("cpu")["isa_flags"]:
            out[f"{kind}_flop_per_cycle"] = out[f"{kind}_gflops_all_threads"] = None  # zmm: illegal instruction
            continue
        t = min(getattr(lib, f"cp_{kind}")(reps, threads) for _ in range(tries))
        out[f"{kind}_flop_per_cycle"] = flop * reps / t / hz
        out[f"{kind}_gflops_all_threads"] = flop * reps * threads / t / 1e9
    return out


def _sysfs_size(index: int) -> int | None:
    try:
        text = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip()
    except OSError:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)
    except ValueError:
        return None


def l2_per_core() -> int:
    """Per-core L2 bytes from sysfs (cache index2 is the unified L2 on x86); 512 KiB if unreadable."""
    return _sysfs_size(2) or 512 * 1024


def l3_size() -> int | None:
    """The L3 (cache index3) bytes from sysfs, or None."""
    return _sysfs_size(3)


def memory_bytes() -> int | None:
    """MemTotal from /proc/meminfo, or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def copy_bandwidth(nbytes: int, tries: int, warm_s: float = 0.3, clock=time.perf_counter) -> float:
    """Best read + write bytes per second of a numpy copy of ``nbytes`` (``clock``: time.thread_time on a
    busy shared machine, where a descheduled copy's wait is not memory time)."""
    # source and destination in one buffer, 1 KiB apart: two separate mmap'd arrays of 128-256 KiB copied
    # at ~4 GB/s instead of ~70 on the Zen 3 guest (glibc's memmove hits a slow rep-movsb case for some
    # relative placements), which measures the allocator, not the cache
    n = nbytes // 4
    buf = np.ones(2 * n + 256, dtype=np.float32)
    src, dst = buf[:n], buf[n + 256:]
    np.copyto(dst, src)  # fault the pages in before timing
    # copy for a while untimed first, so the cores are at their working clock when timing starts
    t_end = time.perf_counter() + warm_s
    while time.perf_counter() < t_end:
        np.copyto(dst, src)
    best = float("inf")
    for _ in range(tries):
        t0 = clock()
        np.copyto(dst, src)
        best = min(best, clock() - t0)
    return 2 * src.nbytes / best


def memory_levels() -> dict[str, int]:
    """Level name -> array bytes that live in it (half the per-core L2; 8 MiB: in L3, beyond L2; 256 MiB)."""
    return {"l2": l2_per_core() // 2, "l3": 8 << 20, "dram": 256 << 20}


def level_tries(tries: int, nbytes: int) -> int:
    """Fewer of the slow large copies: ``tries`` per MiB-or-less array, at least 5."""
    return max(5, tries * (1 << 20) // max(nbytes, 1 << 20))
