"""What a training step's memory costs beyond a kernel benchmark's loop (issue 17), measured:

1. **Allocator policy** (kernels/host_memory.py): bert-small steps (2048 tokens) with glibc's default thresholds
   and with freed memory kept in the process, each in a fresh process (the policy is per process): minor page
   faults per step (getrusage) and the median step time, dense and block-RigL-90 16x16 sparse-executed.
2. **Cold operands** (execution.cold_activations): ops of that step timed in a loop (operands stay in cache, as
   every calibration times them) and right after a buffer of twice the L3 has been written (their operands in
   main memory, as a step finds them); the eviction's own time, measured beside them, is taken off.
3. **Sparse products in a step**: each sparse-executed product of a training run timed around its call, against
   the same call repeated back to back (what a kernel sweep times).

    python -P benchmarks/bench_step_memory.py --out benchmarks/results/<machine>/step-memory.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

#: one training run under a given policy, in its own process; prints its per-step faults and wall times as JSON
CHILD = """
import json, resource, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bench_sparse_training import config
from accelsim.trainer.train import train
variant, retain, steps, hw, threads = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
cfg = config(variant, Path(tempfile.mkdtemp()), steps, hw, threads)
cfg.retain_freed_memory = retain
cfg.sparsity.update_every, cfg.eval_every, cfg.checkpoint_every = 10_000, 10_000, 10_000
faults, walls, last = [], [], [resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()]
def on_step(step, metrics):
    now = [resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()]
    faults.append(now[0] - last[0]); walls.append(now[1] - last[1]); last[:] = now
