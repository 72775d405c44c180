"""Calibrate hwconfigs/cpu-zen3.yaml (bundled as cpu-local until 2026-12-06) to this machine and measure the cost model's held-out error (issue #4).

Three steps, each the same code path as its CLI command:

1. sweep (``accelsim kernels bench``, then ``accelsim kernels merge``): BERT-shaped products at 2 threads,
   the bench's grid restricted to what a calibration needs (3 token counts x 2 hidden sizes x FFN-in and
   attention layers x 3 ops x 4 patterns x 7 densities, plus FFF layers of 6 tree shapes: 828 cases),
   only the paths that can win their family (MKL/torch BSR never beat the C block kernel here: 0 of 168
   cases in an earlier full sweep), on a quiet machine (``--quiet-below 0.1``). ``--runs`` sweeps of two
   whole rounds each (~19 min per sweep on the 2-core Zen 5 guest, ~30 min on the Zen 3), merged: every case gets 2 x runs rounds minutes
   apart, whose median per path is kept (this VM runs ~10 % slower for spells of minutes).
2. calibrate (``accelsim calibrate``): fits every path of the profile on the training split.
3. validate (``accelsim validate``): held-out MAPE overall, per pattern class and per kernel.

    python benchmarks/bench_calibration.py [--runs 3]      # all three steps
    python benchmarks/bench_calibration.py --skip-sweep    # refit and revalidate the committed sweep
    python benchmarks/bench_calibration.py --runs 1 --sweep-out X.json --profile-out Y.yaml --validation-out D/
                                                           # another machine, leaving cpu-zen3 as it is
    python benchmarks/bench_calibration.py --skip-sweep --sweep-out X.json --base B.yaml --profile-out Y.yaml \
        --validation-out D/                                # refit another machine's sweep from its own base
    python benchmarks/bench_calibration.py --runs 1 --rounds 4 --sweep-only --sweep-out X.json \
        --paths dense_torch,csr_c,sddmm_torch,blocksparse_c,nm_gather,nm_decompress_dense,fff_walk,fff_gather
                                                           # 4 rounds of the paths that win (~32 min, Zen 3)

Writes benchmarks/results/kernels-sweep.json (+ .csv), hwconfigs/cpu-zen3.yaml and
benchmarks/results/validation/ (validation.json, .csv, .png, validation-fastest.png) unless told otherwise;
the committed results are kept per machine (benchmarks/results/zen3/, zen5/), see README.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SWEEP = RESULTS / "kernels-sweep.json"
PROFILE = ROOT / "hwconfigs" / "cpu-zen3.yaml"
VALIDATION = RESULTS / "validation"

SWEEP_CONFIG = dict(
    tokens=(128, 512, 2048), hidden=(256, 768), layers=("ffn_in", "attn"),
    densities=(0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01), patterns=("unstructured", "2:4", "block16", "block32"),
    ops=("matmul", "matmul_dx", "matmul_dw"), fff=("1x5", "1x7", "1x9", "1x11", "4x7", "4x9"),
    threads=(2,), repeats=5, rounds=2, quiet_below=0.1, max_dense_gflop=30.0,
    paths=("dense_torch", "csr_torch", "csr_mkl", "csr_c", "sddmm_torch", "blocksparse_c", "nm_gather",
           "nm_decompress_dense", "fff_walk", "fff_gather"))


def sweep(out: Path, runs: int, rounds: int | None = None, paths: tuple[str, ...] | None = None) -> None:
    from accelsim.kernels.bench import BenchConfig, run_bench, write_measurements
    from accelsim.kernels.merge import merge_measurements

    parts = []
    for i in range(runs):
        t0 = time.time()

        def progress(done: int, total: int, rec: dict) -> None:
            print(f"[run {i + 1}/{runs} {done}/{total}] {time.time() - t0:.0f}s {rec['op']} "
                  f"{rec['m']}x{rec['k']}x{rec['n']} {rec['pattern']} {rec['density']:.4g} {rec['path']} "
                  f"{rec['median_s'] * 1e3:.3f} ms", flush=True)

        part = ROOT / "runs" / "kernels" / f"calibration-sweep-{i + 1}.json"
        cfg = dict(SWEEP_CONFIG, **({"rounds": rounds} if rounds else {}), **({"paths": paths} if paths else {}))
        run_bench(BenchConfig(**cfg), out=part, progress=progress)
        parts.append(part)
        print(f"sweep {i + 1}: {time.time() - t0:.0f} s -> {part}")
    doc = merge_measurements(parts) if len(parts) > 1 else json.loads(parts[0].read_text())
    write_measurements(doc, out)
    out.write_text(json.dumps(doc, separators=(",", ":")))  # compact: the committed file stays < 2 MB
    print(f"merged {len(parts)} sweeps: {len(doc['records'])} records -> {out}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-sweep", action="store_true", help="refit the committed sweep")
    ap.add_argument("--runs", type=int, default=3, help="sweeps of two rounds each, merged")
    ap.add_argument("--rounds", type=int, default=None, help="whole rounds per sweep (default 2)")
    ap.add_argument("--paths", default=None,
                    help="comma-separated kernel paths to time (default: every path that can win its family)")
    ap.add_argument("--sweep-only", action="store_true", help="sweep and merge, neither fit nor validate")
    ap.add_argument("--sweep-out", type=Path, default=SWEEP)
    ap.add_argument("--profile-out", type=Path, default=PROFILE)
    ap.add_argument("--validation-out", type=Path, default=VALIDATION)
    ap.add_argument("--base", type=Path, default=PROFILE,
                    help="profile whose efficiencies are fitted (its clock, peak and caches are kept)")
    args = ap.parse_args(argv)
    if not args.skip_sweep:
        sweep(args.sweep_out, args.runs, args.rounds, tuple(args.paths.split(",")) if args.paths else None)
    if args.sweep_only:
        return 0
    from accelsim.kernels.calibrate import calibrate, validate
    from accelsim.kernels.console import print_calibration, print_validation

    cal = calibrate(args.sweep_out, args.base, args.profile_out)
    print_calibration(cal)
    report = validate(args.sweep_out, args.profile_out, args.validation_out)
    print_validation(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
