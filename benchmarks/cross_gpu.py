"""How far a copied GPU profile carries: one GPU's sparse paths, fitted only to publications that never measured
the other GPU, predicting the other GPU's published speedups (a whole machine held out, and every author
group that measured it).

README tells users to start a profile for new hardware from the closest bundled one. This measures what that
copy is worth one GPU generation away: for each ordered pair (donor, target) of gpu-a100 and gpu-h100, the
donor's sparse paths are refitted (kernels.published_fit.fit_profile, from the hand-set start) without the rows
of any author group that also published rows for the target, then put into the target profile in place of its
own (the target keeps its datasheet: peaks, memory, launch costs). Scored on the target's current rows of the families
the donor has a fitted path for, in dtypes its paths run, beside the target's own leave-one-source-out predictions of the same rows
(fit.json). Published speedups only; no timing.

    python benchmarks/cross_gpu.py   # ~2 min; writes benchmarks/results/published/cross-gpu.json
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's hand-set starts (fit_published.py)
from fit_published import as_source_held_out, handset  # noqa: E402

from accelsim.errors import UserError  # noqa: E402
from accelsim.hardware import load_profile  # noqa: E402
from accelsim.kernels.published import author_group, load_points  # noqa: E402
from accelsim.kernels.published_fit import fit_profile  # noqa: E402
from accelsim.kernels.published_validate import error_stats, predict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PAIRS = (("gpu-a100", "gpu-h100"), ("gpu-h100", "gpu-a100"))


def _scored(preds) -> dict:
    out = {p.family: error_stats([x for x in preds if x.family == p.family]) for p in preds}
    return {"overall": error_stats(preds), "by_family": dict(sorted(out.items()))}


def main() -> None:
    points = load_points()
    fit = json.loads((ROOT / "benchmarks/results/published/fit.json").read_text())
    pairs = []
    for donor, target in PAIRS:
        target_rows = [p for p in points if p.profile == target and p.software == "current" and (p.kernel or p.model)]
        shared = sorted({author_group(p.source) for p in target_rows})
        kept = [p for p in points if p.profile != donor or author_group(p.source) not in shared]
        donor_fit = fit_profile(donor, points=kept, base=handset(donor))
        copied = dataclasses.replace(load_profile(target), paths=donor_fit.profile.paths)
        fitted_paths = {pf.path for pf in donor_fit.paths}
        # rows of a family the donor has no fitted path for score the donor's hand-set start, not a copy of a fit
        scorable = [p for p in target_rows if p.path in fitted_paths]
        preds, skipped = [], 0
        for p in scorable:
            try:
                pr = predict(copied, p)
            except UserError:  # a dtype the donor's paths do not run (fp8 on the A100's)
                skipped += 1
                continue
            if pr.predicted is not None:
                preds.append(pr)
        own_preds = as_source_held_out(fit["profiles"][target], preds)
        pairs.append({"donor": donor, "target": target, "excluded_author_groups": shared,
                      "donor_rows_fitted": sum(1 for p in kept if p.profile == donor and p.software == "current"),
                      "donor_fitted_paths": sorted(fitted_paths),
                      "target_rows_without_a_fitted_donor_path": len(target_rows) - len(scorable),
                      "target_rows_skipped_dtype": skipped, "copied": _scored(preds),
                      "target_own_held_out": _scored(own_preds)})
        c, o = pairs[-1]["copied"]["overall"], pairs[-1]["target_own_held_out"]["overall"]
        print(f"{donor} paths on {target} (groups left out {shared}): {c} | {target}'s own held-out: {o}")
    out = ROOT / "benchmarks/results/published/cross-gpu.json"
    out.write_text(json.dumps({"date": str(date.today()), "machine": platform.node() + " " + platform.machine(),
                               "data": "benchmarks/published/points.csv", "pairs": pairs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
