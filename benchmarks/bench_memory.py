"""Copy bandwidth of each memory level of this machine, for a CPU profile's memory.*.bandwidth figures.

A numpy copy (one thread: numpy does not split a copy) of an array sized to live in one level: half the
per-core L2, 8 MiB (inside the shared L3, beyond L2), 256 MiB (DRAM). Bandwidth counts the bytes read
plus the bytes written. The destination is written once before timing (no first-touch page faults) and,
after 0.3 s of untimed copies, the best of ``--tries`` copies is kept: another process on a shared
machine can only make a copy slower. cpu-local's bandwidths were measured the same way by hand (issue #3);
this script makes the measurement repeatable on any machine.

    python benchmarks/bench_memory.py [--tries 200] [--out benchmarks/results/memory.json]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from accelsim.kernels.machine import machine_info, wait_until_quiet


def l2_per_core() -> int:
    """Per-core L2 bytes from sysfs (cache index2 is the unified L2 on x86); 512 KiB if unreadable."""
    try:
        text = Path("/sys/devices/system/cpu/cpu0/cache/index2/size").read_text().strip()
        return int(text[:-1]) * 1024 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 512 * 1024


def copy_bandwidth(nbytes: int, tries: int) -> float:
    # source and destination in one buffer, 1 KiB apart: two separate mmap'd arrays of 128-256 KiB copied
    # at ~4 GB/s instead of ~70 on the Zen 3 guest (glibc's memmove hits a slow rep-movsb case for some
    # relative placements), which measures the allocator, not the cache
    n = nbytes // 4
    buf = np.ones(2 * n + 256, dtype=np.float32)
    src, dst = buf[:n], buf[n + 256:]
    np.copyto(dst, src)  # fault the pages in before timing
    # copy for a while untimed first, so the cores are at their working clock when timing starts
    t_end = time.perf_counter() + 0.3
    while time.perf_counter() < t_end:
        np.copyto(dst, src)
    best = float("inf")
    for _ in range(tries):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=200)
    ap.add_argument("--quiet-below", type=float, default=0.2, help="wait until others use less of the CPUs")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    args = ap.parse_args()
    levels = {"l2": l2_per_core() // 2, "l3": 8 << 20, "dram": 256 << 20}
    results = {}
    for level, nbytes in levels.items():
        busy = wait_until_quiet(args.quiet_below, 120.0)
        tries = max(5, args.tries * (1 << 20) // max(nbytes, 1 << 20))  # fewer of the slow large copies
        bw = copy_bandwidth(nbytes, tries)
        results[level] = {"bytes": nbytes, "tries": tries, "copy_GBps": bw / 1e9, "busy_before": busy}
        print(f"{level}: {nbytes / 2**20:g} MiB copy, best of {tries}: {bw / 1e9:.1f} GB/s (read + write)"
              f"  [others busy {busy:.0%} before]")
    doc = {"machine": machine_info("cpu"), "method": __doc__.split("\n\n")[1].replace("\n", " "),
           "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
