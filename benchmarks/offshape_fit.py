"""Issue 20: fit and validate an off-shape sweep (benchmarks/bench_offshape.py) with and without the model's
kernel-structure terms, side by side on the same measurements, and write one summary.

    python benchmarks/offshape_fit.py benchmarks/results/zen5-f26m2/offshape/sweep.json \
        --hw benchmarks/results/zen5-f26m2/offshape/base-1thread.yaml --out benchmarks/results/zen5-f26m2/offshape

Variants (each fitted to the on-grid training cases only, scored on the on-grid held-out cases and on the
shapes held out whole):

* ``without``: the base profile with the issue-20 terms removed (row_multiple 1, chunk_bytes 0 everywhere):
  the model as it was;
* ``rows_only``: row_multiple kept, chunk_bytes removed (what each term does on its own);
* ``with``: the base profile as given (csr_c paths: row_multiple 128 and chunk_bytes 192 KiB from
  kernels/cpu/_csr.c; blocksparse_c paths: chunk_bytes 1 MiB from kernels/cpu/_blocksparse.c), with the fitted
  tail_penalty of a partial row tile;
* ``with_no_tail``: the same with tail_penalty never fitted (a partial tile costs a full one): what that term does.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

from accelsim.hardware import load_profile, profile_to_yaml
from accelsim.kernels.calibrate import calibrate, validate
from accelsim.kernels.records import read_measurements

TERMS = ("row_multiple", "chunk_bytes", "group_bytes")


def without_terms(profile, terms=TERMS, name="without"):
    neutral = {"row_multiple": 1, "chunk_bytes": 0.0, "group_bytes": 0.0}
    paths = {n: dataclasses.replace(s, **{t: neutral[t] for t in terms}) for n, s in profile.paths.items()}
    sources = {k: v for k, v in profile.sources.items() if k.split(".")[-1] not in terms}
    return dataclasses.replace(profile, paths=paths, sources=sources, name=f"{profile.name}-{name}")


def _classes(summary: dict | None) -> dict:
    if not summary:
        return {}
    return {"overall": summary["overall"], "by_pattern": summary["by_pattern"]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep")
    ap.add_argument("--hw", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    doc = read_measurements(args.sweep)
    base = load_profile(args.hw)
    variants = {"without": without_terms(base), "rows_only": without_terms(base, ("chunk_bytes", "group_bytes"), "rows-only"),
                "with": base, "with_no_tail": base}
    # the ablation: tail_penalty is not fitted, so it stays at the base's 0
    frozen = {"with_no_tail": ("tail_penalty",)}
    summary = {"sweep": args.sweep, "machine": doc.machine, "sweep_config": doc.config,
               "loadavg_at_fit": os.getloadavg(), "variants": {}}
    for name, prof in variants.items():
        src = out / f"base-{name}.yaml"
        if name in ("without", "rows_only"):
            src.write_text(profile_to_yaml(prof))
        else:
            src = Path(args.hw)
        t0 = time.perf_counter()
        fitted = out / f"fitted-{name}.yaml"
        cal = calibrate(args.sweep, src, fitted, threads=args.threads, frozen=frozen.get(name, ()))
        rep = validate(args.sweep, fitted, out / f"validation-{name}", threads=args.threads)
        summary["variants"][name] = {
            "base": str(src), "fitted": str(fitted), "fit_wall_s": time.perf_counter() - t0,
            "train_mape": cal.fitted["train_mape"], "n_train": cal.fitted["n_points"],
            "on_grid": _classes(rep["on_grid"]), "off_shape": _classes(rep["off_shape"]),
            "off_shape_fastest": _classes(rep.get("off_shape_fastest"))}
        v = summary["variants"][name]
        print(f"{name}: on-grid {v['on_grid']['overall']['mape']:.1%} (n {v['on_grid']['overall']['n']}), "
              f"off-shape {v['off_shape']['overall']['mape']:.1%} (n {v['off_shape']['overall']['n']}); "
              + ", ".join(f"{k} {g['mape']:.1%}" for k, g in v["off_shape"]["by_pattern"].items()), flush=True)
    (out / "offshape-summary.json").write_text(json.dumps(summary, indent=1))
    print(f"wrote {out / 'offshape-summary.json'}")


if __name__ == "__main__":
    main()
