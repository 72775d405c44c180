"""The PyTorch ViT blog's fp32 block-sparse rows against the fitted A100 profile (benchmarks/published/README.md,
"Sources that disagree"): where the op-by-op ViT-B/16 pass puts the time, what the blog's speedups imply for the
sparse MLPs, and what the rows come out at on cuSPARSE's fp32 BSR rate (``bsr-fp32``) and at pytorch#114757's
Triton / cuSPARSE ratio for fp32 nn.linear times that rate. Writes benchmarks/results/published/vit-fp32.json.

    python -P benchmarks/published/vit_fp32.py
"""
from __future__ import annotations

import json
from pathlib import Path

from accelsim.hardware import load_profile, op_cost, synthetic_pattern, with_params
from accelsim.kernels.published import load_points
from accelsim.kernels.published_models import forward_ops, forward_time
from accelsim.kernels.published_validate import predict

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "pytorch-blog-vit-block-sparsity"
#: pytorch#114757 (Nov 2023): fp32 nn.linear on Triton's BSR kernel instead of cuSPARSE, 62-72 % faster on average
#: per block size (16 to 128, A100); the middle of that range
LINEAR_OVER_CUSPARSE = 1.7


def mlp_seconds(profile, model: str, batch: int, seq: int, density: float, pattern: str, path: str) -> float:
    """Seconds of the pass's sparse MLP products on ``path`` (eager, fp32)."""
    total = 0.0
    for op in forward_ops(model, batch, seq, density):
        if op.sparse:
            pat = synthetic_pattern(op.n, op.k, op.density, pattern)
            total += op_cost(profile, op, pat, dtype="fp32", path=path, eager=True).time_s
    return total


def main() -> None:
    profile = load_profile("gpu-a100")
    cusparse = profile.paths["bsr-fp32"].peak_fraction["fp32"]
    faster = with_params(profile, {"paths.bsr-fp32.peak_fraction.fp32": cusparse * LINEAR_OVER_CUSPARSE})
    rows = []
    for p in (p for p in load_points() if p.source == SOURCE):
        dense = forward_time(profile, forward_ops(p.model, p.batch, p.seq_len), "fp32", f"block{p.block}", None, True)
        mlp_dense = sum(op_cost(profile, op, None, dtype="fp32", eager=True).time_s
                        for op in forward_ops(p.model, p.batch, p.seq_len) if "mlp" in op.name)
        on = {"own path": (profile, p), "bsr-fp32": (profile, p.model_copy(update={"path": "bsr-fp32"})),
              f"bsr-fp32 x {LINEAR_OVER_CUSPARSE}": (faster, p.model_copy(update={"path": "bsr-fp32"}))}
        rows.append({
            "id": p.id, "block": p.block, "published": p.speedup, "dense_pass_s": dense, "dense_mlp_s": mlp_dense,
            # the sparse MLPs' time the published speedup implies, the rest of the pass as costed
            "implied_sparse_mlp_s": dense / p.speedup - (dense - mlp_dense),
            "own_path_sparse_mlp_s": mlp_seconds(profile, p.model, p.batch, p.seq_len, p.density,
                                                 f"block{p.block}", p.path),
            "predicted": {name: predict(prof, q).predicted for name, (prof, q) in on.items()}})
    doc = {"profile": "hwconfigs/gpu-a100.yaml", "bsr_fp32_fraction": cusparse,
           "linear_over_cusparse": LINEAR_OVER_CUSPARSE, "rows": rows}
    out = ROOT / "benchmarks/results/published/vit-fp32.json"
    out.write_text(json.dumps(doc, indent=1) + "\n")
    for r in rows:
        print(f"{r['id']}: published {r['published']}, dense pass {r['dense_pass_s'] * 1e3:.0f} ms, sparse MLPs "
              f"implied {r['implied_sparse_mlp_s'] * 1e3:.0f} ms vs {r['own_path_sparse_mlp_s'] * 1e3:.0f} ms on "
              f"its path; predicted " + ", ".join(f"{k} {v:.2f}" for k, v in r["predicted"].items()))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