train(cfg, progress=False, on_step=on_step)
print(json.dumps({"faults": faults, "wall_s": walls}))
"""


def allocator(variants: list[str], steps: int, hw: str, threads: int) -> dict:
    import numpy as np

    out = {}
    for variant in variants:
        for retain in (False, True):
            proc = subprocess.run([sys.executable, "-P", "-c", CHILD, variant, str(int(retain)), str(steps), hw,
                                   str(threads)], capture_output=True, text=True, check=True)
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            kept = slice(3, -1)  # leave out warm-up and the last step (it evaluates and checkpoints)
            out[f"{variant}, {'retained' if retain else 'default'}"] = {
                "faults_per_step_median": float(np.median(run["faults"][kept])),
                "step_s_median": float(np.median(run["wall_s"][kept])), **run}
            print(variant, "retained" if retain else "default", f"{np.median(run['faults'][kept]):.0f} faults/step",
                  f"{np.median(run['wall_s'][kept]) * 1e3:.0f} ms/step", flush=True)
    return out


def cold_ops(threads: int, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from accelsim.kernels.cpu.autograd import Paths, SparseWeight
    from accelsim.kernels.host_memory import retain_freed_memory
    from accelsim.kernels.timing import measure
    from accelsim.kernels.vector_ops import evictor, split_heads

    retain_freed_memory()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    B, S, H, heads, T = 16, 128, 512, 8, 2048
    blocks = torch.rand(H // 16, H // 16) < 0.1
    mask = blocks.repeat_interleave(16, 0).repeat_interleave(16, 1)
    W = torch.randn(H, H) * mask
    fmt = SparseWeight(mask, Paths("block16", "block16", "block16"))
    fmt.refresh(W)
    x, dY, h = torch.randn(B, S, H), torch.randn(T, 4 * H), torch.randn(T, 4 * H)
    X = torch.randn(T, H)
    ops = {"head layout copy (16 x 128 x 512, 8 heads)": (split_heads(B, S, heads), x, B * S * H),
           "bias gradient sum (2048 x 2048)": (lambda t: t.sum(0), dY, T * 4 * H),
           "GELU (2048 x 2048), compute-bound control": (F.gelu, h, T * 4 * H),
           "block-16 forward (2048 x 512 x 512, density 0.1)": (lambda t: fmt.forward(t, W), X, None)}
    evict = evictor()
    runners = {"evict": evict}
    for name, (fn, arg, _) in ops.items():
        runners[f"{name} | loop"] = (lambda f=fn, a=arg: f(a))
        runners[f"{name} | evicted"] = (lambda f=fn, a=arg: (evict(), f(a)))
    # warm_below_s: an untimed call before every sample, so a loop sample follows its own call, not another op
    t, _ = measure(runners, repeats=repeats, keep=tuple(runners), warm_below_s=1.0)
    out = {}
    for name, (_, _, elements) in ops.items():
        loop, cold = t[f"{name} | loop"], max(t[f"{name} | evicted"] - t["evict"], 0.0)
        out[name] = {"loop_s": loop, "evicted_s": cold, "elements": elements}
        per = f" ({loop / elements * 1e9:.3f} vs {cold / elements * 1e9:.3f} ns/element)" if elements else ""
        print(f"{name}: loop {loop * 1e3:.3f} ms, evicted {cold * 1e3:.3f} ms{per}", flush=True)
    return out


def products_in_step(variant: str, steps: int, hw: str, threads: int, repeats: int) -> dict:
    """The sparse-executed products of one training run (SparseWeight's forward / input_grad / weight_grad, timed
    around each call) against the same products called back to back on the run's own masks and weights."""
    import time

    import numpy as np
    import torch

    from accelsim.kernels.cpu import autograd as ag
    from accelsim.trainer.train import train

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_sparse_training import config

    timed: dict[tuple, list[float]] = {}
    last: dict[tuple, tuple] = {}
    originals = {n: getattr(ag.SparseWeight, n) for n in ("forward", "input_grad", "weight_grad")}

    def wrap(name):
        def call(self, *args):
            t0 = time.perf_counter()
            out = originals[name](self, *args)
            timed.setdefault((name, self.shape), []).append(time.perf_counter() - t0)
            last[(name, self.shape)] = (self, args)
            return out
        return call

    for name in originals:
        setattr(ag.SparseWeight, name, wrap(name))
    try:
        import tempfile
        cfg = config(variant, Path(tempfile.mkdtemp()), steps, hw, threads)
        cfg.sparsity.update_every, cfg.eval_every, cfg.checkpoint_every = 10_000, 10_000, 10_000
        train(cfg, progress=False)
    finally:
        for name, fn in originals.items():
            setattr(ag.SparseWeight, name, fn)
    out = {}
    for (name, shape), ts in sorted(timed.items()):
        fmt, args = last[(name, shape)]
        fn = originals[name]
        fn(fmt, *args)
        loop = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn(fmt, *args)
            loop.append(time.perf_counter() - t0)
        step = float(np.median(ts[len(ts) // 3:]))  # past the warm-up steps
        out[f"{name} {shape[0]}x{shape[1]}"] = {"in_step_s": step, "loop_s": float(np.median(loop)), "calls": len(ts)}
        print(f"{variant} {name} {shape}: in a step {step * 1e3:.3f} ms, in a loop {np.median(loop) * 1e3:.3f} ms",
              flush=True)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="benchmarks/results/zen5-f26m2/cpu-zen5-f26m2-full.yaml",
                    help="profile the sparse variant's path choice follows")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--variants", default="dense,brigl90-b16-sparse")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    from accelsim.kernels.machine import machine_info

    doc = {"machine": machine_info(), "threads": a.threads, "steps": a.steps, "loadavg_before": os.getloadavg(),
           "allocator": allocator(a.variants.split(","), a.steps, a.hw, a.threads),
           "cold_ops": cold_ops(a.threads, a.repeats),
           "products_in_step": {v: products_in_step(v, a.steps, a.hw, a.threads, a.repeats)
                                for v in a.variants.split(",") if v.endswith("-sparse")}}
    doc["loadavg_after"] = os.getloadavg()
    if a.out:
        a.out.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
