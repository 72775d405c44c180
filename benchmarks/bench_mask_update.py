"""The cost of a mask update on this CPU (workload roles MASK_SELECT, MASK_SCORE, MASK_GROUP_SELECT): RigL's drop
and grow top-k over the units of its grid, timed at weights of 16 K to 8 M (a size table), block-RigL's pooling
pass and an N:M method's 2:4 selection at a 3072 x 768 weight, all by kernels.vector_ops.execution_rows (the rows
`accelsim hw calibrate-local` writes into a CPU profile's element_time).

Why a benchmark of its own: a profile calibrated before these roles existed prices a mask update by its FLOPs at
the vector peak, far under what a RigL update step costs on a CPU. ``--into PROFILE`` adds the three measured
element times (with their source) to an existing profile, so a profile fitted earlier on the same machine need not
be recalibrated whole.

    python -P benchmarks/bench_mask_update.py --out benchmarks/results/<machine>/mask-update.json \
        [--into benchmarks/results/<machine>/cpu-....yaml]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from accelsim.hardware.element_time import to_yaml
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.machine import machine_info
from accelsim.kernels.probe import probe_peak
from accelsim.kernels.profile_edit import write_element_times
from accelsim.kernels.timing import measure
from accelsim.kernels.cpu.nm import NMSelector
from accelsim.kernels.vector_ops import EXECUTION_SHAPE, SELECT_SHAPES, element_time, execution_rows, select_case
from accelsim.workload import MASK_GROUP_SELECT, MASK_SCORE, MASK_SELECT


def one_thread_ratio(threads: int, repeats: int) -> dict[str, float]:
    """{role: time at ``threads`` / time at one thread} of the drop and grow and of the N:M selection at
    EXECUTION_SHAPE: near 1 for an op torch runs on one thread (kernels.local.SERIAL_ROLES keeps its time when
    a 1-thread calibration is scaled to every core), near 1 / threads for one that splits."""
    w = torch.randn(EXECUTION_SHAPE)
    group = NMSelector(w, 2, 4)
    ops = {MASK_SELECT: select_case(*EXECUTION_SHAPE), MASK_GROUP_SELECT: lambda: group(w)}
    times = {}
    for n in (1, threads):
        torch.set_num_threads(n)
        times[n], _ = measure(ops, repeats=repeats, keep=tuple(ops))
    torch.set_num_threads(threads)
    return {role: times[threads][role] / times[1][role] for role in ops}


def select_by_size(repeats: int) -> dict[str, float]:
    """{"rows x cols": ns per weight} of the drop and grow at SELECT_SHAPES, under this process's allocator policy."""
    out = {}
    for rows, cols in SELECT_SHAPES:
        t, _ = measure({"s": select_case(rows, cols)}, repeats=repeats, keep=("s",))
        out[f"{rows}x{cols}"] = t["s"] / (rows * cols) * 1e9
    return out


def plain_policy(threads: int, repeats: int) -> dict[str, float]:
    """select_by_size in a fresh process that keeps glibc's default allocator policy (freed memory returned to the
    OS), which this one has left: what the trainer's policy saves."""
    code = ("import json, sys, torch; sys.path.insert(0, sys.argv[1]); import bench_mask_update as b; "
            "torch.set_num_threads(int(sys.argv[2])); print(json.dumps(b.select_by_size(int(sys.argv[3]))))")
    run = subprocess.run([sys.executable, "-P", "-c", code, str(Path(__file__).parent), str(threads), str(repeats)],
                         capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--into", type=Path, help="a profile YAML to add the measured mask-update element times to")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    # the allocator policy the trainer runs under, as calibrate-local times it: a process that hands freed memory
    # back to the OS page-faults a top-k's fresh buffers in again on every call ("select_plain_policy_ns"; Zen 5:
    # 24-32 ns per weight at 2.4-8.4 M weights, 12-15 ns with the memory kept)
    plain = plain_policy(args.threads, args.repeats)
    retain_freed_memory()  # machine_info records it
    # the core clock beside the times: a profile of another CPU borrows them scaled by clock (hwconfigs/cpu-zen3.yaml)
    clock = probe_peak(3, 200_000, args.threads)["clock_hz"] / 1e9
    t0 = time.perf_counter()
    rows = execution_rows(args.repeats)
    times = element_time(rows)
    doc = {"machine": machine_info(), "threads": args.threads, "repeats": args.repeats, "clock_GHz": clock,
           "wall_s": time.perf_counter() - t0, "rows": rows,
           "element_time_ns": {role: {ph: to_yaml(v, lambda x: round(x * 1e9, 4)) for ph, v in t.items()}
                               for role, t in times.items()},
           "one_thread_ratio": {"threads": args.threads, **one_thread_ratio(args.threads, args.repeats)},
           "select_ns": select_by_size(args.repeats), "select_plain_policy_ns": plain}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    for role, t in doc["element_time_ns"].items():
        print(f"{role:14s} " + "  ".join(f"{ph} " + (", ".join(f"{v:.3g} ns at {n:,}" for n, v in x)
                                                     if isinstance(x, list) else f"{x:8.3f} ns/element")
                                         for ph, x in t.items()))
    print("time at {threads} threads / at 1: ".format(**doc["one_thread_ratio"])
          + ", ".join(f"{k} {v:.2f}" for k, v in doc["one_thread_ratio"].items() if k != "threads"))
    print("drop and grow per weight, memory kept / returned (default policy): " + ", ".join(
        f"{k} {v:.3g} / {plain[k]:.3g} ns" for k, v in doc["select_ns"].items()))
    if args.into:
        roles = (MASK_SELECT, MASK_SCORE, MASK_GROUP_SELECT)
        source = (f"{args.out}: kernels.vector_ops.execution_rows at {args.threads} thread(s), median of "
                  f"{args.repeats} (benchmarks/bench_mask_update.py)")
        write_element_times(args.into, {role: {"fwd": times[role]["fwd"]} for role in roles}, source)
        print(f"added {MASK_SELECT} / {MASK_SCORE} / {MASK_GROUP_SELECT} to {args.into}")


if __name__ == "__main__":
    main()
