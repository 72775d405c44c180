"""Sparsity-pattern statistics of a weight mask (one row of ``patterns.parquet``).

Shared by the trainer (real masks) and the synthetic-trace generator (masks drawn for a method), so
both describe patterns the same way.
"""
from __future__ import annotations

import numpy as np

from accelsim.trace import BLOCK_SIZES, HIST_BINS


def _hist(counts: np.ndarray, length: int) -> list[int]:
    frac = counts / max(length, 1)
    idx = np.minimum((frac * HIST_BINS).astype(np.int64), HIST_BINS - 1)
    return np.bincount(idx, minlength=HIST_BINS).astype(np.int64).tolist()


def block_nonempty_fraction(mask: np.ndarray, b: int) -> float:
    """Fraction of b x b tiles holding a nonzero; edge tiles are padded with zeros."""
    r, c = mask.shape
    pr, pc = -r % b, -c % b
    m = np.pad(mask, ((0, pr), (0, pc))) if (pr or pc) else mask
    tiles = m.reshape(m.shape[0] // b, b, m.shape[1] // b, b).any(axis=(1, 3))
    return float(tiles.mean())


def nm_satisfied_fraction(mask: np.ndarray, n: int, m: int) -> float:
    """Fraction of consecutive groups of m weights along a row having at most n nonzeros."""
    r, c = mask.shape
    usable = c - c % m
    if usable == 0:
        return 0.0
    groups = mask[:, :usable].reshape(r, usable // m, m).sum(axis=2)
    return float((groups <= n).mean())


def pattern_stats(mask: np.ndarray) -> dict[str, object]:
    """Statistics of a boolean mask shaped like ``nn.Linear.weight`` (out x in)."""
    mask = np.asarray(mask, dtype=bool)
    rows, cols = mask.shape
    row_nnz = mask.sum(axis=1).astype(np.float64)
    col_nnz = mask.sum(axis=0).astype(np.float64)
    nnz = int(row_nnz.sum())
    out: dict[str, object] = {"rows": rows, "cols": cols, "nnz": nnz, "density": nnz / (rows * cols)}
    for axis, counts, length in (("row", row_nnz, cols), ("col", col_nnz, rows)):
        out[f"{axis}_nnz_min"] = float(counts.min())
        out[f"{axis}_nnz_mean"] = float(counts.mean())
        out[f"{axis}_nnz_max"] = float(counts.max())
        out[f"{axis}_nnz_std"] = float(counts.std())
        out[f"{axis}_nnz_hist"] = _hist(counts, length)
    for b in BLOCK_SIZES:
        out[f"block{b}_frac"] = block_nonempty_fraction(mask, b)
    out["nm_2_4_frac"] = nm_satisfied_fraction(mask, 2, 4)
    out["nm_4_8_frac"] = nm_satisfied_fraction(mask, 4, 8)
    return out
