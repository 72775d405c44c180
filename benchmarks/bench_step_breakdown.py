"""Where a training step's time goes, measured and predicted, by category: which part of the simulator's
whole-step prediction (benchmarks/bench_trainer.py: about -56 % on bert-tiny) is off.

Measured: torch.profiler over the trainer's own steps (self CPU time of every op on the training thread,
which with intra-op threads is the op's wall time), after warm-up. Predicted: the cost model per op of the
same trace's step (``accelsim.workload.step_ops`` + ``op_cost``, as the simulator calls it), and the
simulator's step time itself. Categories are matched by name (CATEGORIES, workload_category).

    python benchmarks/bench_step_breakdown.py [--steps 16] [--batch 32] [--seq 128] [--hw cpu-local]
                                             [--out benchmarks/results/<machine>/step-breakdown.json]
    python benchmarks/bench_step_breakdown.py --model bert-small --batch 16 --variant brigl90-b16-sparse \
        --hw benchmarks/results/zen5-f26m2/cpu-zen5-f26m2.yaml      # a bench_sparse_training.py variant

Sparse-executed variants (``--execute sparse``): the sparse layers' products are labelled by
accelsim.kernels.cpu.autograd (record_function), so the C kernels' time is theirs; every op inside a label
(aten ops included) is counted in the label's category, and the simulator's ops of sparse layers are split
by phase the same way.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from accelsim import simulate
from accelsim import trace as tr
from accelsim.hardware import load_profile
from accelsim.workload import FORMAT_BUILD, GATHER, MASK_APPLY, SCATTER
from accelsim.kernels.cpu import autograd as sparse_autograd
from accelsim.kernels.machine import machine_info
from accelsim.trainer.data import DataConfig
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, train

#: profiler op name -> category, first match wins; the rest of aten is elementwise, the rest "framework"
#: (autograd bookkeeping, Python-side work: self time outside any aten op)
CATEGORIES = [
    ("optimizer", r"_foreach_|adam|Optimizer|lerp|addcdiv|addcmul"),
    ("loss", r"log_softmax|nll_loss|cross_entropy"),
    ("attention", r"scaled_dot_product|flash_attention|efficient_attention|\bbmm\b|baddbmm|_softmax\b|softmax"),
    ("linear", r"^aten::(mm|addmm|matmul|linear|_addmm_activation)$"),
    ("embedding", r"embedding|index_select|index_add|scatter_add"),
    ("elementwise", r"^aten::"),
]


#: record_function label of the sparse execution -> category (every op under it counts there)
LABELS = {sparse_autograd.GATHER: "sparse_gather", sparse_autograd.FWD: "sparse_fwd", sparse_autograd.DX: "sparse_dx",
          sparse_autograd.DW: "sparse_dw", sparse_autograd.SCATTER: "sparse_dw_scatter"}
_PHASE_CATEGORY = {"fwd": "sparse_fwd", "bwd_input": "sparse_dx", "bwd_weight": "sparse_dw"}
#: accelsim.workload.sparse_execution_ops roles -> the label category that times the same work
_EXECUTION_CATEGORY = {GATHER: "sparse_gather", SCATTER: "sparse_dw_scatter", FORMAT_BUILD: "optimizer",
                       MASK_APPLY: "optimizer"}


def op_category(name: str) -> str:
    if name in LABELS:
        return LABELS[name]
    for cat, pat in CATEGORIES:
        if re.search(pat, name):
            return cat
    return "framework"


def workload_category(op, sparse_layers=frozenset()) -> str:
    """The same categories for the simulator's ops (accelsim.workload); ``sparse_layers``: the layers a
    sparse-executed run routes through the labelled products."""
    if op.kind == "linear" and op.layer in sparse_layers:
        return _PHASE_CATEGORY[op.phase]
    if op.role in _EXECUTION_CATEGORY:
        return _EXECUTION_CATEGORY[op.role]
    if op.name.startswith("mlm_loss"):
        return "loss"
    if op.kind == "attn_matmul" or ".softmax." in op.name:
        return "attention"
    return {"linear": "linear", "optimizer": "optimizer", "embedding": "embedding",
            "mask_update": "optimizer"}.get(op.kind, "elementwise")


def _label_of(ev) -> str | None:
    """Category of the nearest labelled ancestor: a sparse-execution label, or the optimizer's own
    record_function (torch.optim labels its step "Optimizer.step#<class>.step"; AdamW's sqrt and mul_ are
    otherwise plain elementwise aten ops)."""
    while ev is not None:
        if ev.name in LABELS:
            return LABELS[ev.name]
        if ev.name.startswith("Optimizer.step#"):
            return "optimizer"
        ev = ev.cpu_parent
    return None


def measure(root: Path, steps: int, batch: int, seq: int, threads: int, model: str = "bert-tiny",
            variant: str | None = None, hw: str = "cpu-local") -> tuple[Path, dict[str, float], float, dict]:
    """Train ``steps`` steps under the profiler; per-category seconds per profiled step. ``variant``: one of
    bench_sparse_training.VARIANTS (default: dense)."""
    out = root / "run"
    if variant:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_sparse_training import config
        cfg = config(variant, root, steps, hw, threads, model=model, batch=batch)
        # no mask change, evaluation or checkpoint inside the profiled window (the medians of the benchmark
        # leave update steps out too)
        cfg.sparsity.update_every, cfg.eval_every, cfg.checkpoint_every = 10_000, 10_000, 10_000
        out = Path(cfg.out)
    else:
        cfg = TrainConfig(model=model, out=str(out), steps=steps, batch_size=batch, eval_every=10_000,
                          checkpoint_every=10_000, threads=threads, data=DataConfig(seq_len=seq),
                          sparsity=SparsityConfig(method="dense", sparsity=0.0))
    wait, warm = 3, 2
    active = steps - wait - warm - 1  # the last step also evaluates and checkpoints: not profiled
    sched = torch.profiler.schedule(wait=wait, warmup=warm, active=active, repeat=1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], schedule=sched) as prof:
        train(cfg, progress=False, on_step=lambda step, metrics: prof.step())
    cats: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.name.startswith("ProfilerStep"):
            continue
        s = ev.self_cpu_time_total * 1e-6 / active
        cats[_label_of(ev) or op_category(ev.name)] += s
        ops[ev.name] += s
    wall = tr.read_table(out, "steps")["wall_s"].to_numpy()[wait + warm:wait + warm + active]
    top = dict(sorted(ops.items(), key=lambda kv: -kv[1])[:25])
    return out, dict(cats), float(np.median(wall)), top


def predict(run: Path, hw: str) -> tuple[dict[str, float], float, float]:
    """(seconds per category from op_cost, their sum, the simulator's median step time) for the run's most
    common step (the epoch with the most steps: its densities and pattern statistics, as the simulator
    sees them)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from simulate_sparse_training import step_op_costs  # the same ops and prices the re-simulation compares

    man = tr.read_manifest(run)
    sparse_layers = frozenset(i.name for i in man.layers if i.sparse) if man.execution == "sparse" else frozenset()
    cats: dict[str, float] = defaultdict(float)
    for op, t in step_op_costs(run, hw):
        cats[workload_category(op, sparse_layers)] += t
    sim = simulate(run, load_profile(hw))
    return dict(cats), float(sum(cats.values())), float(np.median(np.asarray(sim.timeline["time_s"])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--hw", default="cpu-local")
    ap.add_argument("--model", default="bert-tiny")
    ap.add_argument("--variant", default=None, help="a bench_sparse_training.py variant (default: dense)")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args(argv)
    if a.steps < 8:
        ap.error("--steps must be at least 8 (3 untimed, 2 warm-up, the last one evaluates)")
    root = Path(tempfile.mkdtemp(prefix="bench-breakdown-"))
    try:
        run, measured, wall, top = measure(root, a.steps, a.batch, a.seq, a.threads, a.model, a.variant, a.hw)
        predicted, pred_sum, sim_step = predict(run, a.hw)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    cats = sorted(set(measured) | set(predicted), key=lambda c: -measured.get(c, 0.0))
    print(f"{a.model} {a.variant or 'dense'}, batch {a.batch} x {a.seq} tokens, {a.threads} threads; per step (ms), profile {a.hw}")
    print(f"{'category':<12} {'measured':>9} {'predicted':>10} {'pred/meas':>9}")
    rows = {}
    for c in cats:
        m, p = measured.get(c, 0.0), predicted.get(c, 0.0)
        rows[c] = {"measured_s": m, "predicted_s": p, "ratio": p / m if m else None}
        print(f"{c:<12} {m * 1e3:9.2f} {p * 1e3:10.2f} {p / m if m else float('nan'):9.2f}")
    total_m = sum(measured.values())
    print(f"{'total':<12} {total_m * 1e3:9.2f} {pred_sum * 1e3:10.2f} {pred_sum / total_m:9.2f}")
    print(f"step wall time (trainer) {wall * 1e3:.1f} ms; simulator step {sim_step * 1e3:.1f} ms "
          f"({sim_step / wall - 1:+.0%})")
    print("largest ops (ms/step): " + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in list(top.items())[:10]))
    if a.out:
        a.out.write_text(json.dumps({
            "model": a.model, "variant": a.variant or "dense", "batch_size": a.batch, "seq_len": a.seq, "threads": a.threads, "profile": a.hw,
            "machine": machine_info(), "categories": rows, "measured_total_s": total_m,
            "predicted_total_s": pred_sum, "step_wall_s": wall, "simulated_step_s": sim_step,
            "top_ops_s": top}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
