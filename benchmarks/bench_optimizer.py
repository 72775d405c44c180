"""The optimizer step on this CPU: torch's AdamW as the trainer builds it (kernels.optim.adamw: fused where torch
has it) against torch's default loop over the parameters, on the trainer's bert-small (17 M parameters) with dense
moments and with 90 % of the encoder's linear weights pruned (their moments exact zeros, as a sparse run's are),
side by side in one process; plus the two element times a CPU profile prices a step's update with (workload roles
OPTIMIZER and MASK_APPLY, measured by kernels.vector_ops.optimizer_rows and mask_apply_row, as `accelsim hw
calibrate-local` does).

Why a benchmark of its own: the trainer's optimizer changed from torch's default to the fused AdamW, so a profile
calibrated before prices the update at the old implementation's rate. ``--into PROFILE`` writes the two measured
element times (with their source) into an existing profile instead of recalibrating it whole.

    python -P benchmarks/bench_optimizer.py --out benchmarks/results/<machine>/optimizer.json \
        [--into benchmarks/results/<machine>/cpu-....yaml]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.machine import machine_info
from accelsim.kernels.optim import adamw, implementation
from accelsim.kernels.profile_edit import write_element_times
from accelsim.kernels.timing import measure
from accelsim.kernels.vector_ops import element_time, mask_apply_row, optimizer_rows
from accelsim.trainer.data import DataConfig
from accelsim.trainer.models import build_model, linear_layers
from accelsim.workload import MASK_APPLY, OPTIMIZER

#: the share of each encoder linear weight a sparse run keeps (a RigL-90 run)
DENSITY = 0.1


def bert_small_parameters(pruned: bool) -> list[torch.nn.Parameter]:
    """The trainer's bert-small (its default 8,192-token vocabulary, sequences of 128) with a gradient on every
    parameter; with ``pruned``, every encoder linear weight and its gradient masked to DENSITY (the optimizer's
    moments of the pruned weights then stay exact zeros, as in a sparse run)."""
    torch.manual_seed(0)
    model = build_model("bert-small", vocab_size=DataConfig().vocab_size, seq_len=128)
    encoder = {id(m.weight) for _, m, _ in linear_layers(model)}
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
        if pruned and id(p) in encoder:
            keep = (torch.rand_like(p) < DENSITY).float()
            p.data.mul_(keep)
            p.grad.mul_(keep)
    return params


def side_by_side(repeats: int) -> dict[str, dict]:
    """{"<implementation> <dense|pruned>": {"ms": median step, "parameters": n}} with clipping, as the trainer steps."""
    runners, sizes = {}, {}
    for pruned in (False, True):
        for fused in (False, True):
            params = bert_small_parameters(pruned)
            opt = adamw(params, 1e-4, 0.01) if fused else torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
            name = f"{implementation(opt)} {'pruned' if pruned else 'dense'}"

            def step(params=params, opt=opt):
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
            runners[name] = step
            sizes[name] = sum(p.numel() for p in params)
    t, _ = measure(runners, repeats=repeats, keep=tuple(runners))
    return {name: {"ms": t[name] * 1e3, "parameters": sizes[name]} for name in runners}


def sqrt_by_value(repeats: int) -> dict[str, float]:
    """{"random" | "zeros": ns per element} of torch.sqrt over 1 M float32 values: the loop's step takes the square
    root of every second moment, and a pruned weight's is an exact zero."""
    values = {"random": torch.rand(1 << 20), "zeros": torch.zeros(1 << 20)}
    out = torch.empty(1 << 20)
    runners = {name: (lambda x=x: torch.sqrt(x, out=out)) for name, x in values.items()}
    t, _ = measure(runners, repeats=repeats, keep=tuple(runners))
    return {name: t[name] / (1 << 20) * 1e9 for name in runners}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=21)  # memory-bound: a shared machine's runs differ more than compute-bound ones
    ap.add_argument("--into", type=Path, help="a profile YAML to write the measured element times into")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    retain_freed_memory()  # the trainer's allocator policy (machine_info records it)
    t0 = time.perf_counter()
    rows = {**optimizer_rows(args.repeats), "mask apply": mask_apply_row(args.repeats)}
    compared = side_by_side(args.repeats)
    doc = {"machine": machine_info(), "torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
           "density": DENSITY, "wall_s": time.perf_counter() - t0, "rows": rows,
           "element_time_ns": {name: row["fwd_s"] / row["elements"] * 1e9 for name, row in rows.items()},
           "bert_small_step": compared, "sqrt_ns": sqrt_by_value(args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    for name, ns in doc["element_time_ns"].items():
        print(f"{name:22s} {ns:7.3f} ns/element")
    n = next(iter(compared.values()))["parameters"]
    print(f"bert-small's update ({n:,} parameters, clipped), median ms: "
          + ", ".join(f"{k} {v['ms']:.1f}" for k, v in compared.items()))
    print("torch.sqrt per element: " + ", ".join(f"{k} {v:.3f} ns" for k, v in doc["sqrt_ns"].items()))
    if args.into:
        times = element_time(rows)  # the optimizer's rows: a size table over the models' parameter counts
        write_element_times(args.into, times, f"{args.out}: kernels.vector_ops.optimizer_rows and mask_apply_row at "
                                              f"{args.threads} thread(s), median of {args.repeats} "
                                              "(benchmarks/bench_optimizer.py)")
        print(f"wrote {OPTIMIZER} / {MASK_APPLY} into {args.into}")


if __name__ == "__main__":
    main()
