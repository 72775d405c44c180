"""GPU measurement kit (issue 16): sweep dense / CSR / BSR / 2:4 / Triton kernels at BERT shapes on the
visible GPU, write the measurements (GPU model, driver, CUDA, torch, Triton recorded) and a gpu-h100
profile fitted to them. <= 8 min on one H100 (7 min measuring budget, then the fit).

    python benchmarks/gpu_kit.py [--out benchmarks/results/<gpu>/] [--budget-s 420] [--base gpu-h100]
    python benchmarks/gpu_kit.py --tiny --device cpu --out /tmp/kit   # pipeline check without a GPU

Never run on a machine without a GPU for real numbers: --device cuda refuses when none is visible.
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from accelsim.kernels.gpu_kit import KitConfig, gpu_stack, run_kit

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None, help="default: benchmarks/results/<gpu name>/kit")
    ap.add_argument("--budget-s", type=float, default=KitConfig.budget_s)
    ap.add_argument("--base", default=KitConfig.base_profile, help="profile whose paths are fitted")
    ap.add_argument("--tiny", action="store_true", help="tiny shapes, float32 (pipeline check on a CPU)")
    args = ap.parse_args()
    cfg = KitConfig(device=args.device, budget_s=args.budget_s, base_profile=args.base)
    if args.tiny:
        cfg = KitConfig(device=args.device, dtype="float32", tokens=(32, 64), hidden=(32,), densities=(1.0, 0.5, 0.25),
                        patterns=("unstructured", "block16"), ops=("matmul",), repeats=2, rounds=1,
                        budget_s=args.budget_s, base_profile=args.base)
    gpu = gpu_stack(cfg.device).get("gpu") or cfg.device
    out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / re.sub(r"[^a-z0-9]+", "-", gpu.lower()) / "kit"
    t0 = time.perf_counter()
    summary = run_kit(cfg, out, progress=print)
    print(f"{summary['records']} records in {time.perf_counter() - t0:.0f} s; fitted profile "
          f"{summary['fitted_profile']} (train MAPE {summary['train_mape']}, held-out {summary['heldout_mape']})")
    for who, s in summary["speedup_error"].items():
        if s.get("n"):
            print(f"speedups, {who}: {s['n']} points, median |log err| {s['median_abs_log_err']}, within 1.35x "
                  f"{s['within_1.35x']}, median predicted / measured {s['median_ratio']}")


if __name__ == "__main__":
    main()
