"""Copy bandwidth of each memory level of this machine, for a CPU profile's memory.*.bandwidth figures.

A numpy copy (one thread: numpy does not split a copy) of an array sized to live in one level: half the
per-core L2, 8 MiB (inside the shared L3, beyond L2), 256 MiB (DRAM). Bandwidth counts the bytes read
plus the bytes written. The destination is written once before timing (no first-touch page faults) and,
after 0.3 s of untimed copies, the best of ``--tries`` copies is kept: another process on a shared
machine can only make a copy slower. The measuring code is kernels/probe.py (also run by `accelsim hw calibrate-local`).

    python benchmarks/bench_memory.py [--tries 200] [--out benchmarks/results/memory.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from accelsim.kernels.machine import machine_info, wait_until_quiet
from accelsim.kernels.probe import copy_bandwidth, level_tries, memory_levels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=200)
    ap.add_argument("--quiet-below", type=float, default=0.2, help="wait until others use less of the CPUs")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    args = ap.parse_args()
    levels = memory_levels()
    results = {}
    for level, nbytes in levels.items():
        busy = wait_until_quiet(args.quiet_below, 120.0)
        tries = level_tries(args.tries, nbytes)  # fewer of the slow large copies
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
