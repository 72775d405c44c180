"""Analytic pattern statistics (a ``patterns.parquet`` row) for masks drawn at random.

Used when the trace has no pattern row for a layer and by :func:`kernel_time`. Computing the statistics
in closed form (binomial laws) instead of drawing a mask keeps one cost query in the microseconds even
for 30M-weight layers; tests check the formulas against :func:`accelsim.patterns.pattern_stats` on drawn
masks. The extra key ``row_model`` (and ``col_model``) tells the work-item sizer the exact law behind the row counts:
``(trials, scale, group, factor)`` = each row holds ``scale * Binomial(trials, factor * density)`` nonzeros
and rows come in identical groups of ``group`` (1 for unstructured and 2:4 masks, b for b x b blocks).
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import stats

from accelsim.trace import BLOCK_SIZES, HIST_BINS

#: block sizes a kernel path may run: the trace vocabulary's (patterns.parquet carries their block fractions)
#: plus 64, Triton BSR's and SuperBlock's block (benchmarks/published/points.csv). A trace's pattern rows carry
#: no block64_frac, so a block-64 path runs only on synthetic patterns (kernel_time, published rows), never
#: on a trained layer the trace cannot describe at that size.
KERNEL_BLOCK_SIZES = (*BLOCK_SIZES, 64)
SYNTHETIC_KINDS = ("unstructured", "2:4", *(f"block{b}" for b in KERNEL_BLOCK_SIZES))


def _binned(trials: int, scale: int, density: float, length: int, count: int) -> list[int]:
    """Histogram of nnz/length over HIST_BINS bins for ``count`` rows of ``scale * Binomial(trials, d)``."""
    edges = np.arange(1, HIST_BINS) / HIST_BINS * length / scale  # in units of the binomial variable
    cdf_below = stats.binom.cdf(np.ceil(edges - 1e-9) - 1, trials, density)
    probs = np.diff(np.concatenate(([0.0], cdf_below, [1.0])))
    hist = np.floor(probs * count).astype(np.int64)
    hist[int(np.argmax(probs))] += count - int(hist.sum())  # keep the total exact
    return hist.tolist()


def _axis(out: dict, axis: str, trials: int, scale: int, density: float, length: int, count: int,
          group: int = 1) -> None:
    mean = scale * trials * density
    std = scale * math.sqrt(trials * density * (1.0 - density))
    # expected extremes over the independent rows (groups of `group` rows are identical)
    independent = max(count // group, 1)
    lo_q, hi_q = stats.binom.ppf([0.5 / independent, 1.0 - 0.5 / independent], trials, density)
    lo, hi = (scale * float(lo_q), scale * float(hi_q)) if independent > 1 else (mean, mean)
    out[f"{axis}_nnz_min"], out[f"{axis}_nnz_mean"] = float(min(lo, mean)), float(mean)
    out[f"{axis}_nnz_max"], out[f"{axis}_nnz_std"] = float(max(hi, mean)), float(std)
    out[f"{axis}_nnz_hist"] = _binned(trials, scale, density, length, count)


def synthetic_pattern(rows: int, cols: int, density: float, kind: str = "unstructured") -> dict[str, object]:
    """Expected statistics of a rows x cols mask of ``kind`` at ``density`` (see SYNTHETIC_KINDS)."""
    return dict(_synthetic(int(rows), int(cols), float(density), kind))


@lru_cache(maxsize=1024)
def _synthetic(rows: int, cols: int, density: float, kind: str) -> dict[str, object]:
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f"unknown synthetic pattern {kind!r}; expected one of {SYNTHETIC_KINDS}")
    d = min(max(float(density), 0.0), 1.0)
    out: dict[str, object] = {"rows": rows, "cols": cols, "density": d, "nnz": int(round(rows * cols * d))}
    if kind.startswith("block"):
        b = int(kind[5:])
        br, bc = max(rows // b, 1), max(cols // b, 1)
        _axis(out, "row", bc, b, d, cols, rows, b)
        _axis(out, "col", br, b, d, rows, cols, b)
        for bb in KERNEL_BLOCK_SIZES:  # a bb-tile covers (bb/b)^2 independent blocks when bb >= b, else one
            out[f"block{bb}_frac"] = 1.0 - (1.0 - d) ** ((bb // b) ** 2) if bb >= b else d
        out["nm_2_4_frac"] = 1.0 - d if b >= 4 else 0.0
        out["nm_4_8_frac"] = 1.0 - d if b >= 8 else (1.0 - d) ** 2 + 2 * d * (1 - d)
        out["row_model"] = (bc, b, b, 1.0)
        out["col_model"] = (br, b, b, 1.0)
        return out
    if kind == "2:4":
        # each group of 4 keeps Binomial(2, 2d) of its two allowed slots: exactly 2 per group at d = 0.5
        d = min(d, 0.5)
        out["density"], out["nnz"] = d, int(round(rows * cols * d))
        _axis(out, "row", cols // 2, 1, 2 * d, cols, rows)
        _axis(out, "col", rows, 1, d, rows, cols)
        for b in KERNEL_BLOCK_SIZES:
            out[f"block{b}_frac"] = 1.0 - (1.0 - 2 * d) ** (b * b // 2)
        out["nm_2_4_frac"], out["nm_4_8_frac"] = 1.0, 1.0
        out["row_model"] = (cols // 2, 1, 1, 2.0)
        out["col_model"] = (rows, 1, 1, 1.0)
        return out
    _axis(out, "row", cols, 1, d, cols, rows)
    _axis(out, "col", rows, 1, d, rows, cols)
    for b in KERNEL_BLOCK_SIZES:
        out[f"block{b}_frac"] = 1.0 - (1.0 - d) ** (b * b)
    out["nm_2_4_frac"] = float(stats.binom.cdf(2, 4, d))
    out["nm_4_8_frac"] = float(stats.binom.cdf(4, 8, d))
    out["row_model"] = (cols, 1, 1, 1.0)
    out["col_model"] = (rows, 1, 1, 1.0)
    return out
