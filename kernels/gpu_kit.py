"""The GPU measurement kit: time the sparse kernels on a fixed grid of BERT shapes, then fit a GPU profile.

For the day a GPU machine is available (issue 16): one call, within a budget (8 minutes on one H100),

1. sweeps dense cuBLAS (``dense_torch``), torch CSR and BSR, torch 2:4 (``to_sparse_semi_structured``)
   and the project's Triton block-sparse and N:M kernels (kernels/triton) over BERT-base/large FFN shapes
   (``kernels.bench.run_bench``, one token count at a time so a spent budget still leaves whole groups);
2. writes one measurements file (``kernels.merge``) whose ``machine`` names the GPU, its driver, CUDA,
   torch and Triton versions;
3. fits a GPU profile's efficiency parameters to the sweep's training split and scores its held-out split
   (``kernels.calibrate.calibrate``, the same fit ``accelsim calibrate`` runs), writing the fitted profile;
4. scores sparse-over-dense speedups, measured vs predicted (``kernels.validation.speedup_summary``), for the
   bundled profile as shipped (fitted to published measurements only: this GPU is a machine it never saw) and
   for the kit's fit on its held-out points.

Nothing here knows a GPU number: every figure comes out of the sweep. The pipeline runs on a CPU with
tiny shapes (tests/test_gpu_kit.py; Triton kernels themselves are checked under TRITON_INTERPRET=1 in
tests/test_kernels_triton.py).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from accelsim.errors import expect


@dataclass
class KitConfig:
    device: str = "cuda"
    dtype: str = "float16"  # the tensor-core precision every GPU path supports (2:4 needs half precision)
    # BERT pre-training batches: 4 x 128 .. 16 x 512 tokens; bert-base and bert-large widths (FFN is 4x)
    tokens: tuple[int, ...] = (2048, 512, 8192)  # most informative first: a spent budget drops the last
    hidden: tuple[int, ...] = (768, 1024)
    layers: tuple[str, ...] = ("ffn_in", "ffn_out")
    # dense, 2:4's own density, and the sparsities sparse training runs at (where CSR/BSR may win)
    densities: tuple[float, ...] = (1.0, 0.5, 0.2, 0.1, 0.05)
    patterns: tuple[str, ...] = ("unstructured", "2:4", "block16", "block32")
    ops: tuple[str, ...] = ("matmul", "matmul_dx", "matmul_dw")
    repeats: int = 5  # interleaved samples per path (median); GPU timings are steadier than a shared CPU's
    rounds: int = 2  # two sweeps per group: paired ratios and a median over rounds (kernels.bench)
    # seconds of measuring; the fit takes well under a minute, so 7 min keeps the kit within 8 on an H100
    budget_s: float = 420.0
    base_profile: str = "gpu-h100"  # the profile whose paths are fitted (its structure and start values)


def gpu_stack(device: str) -> dict:
    """GPU model, driver, CUDA, torch and Triton versions (empty values off a GPU)."""
    import torch

    info = {"gpu": None, "driver": None, "cuda": torch.version.cuda, "torch": torch.__version__}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        if shutil.which("nvidia-smi"):
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    return info


def run_kit(cfg: KitConfig, out_dir: str | Path, *, progress: Callable[[str], None] | None = None) -> dict:
    """Sweep, merge, fit; returns the kit summary (also written to ``out_dir``/kit.json)."""
    from accelsim.kernels.bench import BenchConfig, run_bench
    from accelsim.kernels.calibrate import calibrate
    from accelsim.kernels.merge import merge_measurements
    from accelsim.kernels.validation import validate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _: None)
    t0 = time.perf_counter()
    parts, skipped = [], []
    for tokens in cfg.tokens:
        if parts and time.perf_counter() - t0 > cfg.budget_s:
            skipped.append(tokens)
            continue
        bench = BenchConfig(tokens=(tokens,), hidden=cfg.hidden, layers=cfg.layers, densities=cfg.densities,
                            patterns=cfg.patterns, ops=cfg.ops, fff=(), dtype=cfg.dtype, device=cfg.device,
                            repeats=cfg.repeats, rounds=cfg.rounds, max_dense_gflop=1e6)
        part = out / f"part-{tokens}.json"
        run_bench(bench, out=part)
        parts.append(part)
        say(f"{tokens} tokens measured ({time.perf_counter() - t0:.0f} s)")
    doc = merge_measurements(parts) if len(parts) > 1 else json.loads(parts[0].read_text())
    doc["machine"] = {**doc["machine"], **gpu_stack(cfg.device)}
    measurements = out / "measurements.json"
    measurements.write_text(json.dumps(doc, indent=1) + "\n")
    threads = sorted({r["threads"] for r in doc["records"]})
    expect(len(threads) == 1, f"expected one thread count in the sweep, got {threads}", source=measurements)
    fitted = out / f"{cfg.base_profile}-fitted.yaml"
    # before anything is fitted to them: how the bundled profile (its sparse paths fitted to others' published
    # speedups) predicts this GPU's, a whole machine and source held out; then the kit's own fit, held out
    bundled = validate(measurements, cfg.base_profile, threads=threads[0])["speedup"]
    cal = calibrate(measurements, cfg.base_profile, fitted, threads=threads[0])
    own = validate(measurements, fitted, threads=threads[0])["speedup"]
    summary = {"config": asdict(cfg), "machine": doc["machine"], "elapsed_s": round(time.perf_counter() - t0, 1),
               "token_groups_measured": [int(p.stem.split("-")[1]) for p in parts],
               "token_groups_skipped_for_budget": skipped, "records": len(doc["records"]),
               "measurements": str(measurements), "fitted_profile": str(fitted),
               "train_mape": cal.fitted.get("train_mape"), "heldout_mape": cal.fitted.get("heldout_mape"),
               "n_points": cal.fitted.get("n_points"), "n_heldout": cal.fitted.get("n_heldout"),
               "speedup_error": {f"bundled {cfg.base_profile} (all points)": bundled,
                                 "fitted profile (held-out points)": own}}
    (out / "kit.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return summary
