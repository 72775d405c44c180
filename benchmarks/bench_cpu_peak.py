"""The dev machine's real core clock and fp32 FMA peak, for a CPU profile's compute.clock and peak (kernels/probe.py).

/proc/cpuinfo shows the KVM guest's TSC rate (2.596 GHz), not the clock the cores run at, and `perf stat`
has no cycle counter in this guest. So the clock is timed directly: a chain of dependent integer adds
(one cycle each, see kernels/cpu_peak.c) runs for a known number of cycles. The FMA probes then give FLOP per
cycle for 512-bit (the C block kernels; skipped on a CPU without AVX-512) and 256-bit (MKL's code path
on AMD) vectors. Every probe runs on 1 thread and on all threads at once (the all-core clock is the one a
2-thread kernel sees); the best of
``--tries`` short runs is kept, because another process on a shared machine can only make a run slower.

    python benchmarks/bench_cpu_peak.py [--tries 40] [--out benchmarks/results/cpu-peak.json]
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from accelsim.kernels.machine import machine_info, wait_until_quiet
from accelsim.kernels.probe import probe_peak


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=40)
    ap.add_argument("--reps", type=int, default=200_000, help="repetitions per run (~5 ms)")
    ap.add_argument("--quiet-below", type=float, default=0.2, help="wait until others use less of the CPUs")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu-peak.json"))
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    results = []
    for threads in sorted({1, cores}):
        busy = wait_until_quiet(args.quiet_below, 120.0)
        r = probe_peak(args.tries, args.reps, threads)
        r["busy_before"] = busy
        results.append(r)
        fma512 = (f"512-bit FMA {r['fma512_flop_per_cycle']:.1f} FLOP/cycle/core "
                  f"({r['fma512_gflops_all_threads']:.0f} GFLOP/s)" if r["fma512_flop_per_cycle"] else "no AVX-512")
        print(f"{threads} thread(s): clock {r['clock_hz'] / 1e9:.3f} GHz, {fma512}, 256-bit FMA "
              f"{r['fma256_flop_per_cycle']:.1f} ({r['fma256_gflops_all_threads']:.0f} GFLOP/s)"
              f"  [others busy {busy:.0%} before]")
    doc = {"machine": machine_info("cpu"), "method": __doc__.split("\n\n")[1].replace("\n", " "),
           "tries": args.tries, "reps": args.reps, "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
