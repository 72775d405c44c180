"""Trainer overheads on bert-tiny (batch 32, seq 128), measured side by side in one run.

Prints: tracing overhead (time in trace code / step time; goal <= 3 %), masked-sparse RigL step vs
dense step (median wall time ratio; goal <= 1.15x), amortised mask-update cost at delta T = 100.
Runs are interleaved (dense, rigl, dense, rigl) so machine noise hits both alike.

    python benchmarks/bench_trainer.py [--steps 300] [--repeats 2] [--out benchmarks/results/trainer.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from accelsim import simulate
from accelsim import trace as tr
from accelsim.hardware import load_profile
from accelsim.kernels.machine import machine_info, machine_mismatch
from accelsim.trainer.data import DataConfig
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, train


def one_run(root: Path, name: str, method: str, sparsity: float, steps: int, threads: int, hw: str) -> dict:
    out = root / name
    cfg = TrainConfig(model="bert-tiny", out=str(out), steps=steps, batch_size=32, eval_every=10_000,
                      checkpoint_every=50, threads=threads, data=DataConfig(seq_len=128),
                      sparsity=SparsityConfig(method=method, sparsity=sparsity, update_every=100))
    train(cfg, progress=False)
    steps_tbl = tr.read_table(out, "steps")
    wall = steps_tbl["wall_s"].to_numpy()[5:]  # skip warm-up steps
    changed = steps_tbl["mask_changed"].to_numpy()[5:]
    summary = json.loads((out / "train_summary.json").read_text())
    # the simulator's whole-step prediction for this very trace on the profile of this machine
    sim = simulate(out, hw)
    timeline = np.asarray(sim.timeline["time_s"])
    return {"wall": wall, "changed": changed, "trace_s": summary["trace_seconds"],
            "total_wall": float(steps_tbl["wall_s"].to_numpy().sum()),
            "predicted_step_s": float(np.median(timeline[5:]))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--out", default="benchmarks/results/trainer.json")
    ap.add_argument("--hw", default="cpu-local", help="profile of this machine for the whole-step cross-check")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-trainer-"))
    res: dict[str, list[dict]] = {"dense": [], "rigl": []}
    try:
        for r in range(a.repeats):
            res["dense"].append(one_run(root, f"dense{r}", "dense", 0.0, a.steps, a.threads, a.hw))
            res["rigl"].append(one_run(root, f"rigl{r}", "rigl", 0.9, a.steps, a.threads, a.hw))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    dense_wall = np.concatenate([x["wall"] for x in res["dense"]])
    rigl = res["rigl"]
    rigl_normal = np.concatenate([x["wall"][~x["changed"]] for x in rigl])
    rigl_update = np.concatenate([x["wall"][x["changed"]] for x in rigl])
    med_dense, med_rigl = float(np.median(dense_wall)), float(np.median(rigl_normal))
    extra_update = float(np.median(rigl_update) - med_rigl) if rigl_update.size else float("nan")
    trace_frac = float(np.median([x["trace_s"] / x["total_wall"] for x in res["dense"] + rigl]))
    # the whole-step cross-check means something only on the machine the profile was calibrated on
    mismatch = machine_mismatch((load_profile(a.hw).fitted or {}).get("machine"))
    out = {
        "model": "bert-tiny", "batch_size": 32, "seq_len": 128, "steps": a.steps, "repeats": a.repeats,
        "threads": a.threads, "torch": torch.__version__, "machine": machine_info(),
        "profile": a.hw, "profile_machine_mismatch": mismatch,
        "median_step_s_dense": med_dense, "median_step_s_rigl90": med_rigl,
        "masked_vs_dense_ratio": med_rigl / med_dense,
        "tracing_overhead_fraction": trace_frac,
        "mask_update_extra_s": extra_update,
        "mask_update_amortised_fraction_dT100": extra_update / 100 / med_rigl,
        "predicted_step_s_dense": float(np.median([x["predicted_step_s"] for x in res["dense"]])),
        "predicted_step_s_rigl90": float(np.median([x["predicted_step_s"] for x in rigl])),
    }
    for key, measured in (("dense", med_dense), ("rigl90", med_rigl)):
        pred = out[f"predicted_step_s_{key}"]
        out[f"step_error_{key}"] = (pred - measured) / measured
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2))
    print(f"bert-tiny batch 32 x seq 128, {a.threads} threads, {a.repeats}x{a.steps} steps per method")
    print(f"  median step: dense {med_dense*1e3:.1f} ms, RigL 90 % (masked) {med_rigl*1e3:.1f} ms "
          f"-> ratio {med_rigl/med_dense:.3f} (goal <= 1.15)")
    print(f"  tracing overhead: {100*trace_frac:.2f} % of step time (goal <= 3 %)")
    print(f"  mask update: +{extra_update*1e3:.1f} ms on an update step -> amortised at dT=100: "
          f"{100*out['mask_update_amortised_fraction_dT100']:.3f} % of step time")
    if mismatch:
        print(f"  warning: {a.hw} was calibrated on another machine ({mismatch}); run "
              "benchmarks/bench_calibration.py here for a meaningful whole-step cross-check")
    for key, measured in (("dense", med_dense), ("rigl90", med_rigl)):
        pred = out[f"predicted_step_s_{key}"]
        print(f"  simulator ({a.hw}) whole step, {key}: predicted {pred*1e3:.1f} ms vs measured "
              f"{measured*1e3:.1f} ms -> error {100*(pred-measured)/measured:+.1f} %")


if __name__ == "__main__":
    main()
