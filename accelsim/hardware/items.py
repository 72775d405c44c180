"""Parallel work items of one op, sized from the per-row nonzero distribution.

Convention (docs/hardware-profiles.md, "Work items"): an op is split into ``n`` items, each occupying one
engine of ``profile.compute.count`` for its duration. ``n`` is ``count * items_per_unit`` rounded down to a
multiple of ``count`` under MAX_ITEMS; when ``count > MAX_ITEMS`` (the wafer) ``n = MAX_ITEMS`` and one item
stands for ``units_per_item = count / n`` engines working together, so that scheduling the ``n`` items on
``count`` engines still takes ``max(items)``. Hence ``sum(items) * units_per_item / count`` is the balanced
compute time, and an op's ``compute_s`` is ``max(balanced time, longest item)``: the makespan lower bound,
which is exact when ``n <= count`` or the items are equal and otherwise within 4/3 of the greedy
(longest-first) list schedule :func:`makespan` that the simulator performs. The bound is used because it
never decreases when an item grows, so more density can never shorten an op (Graham's list-scheduling
anomalies would break that for the greedy schedule itself).
"""
from __future__ import annotations

import heapq
import math
from functools import lru_cache

import numpy as np
from scipy import stats

#: cap on items per op: keeps the simulator's event count bounded on 850k-core devices
MAX_ITEMS = 1024


def item_layout(count: int, items_per_unit: int) -> tuple[int, float]:
    """(number of items, engines per item) for a device of ``count`` units."""
    if count >= MAX_ITEMS:
        return MAX_ITEMS, count / MAX_ITEMS
    return count * max(1, min(items_per_unit, MAX_ITEMS // count)), 1.0


def compute_time(items: np.ndarray, count: int, units_per_item: float) -> float:
    """max(balanced time, longest item): the op's compute_s (see the module docstring)."""
    if len(items) == 0:
        return 0.0
    return float(max(np.sum(items) * units_per_item / count, np.max(items)))


def makespan(items: list[float] | np.ndarray, engines: int) -> float:
    """Finish time of greedy list scheduling of ``items`` (in order) on ``engines`` identical engines."""
    items = np.asarray(items, dtype=float)
    if items.size == 0:
        return 0.0
    if items.size <= engines:
        return float(items.max())
    if np.all(items == items[0]):
        return float(items[0] * math.ceil(items.size / engines))
    free = [0.0] * engines
    for t in items.tolist():
        heapq.heapreplace(free, free[0] + t)
    return max(free)


def chunk_quantiles(n: int, rows: int, length: int, density: float, pattern: dict | None, axis: str) -> np.ndarray:
    """Nonzeros in each of ``n`` equal chunks of ``rows`` rows (of ``length`` columns), at the chunk-sum
    quantiles (i + 0.5) / n, divided by the expected count (so a balanced split gives all ones).

    With a ``<axis>_model`` law (synthetic masks) the quantiles are exact binomial ones, which are
    non-decreasing in density, so more density never shortens an item. Otherwise the chunk deviation is
    the row deviation read off the 16-bin histogram, shrunk by sqrt(rows per chunk) (independent rows).
    """
    p = (np.arange(n) + 0.5) / n
    r = rows / n  # rows per chunk; below 1 the items split rows further (along the tokens)
    if density <= 0 or n == 1:
        return np.ones(n)
    law = (pattern or {}).get(f"{axis}_model")
    if pattern is None or law is not None:
        trials, scale, group, factor = law if law is not None else (length, 1, 1, 1.0)
        groups = max(1, round(r / group))  # independent row groups in one chunk
        return _law_ratio(n, groups, int(trials), min(float(density) * factor, 1.0)) / groups
    frac = _hist_quantile(p, pattern, axis, length)
    mean = float(pattern.get(f"{axis}_nnz_mean") or 0.0)
    if mean <= 0:
        return np.ones(n)
    if r >= 1:
        q = r * mean + math.sqrt(r) * (frac - mean)
        q = np.clip(q, 0.0, r * length)
    else:
        q = r * frac
    return q / (r * mean)


@lru_cache(maxsize=4096)
def _law_ratio(n: int, groups: int, trials: int, density: float) -> np.ndarray:
    """Binomial(groups * trials, density) quantiles at (i + 0.5) / n over trials * density (cached: the
    simulator asks for the same layer shapes and densities step after step)."""
    if trials * density <= 0:  # no nonzeros (or a density that underflows): nothing to spread unevenly
        out = np.ones(n)
        out.setflags(write=False)
        return out
    p = (np.arange(n) + 0.5) / n
    q = np.nan_to_num(stats.binom.ppf(p, groups * trials, density), nan=0.0)
    out = q / (trials * density)
    out.setflags(write=False)
    return out


def _hist_quantile(p: np.ndarray, pattern: dict, axis: str, length: int) -> np.ndarray:
    """Inverse CDF of the per-row nnz, uniform within histogram bins, clipped to the recorded min/max."""
    hist = np.asarray(pattern.get(f"{axis}_nnz_hist") or [], dtype=float)
    lo = float(pattern.get(f"{axis}_nnz_min") or 0.0)
    hi = float(pattern.get(f"{axis}_nnz_max") or length)
    if hist.size == 0 or hist.sum() <= 0:
        return np.full(p.shape, float(pattern.get(f"{axis}_nnz_mean") or 0.0))
    cdf = np.concatenate(([0.0], np.cumsum(hist) / hist.sum()))
    edges = np.linspace(0.0, 1.0, hist.size + 1) * length
    values = np.interp(p, cdf, edges)
    return np.clip(values, lo, hi)
