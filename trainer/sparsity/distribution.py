"""How an overall sparsity is spread over layers, and the integer per-layer targets that follow.

Layer densities are computed once, from the weight shapes, and turned into integer counts of active
units (elements, or whole blocks for block methods) that every mask update then keeps exactly.
"""
from __future__ import annotations

import math
from typing import Callable

from accelsim.errors import UserError

Shapes = dict[str, tuple[int, int]]  # layer name -> (out_features, in_features)


def uniform(shapes: Shapes, density: float) -> dict[str, float]:
    return {name: density for name in shapes}


def erk(shapes: Shapes, density: float) -> dict[str, float]:
    """Erdos-Renyi-Kernel (Evci et al. 2020): density_l = eps * (n_in + n_out) / (n_in * n_out).

    eps is solved so that the layers' nnz sum to density * total. A layer whose density would exceed 1
    is made dense and eps is re-solved for the rest, one layer at a time (the largest raw density first,
    since making it dense lowers eps and may bring the next one back under 1), as in RigL's code.
    """
    raw = {n: (r + c) / (r * c) for n, (r, c) in shapes.items()}
    numel = {n: r * c for n, (r, c) in shapes.items()}
    budget_total = density * sum(numel.values())
    dense: set[str] = set()
    eps = 0.0
    while len(dense) < len(shapes):
        rest = [n for n in shapes if n not in dense]
        budget = budget_total - sum(numel[n] for n in dense)
        eps = budget / sum(raw[n] * numel[n] for n in rest)  # raw * numel = n_in + n_out > 0
        worst = max(rest, key=lambda n: raw[n])
        if eps * raw[worst] <= 1.0:
            break
        dense.add(worst)
    return {n: 1.0 if n in dense else eps * raw[n] for n in shapes}


DISTRIBUTIONS: dict[str, Callable[[Shapes, float], dict[str, float]]] = {"uniform": uniform, "erk": erk}


def layer_densities(distribution: str, shapes: Shapes, density: float) -> dict[str, float]:
    if distribution not in DISTRIBUTIONS:
        raise UserError(f"unknown distribution {distribution!r}; expected one of {sorted(DISTRIBUTIONS)}",
                        source="sparsity config", field="distribution")
    return DISTRIBUTIONS[distribution](shapes, density)


def allocate(densities: dict[str, float], units: dict[str, int]) -> dict[str, int]:
    """Integer active-unit counts per layer: floors plus the largest remainders, so the total equals
    round(sum of density * units) and each layer is within one unit of its exact share. Every layer
    keeps at least one unit (a layer with none would cut the network) and at most all of them."""
    exact = {n: min(max(densities[n], 0.0), 1.0) * units[n] for n in units}
    counts = {n: math.floor(x) for n, x in exact.items()}
    missing = math.floor(sum(exact.values()) + 0.5) - sum(counts.values())
    by_remainder = sorted(units, key=lambda n: (counts[n] - exact[n], n))  # largest remainder first
    for n in by_remainder[:max(missing, 0)]:
        counts[n] += 1
    return {n: min(max(c, 1), units[n]) for n, c in counts.items()}
