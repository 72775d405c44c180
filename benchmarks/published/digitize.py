"""How the read-from-figure rows of points.csv were read (kept so every such number can be re-derived).

Source: graphcore-research/sparsity-benchmarks, analysis/Analysis.ipynb (Li et al. 2023, "PopSparse",
arXiv:2303.16999), the notebook's embedded PNG outputs:

* figure ``ipu_density`` (cell 9) and ``gpu_density`` (cell 11): log-scale "(non-zero) FLOP/s" against
  density at m = k = 4096, best over the batch n. Marker centres were located by colour (matplotlib tab10)
  in the 516x347 PNG; the y axis ticks (100T, 30T, 10T, 3T, 1T, 300G) sit at pixel rows 16, 72, 123, 179,
  230, 286. The notebook plots dense as ``rate * density`` (its ``add_dense_as_sparse``), so the sparse
  speedup over dense of the same dtype is ``10 ** ((y_dense - y_sparse) / px_per_decade)``. A marker
  centre is good to about +-2 px, i.e. about +-5 % on a ratio.
* figure ``ipu_static_grid`` (cell 20): heatmap of static-sparse / dense speedup (fp16) over m = k, n,
  block size b and density d, colour map ``coolwarm_r`` on LogNorm(0.1, 10). Each cell's centre colour
  (7x7 px mean) was matched to the nearest of the colour map's 256 levels: +-1 level = +-1.8 %.

Run ``python benchmarks/published/digitize.py`` to print the derived speedups from the pixel readings below.
"""
from __future__ import annotations

import math

#: tick rows of the line figures -> log10 FLOP/s
TICKS = {16: math.log10(100e12), 72: math.log10(30e12), 123: math.log10(10e12), 179: math.log10(3e12),
         230: math.log10(1e12), 286: math.log10(300e9)}
DENSITIES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)

#: marker centre rows read from the PNGs; None = not visible (hidden by the legend or off the axes)
IPU_FP16 = {
    "dense": (40, 75, 107, 139),
    "static_b1": (116, 116, 121, 130),
    "static_b16": (21, 34, 33, 64),
    "dynamic_b1": (125, 136, 147, 169),
    "dynamic_b16": (44, 60, 77, 103),
}
GPU = {
    "dense_fp32": (169, 201, 233, None),
    "csr_fp32": (212, 237, 260, None),
    "bsr16_fp32": (183, 183, 184, 185),
    "dense_fp16": (None, None, 107, 139),
    "csr_fp16": (194, 216, 243, 268),
}


def px_per_decade() -> float:
    ys, vs = zip(*TICKS.items())
    my, mv = sum(ys) / len(ys), sum(vs) / len(vs)
    slope = sum((y - my) * (v - mv) for y, v in zip(ys, vs)) / sum((y - my) ** 2 for y in ys)
    return -1.0 / slope


def dense_rows(rows: tuple) -> list[float]:
    """Dense marker rows at every density: the plotted dense rate is rate * density, so one marker fixes
    the others (a halving of density moves it log10(2) decades down). The anchor is the density-1/16
    marker, fully visible in both figures and where the notebook's printed table (cell 22) checks the
    IPU readings: 0.70 / 4.9 / 0.40 / 1.9 read here vs 0.7 / 4.9 / 0.4 / 1.9 printed."""
    ppd = px_per_decade()
    anchor = DENSITIES.index(1 / 16)
    return [rows[anchor] + ppd * math.log10(DENSITIES[anchor] / d) for d in DENSITIES]


def speedups(dense: tuple, sparse: tuple) -> list[float | None]:
    ppd = px_per_decade()
    return [None if s is None else 10 ** ((yd - s) / ppd) for yd, s in zip(dense_rows(dense), sparse)]


if __name__ == "__main__":
    print(f"px per decade {px_per_decade():.1f}")
    for name in ("static_b1", "static_b16", "dynamic_b1", "dynamic_b16"):
        print("ipu fp16", name, [f"{s:.2f}" for s in speedups(IPU_FP16["dense"], IPU_FP16[name])])
    for name, dense in (("csr_fp32", "dense_fp32"), ("bsr16_fp32", "dense_fp32"), ("csr_fp16", "dense_fp16")):
        print("a100", name, [None if s is None else f"{s:.3f}" for s in speedups(GPU[dense], GPU[name])])
