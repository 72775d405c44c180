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


def _padded(mask: np.ndarray, multiple: int) -> np.ndarray:
    r, c = mask.shape
    pr, pc = -r % multiple, -c % multiple
    return np.pad(mask, ((0, pr), (0, pc))) if (pr or pc) else mask


def block_nonempty_fraction(mask: np.ndarray, b: int) -> float:
    """Fraction of b x b tiles holding a nonzero; edge tiles are padded with zeros."""
    m = _padded(mask, b)
    tiles = m.reshape(m.shape[0] // b, b, m.shape[1] // b, b).any(axis=(1, 3))
    return float(tiles.mean())


def block_nonempty_fractions(mask: np.ndarray) -> dict[int, float]:
    """:func:`block_nonempty_fraction` for every size in BLOCK_SIZES at once, each size's tiles from the
    previous size's (the sizes double). Why not one call per size: numpy reduces a short last axis one
    element at a time, and the sparse execution recomputes these for every layer at every mask change,
    inside the step (a bert-small RigL step: 150 ms of statistics per rebuild before)."""
    rows, cols = mask.shape
    sizes = sorted(BLOCK_SIZES)
    m = np.ascontiguousarray(_padded(mask, sizes[-1]), dtype=bool)
    b = sizes[0]
    # b consecutive bools of a row are one b-byte word: nonzero when any of them is set
    words = m.view(np.dtype(f"u{b}")) != 0 if b in (2, 4, 8) else m.reshape(m.shape[0], -1, b).any(axis=2)
    tiles = words.reshape(m.shape[0] // b, b, -1).any(axis=1)
    out = {}
    while True:
        if b in sizes:
            out[b] = float(tiles[: -(-rows // b), : -(-cols // b)].mean())
        if 2 * b > sizes[-1]:
            break
        tiles = tiles.reshape(tiles.shape[0] // 2, 2, tiles.shape[1] // 2, 2).any(axis=(1, 3))
        b *= 2
    # a size that is not the smallest times a power of two
    return {s: out[s] if s in out else block_nonempty_fraction(mask, s) for s in BLOCK_SIZES}


def nm_satisfied_fraction(mask: np.ndarray, n: int, m: int) -> float:
    """Fraction of consecutive groups of m weights along a row having at most n nonzeros."""
    r, c = mask.shape
    usable = c - c % m
    if usable == 0:
        return 0.0
    part = np.ascontiguousarray(mask[:, :usable], dtype=bool)
    if m in (4, 8):  # an m-byte word of 0/1 bytes times 0x0101...01 holds their sum in its top byte
        word = part.view(np.dtype(f"u{m}"))
        ones = word.dtype.type(int("01" * m, 16))
        groups = (word * ones) >> word.dtype.type(8 * (m - 1))
    else:
        groups = part.reshape(r, usable // m, m).sum(axis=2)
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
    for b, frac in block_nonempty_fractions(mask).items():
        out[f"block{b}_frac"] = frac
    out["nm_2_4_frac"] = nm_satisfied_fraction(mask, 2, 4)
    out["nm_4_8_frac"] = nm_satisfied_fraction(mask, 4, 8)
    return out
