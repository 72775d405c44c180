"""DDP on this machine: step time with 2 gloo processes vs 1, and the simulator's all-reduce share.

1. Measures gloo's all-reduce between 2 local processes (sizes 4 KiB .. 16 MiB, medians) and fits the ring
   model the simulator uses, t = 2(p-1)/p * n / bandwidth + 2(p-1) * latency, for this "link".
2. Trains bert-tiny (same global batch, same steps) with 1 process (2 threads) and with 2 processes
   (`accelsim train --nproc 2`, 1 thread each), interleaved over rounds; medians of per-step wall times
   (first steps dropped as warm-up), and the measured all-reduce span per step (ranks table).
3. Simulates the 2-process trace on 2 devices with the Zen 5 profile (benchmarks/results/zen5/cpu-zen5.yaml,
   the closest calibrated profile to this family-26 machine) plus the fitted link, and reports the
   predicted exposed all-reduce share next to the measured figures.

    python -P benchmarks/bench_ddp.py --out benchmarks/results/zen5-f26m2/ddp.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
#: one process of the 2-process run has one core: the 1-thread profile calibrated on this very machine
#: (accelsim hw calibrate-local) models that device; the older 2-core Zen 5 profile is kept for comparison
PROFILES = (RESULTS / "zen5-f26m2" / "cpu-zen5-f26m2-1thread.yaml", RESULTS / "zen5" / "cpu-zen5.yaml")


def machine() -> dict:
    info = {"platform": platform.platform(), "cpus": os.cpu_count()}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        for key in ("model name", "cpu family", "model"):
            if line.startswith(key + "\t") or line.startswith(key + " "):
                info.setdefault(key, line.split(":", 1)[1].strip())
    return info


# ---------------------------------------------------------------------------------- gloo all-reduce
def _allreduce_worker(rank: int, port: int, sizes: list[int], reps: int, q) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    out = {}
    for n in sizes:
        x = torch.ones(n)
        times = []
        for i in range(reps + 3):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(x)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        out[n] = statistics.median(times)
    if rank == 0:
        q.put(out)
    dist.destroy_process_group()


def measure_allreduce(reps: int) -> dict:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sizes = [2 ** k for k in range(10, 23, 2)]  # floats: 4 KiB .. 16 MiB
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_allreduce_worker, args=(r, port, sizes, reps, q)) for r in range(2)]
    for p in procs:
        p.start()
    res = q.get(timeout=600)
    for p in procs:
        p.join()
    nbytes = np.array([4.0 * n for n in sizes])
    t = np.array([res[n] for n in sizes])
    # p = 2: t = n / bw + 2 * lat (least squares on the ring model's two terms)
    a = np.stack([nbytes, 2 * np.ones_like(nbytes)], axis=1)
    (inv_bw, lat), *_ = np.linalg.lstsq(a, t, rcond=None)
    pred = a @ np.array([inv_bw, lat])
    return {"bytes": nbytes.tolist(), "median_s": t.tolist(), "bandwidth_Bps": float(1 / inv_bw),
            "latency_s": float(max(lat, 0.0)), "fit_rel_err": (np.abs(pred - t) / t).tolist(), "reps": reps}


# ---------------------------------------------------------------------------------- training runs
def train_run(out: Path, nproc: int, threads: int, args) -> dict:
    cmd = [sys.executable, "-P", "-m", "accelsim", "train", "--model", "bert-tiny", "--method", args.method,
           "--sparsity", str(args.sparsity), "--steps", str(args.steps), "--batch-size", str(args.batch),
           "--seq-len", str(args.seq), "--eval-every", str(args.steps), "--checkpoint-every", str(args.steps),
           "--out", str(out), "--quiet"]
    cmd += ["--nproc", "2"] if nproc == 2 else ["--threads", str(threads)]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"} if nproc == 2 else None)
    from accelsim.trace import load_trace

    t = load_trace(out)
    wall = t.steps["wall_s"].to_numpy()[args.warmup:]
    res = {"median_step_s": float(np.median(wall))}
    if nproc == 2:
        ranks = t.ranks.to_pandas()
        ranks = ranks[ranks["step"] >= args.warmup]
        res["median_allreduce_span_s"] = float(ranks["allreduce_s"].median())
        res["median_rank_step_s"] = float(ranks["wall_s"].median())
    return res


def linked_profile(base: Path, link: dict, path: Path) -> Path:
    prof = yaml.safe_load(base.read_text())
    prof["name"] = f"{prof['name']}-gloo"
    prof["link"] = {"bandwidth": f"{link['bandwidth_Bps'] / 1e9:.4g} GB/s",
                    "latency": f"{link['latency_s'] * 1e6:.4g} us"}
    prof.setdefault("sources", {})["link"] = ("benchmarks/bench_ddp.py: gloo all-reduce between 2 local processes "
                                              "on the family-26 model-2 machine, ring model fitted to medians")
    path.write_text(yaml.safe_dump(prof, sort_keys=False))
    return path


def simulate_all(work: Path, rounds: int, link: dict, out: Path) -> dict:
    from accelsim.sim.api import simulate

    sims = {}
    for base in PROFILES:
        prof = linked_profile(base, link, out.with_name(f"{yaml.safe_load(base.read_text())['name']}-gloo.yaml"))
        sim2 = simulate(work / f"two-{rounds - 1}", str(prof), devices=2)
        sim1 = simulate(work / f"one-{rounds - 1}", str(prof), devices=1)
        share = sim2.by_kind.get("allreduce", {}).get("time_s", 0.0) / sim2.time_s
        sims[prof.stem] = {"profile": str(prof.relative_to(ROOT)) if prof.is_relative_to(ROOT) else str(prof),
                           "step_s_1device": sim1.time_s / sim1.steps, "step_s_2devices": sim2.time_s / sim2.steps,
                           "allreduce_exposed_s_per_step": share * sim2.time_s / sim2.steps,
                           "allreduce_share_of_step": share}
    return sims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "zen5-f26m2" / "ddp.json")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--method", default="dense")
    ap.add_argument("--sparsity", type=float, default=0.0)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--resimulate", type=Path, help="a previous run's work directory: keep --out's measurements "
                    "and redo only the simulation (e.g. with a newly calibrated profile)")
    args = ap.parse_args()
    if args.resimulate:
        result = json.loads(args.out.read_text())
        result["simulated"] = simulate_all(args.resimulate, result["config"]["rounds"], result["allreduce"], args.out)
        args.out.write_text(json.dumps(result, indent=2))
        print(json.dumps(result["simulated"], indent=2))
        return

    link = measure_allreduce(args.reps)
    print(f"gloo all-reduce: {link['bandwidth_Bps'] / 1e9:.3g} GB/s, {link['latency_s'] * 1e6:.3g} us per hop")
    work = Path(tempfile.mkdtemp(prefix="bench-ddp-"))
    one, one1, two = [], [], []
    for r in range(args.rounds):  # interleaved: 1 process (2 threads, 1 thread), then 2 processes, each round
        one.append(train_run(work / f"one-{r}", 1, 2, args))
        one1.append(train_run(work / f"one1-{r}", 1, 1, args))
        two.append(train_run(work / f"two-{r}", 2, 1, args))
        print(f"round {r}: 1 process {one[-1]['median_step_s'] * 1e3:.1f} ms/step (2 threads), "
              f"{one1[-1]['median_step_s'] * 1e3:.1f} (1 thread); 2 processes {two[-1]['median_step_s'] * 1e3:.1f}")
    t1 = statistics.median(x["median_step_s"] for x in one)
    t11 = statistics.median(x["median_step_s"] for x in one1)
    t2 = statistics.median(x["median_step_s"] for x in two)
    span = statistics.median(x["median_allreduce_span_s"] for x in two)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    sims = simulate_all(work, args.rounds, link, args.out)
    result = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": vars(args) | {"out": str(args.out)}, "allreduce": link,
        "load_average_at_end": os.getloadavg(),
        "measured": {"step_s_1proc_2threads": t1, "step_s_1proc_1thread": t11, "step_s_2proc_1thread": t2,
                     "ratio_2proc_over_1proc": t2 / t1, "ratio_2proc_over_1proc_1thread": t2 / t11,
                     "allreduce_span_s": span, "allreduce_span_share_of_step": span / t2,
                     "rounds_1proc": one, "rounds_1proc_1thread": one1, "rounds_2proc": two},
        "simulated": sims,
        "notes": ("measured all-reduce span: first bucket launch to last completion per step, overlapping "
                  "backward (an upper bound on exposed communication); the simulator's share is the exposed "
                  "all-reduce after overlap. Each process has one core: the 1-thread profile models that device; "
                  "the 2-core cpu-zen5 profile gives each device the whole CPU (optimistic compute)."),
    }
    args.out.write_text(json.dumps(result, indent=2))
    m = result["measured"]
    print(f"measured: 1 process {t1 * 1e3:.1f} ms/step ({t11 * 1e3:.1f} on 1 thread), 2 processes "
          f"{t2 * 1e3:.1f} ms/step (x{t2 / t1:.2f}); all-reduce span {span * 1e3:.2f} ms = "
          f"{m['allreduce_span_share_of_step']:.1%} of the step")
    for name, s in sims.items():
        print(f"simulated (2 devices, {name}): {s['step_s_2devices'] * 1e3:.2f} ms/step, exposed all-reduce "
              f"{s['allreduce_exposed_s_per_step'] * 1e3:.3f} ms = {s['allreduce_share_of_step']:.1%}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
