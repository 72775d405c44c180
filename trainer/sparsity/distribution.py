"""How an overall sparsity is spread over layers, and the integer per-layer targets that follow.

Layer densities are computed once, from the weight shapes (:func:`accelsim.bert.layer_densities`, shared
with synthetic traces), and turned into integer counts of active units (elements, or whole blocks for
block methods) that every mask update then keeps exactly.
"""
from __future__ import annotations

import math

from accelsim.bert import DISTRIBUTIONS, Shapes, erk, layer_densities, uniform

# the per-layer densities (uniform, ERK) are BERT-independent facts shared with synthetic traces: accelsim.bert
__all__ = ["DISTRIBUTIONS", "Shapes", "allocate", "erk", "layer_densities", "uniform"]


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
