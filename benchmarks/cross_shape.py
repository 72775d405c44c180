"""How far a fitted accelerator profile carries to product sizes it was not fitted to: whole shapes held out.

Leave-one-source-out (fit_published.py) holds out publications, but sources overlap in the shapes they time, so
it says little about a user's shape that no source measured. Here each profile's single-product rows
(``kernel`` ops with a stated token count) are cut into three bins of product size m * k * n (terciles of its
distinct sizes; equal sizes share a bin), and each bin is predicted by the profile refitted, from the hand-set start, to the
other two bins alone (every source kept, the profile's whole-model and best-over-batch rows left out: they
span every bin). The smallest bin is extrapolation downwards (few tokens, where fixed costs dominate), the
largest upwards, the middle interpolation. Beside each bin: the same rows' leave-one-source-out error (fit.json).

    python benchmarks/cross_shape.py   # ~1 min; writes benchmarks/results/published/cross-shape.json
"""
from __future__ import annotations

import json
import platform
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling script's hand-set starts (fit_published.py)
from fit_published import PROFILES, as_source_held_out, handset  # noqa: E402

from accelsim.kernels.published import load_points  # noqa: E402
from accelsim.kernels.published_fit import fit_profile  # noqa: E402
from accelsim.kernels.published_validate import error_stats, predict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BINS = ("small", "middle", "large")


def size(p) -> float:
    return float(p.tokens) * p.in_features * p.out_features


def bins_of(rows) -> list[int]:
    """0 small, 1 middle, 2 large: terciles of the distinct product sizes (a size many rows share, such as the
    40 Quansight rows at 4096^3, counts once, so no bin is left empty by ties)."""
    distinct = sorted({size(p) for p in rows})
    rank = {s: i for i, s in enumerate(distinct)}
    return [min(2, 3 * rank[size(p)] // len(distinct)) for p in rows]


def main() -> None:
    points = load_points()
    fit = json.loads((ROOT / "benchmarks/results/published/fit.json").read_text())
    report, pooled, pooled_own = {}, [], []
    for name in PROFILES:
        rows = [p for p in points if p.profile == name and p.software == "current" and p.kernel
                and p.tokens != "best"]
        label = dict(zip((p.id for p in rows), bins_of(rows)))
        others = [p for p in points if p.profile != name]
        per_bin = []
        for b, bin_name in enumerate(BINS):
            held = [p for p in rows if label[p.id] == b]
            train = [p for p in rows if label[p.id] != b]
            prof = fit_profile(name, points=others + train, base=handset(name), hold_out=False).profile
            preds = [pr for pr in (predict(prof, p) for p in held) if pr.predicted is not None]
            own = as_source_held_out(fit["profiles"][name], preds)
            pooled += preds
            pooled_own += own
            sizes = [size(p) for p in held]
            per_bin.append({"bin": bin_name, "rows": len(held), "sources": sorted({p.source for p in held}),
                            "product_size": [min(sizes), max(sizes)],
                            "tokens": [min(p.tokens for p in held), max(p.tokens for p in held)],
                            "training_rows": len(train), "shape_held_out": error_stats(preds),
                            "source_held_out": error_stats(own)})
            print(f"{name} {bin_name}: {len(held)} rows, m*k*n {min(sizes):.3g}-{max(sizes):.3g}, "
                  f"held out by shape {per_bin[-1]['shape_held_out']} | by source {per_bin[-1]['source_held_out']}")
        report[name] = per_bin
    out = ROOT / "benchmarks/results/published/cross-shape.json"
    out.write_text(json.dumps({"date": str(date.today()), "machine": platform.node() + " " + platform.machine(),
                               "data": "benchmarks/published/points.csv", "profiles": report,
                               "all": {"shape_held_out": error_stats(pooled),
                                       "source_held_out": error_stats(pooled_own)}}, indent=1) + "\n")
    print("all:", error_stats(pooled), "| by source:", error_stats(pooled_own))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
