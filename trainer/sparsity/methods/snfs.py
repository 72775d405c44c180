"""Sparse momentum (Dettmers & Zettlemoyer 2019): prune by magnitude, regrow by momentum, and move
the regrowth budget between layers.

Every step the method folds the dense gradient into its own momentum m = beta m + (1 - beta) g (the
optimizer only sees masked gradients, so its moments cannot serve). On update steps each layer drops
its f(t) * nnz smallest-magnitude weights; the total K dropped is handed back to the layers in
proportion to each layer's mean |m| over its active weights, and each layer grows its share where |m|
is largest outside its kept set. Per-layer densities drift; the total nnz stays exactly the same.
"""
from __future__ import annotations

import math

import torch

from accelsim.sim.methods import MethodRule
from accelsim.trainer.sparsity.base import SparsityMethod, register
from accelsim.trainer.sparsity.masks import drop_smallest, grow_largest


def split_proportionally(total: int, weights: list[float], capacity: list[int]) -> list[int]:
    """Integers r_i <= capacity_i summing to ``total`` (<= sum of capacities), proportional to weights.

    Layers whose share exceeds their room are filled and the rest is re-split among the others;
    the final split rounds by largest remainder so the sum is exact.
    """
    out = [0] * len(weights)
    open_ = [i for i, c in enumerate(capacity) if c > 0]
    remaining = total
    while remaining > 0 and open_:
        wsum = sum(weights[i] for i in open_)
        # all remaining weights zero (e.g. momentum not yet observed): split by free room instead
        w = {i: (weights[i] if wsum > 0 else capacity[i] - out[i]) for i in open_}
        wsum = sum(w.values())
        share = {i: remaining * w[i] / wsum for i in open_}
        full = [i for i in open_ if share[i] >= capacity[i] - out[i]]
        if full:
            for i in full:
                remaining -= capacity[i] - out[i]
                out[i] = capacity[i]
            open_ = [i for i in open_ if i not in full]
            continue
        floors = {i: math.floor(share[i]) for i in open_}
        extra = remaining - sum(floors.values())
        for i in sorted(open_, key=lambda i: (floors[i] - share[i], i))[:extra]:
            floors[i] += 1
        for i in open_:
            out[i] += floors[i]
        remaining = 0
    return out


@register("snfs")
class SparseMomentum(SparsityMethod):
    HPARAMS = ("sparsity", "distribution", "init", "seed", "update_every", "drop_fraction", "end_fraction",
               "momentum")
    SIM_RULE = MethodRule(dense_grad="always")  # dense momentum from the dense gradient on every step

    def prepare(self) -> None:
        self.momentum = {n: torch.zeros_like(w, memory_format=torch.contiguous_format)
                         for n, w in self.weights.items()}
        self._mom_pairs = [(self.weights[n], self.momentum[n]) for n in self.weights]

    def is_update_step(self, step: int) -> bool:
        return self.schedule.is_update(step)

    def needs_dense_grad(self, step: int) -> bool:
        return True  # the momentum of the missing weights is what decides where to grow

    def capture_grads(self, step: int) -> None:
        beta = self.cfg.momentum
        for w, mom in self._mom_pairs:
            if w.grad is not None:
                mom.lerp_(w.grad, 1.0 - beta)  # m = beta m + (1 - beta) g, one kernel

    def layer_scores(self) -> dict[str, float]:
        """Mean momentum magnitude over each layer's active weights."""
        return {n: float((self.momentum[n].abs() * self.masks[n]).sum()) / max(self._nnz[n], 1)
                for n in self.weights}

    def update_mask(self, step: int) -> dict[str, torch.Tensor]:
        f = self.schedule.fraction(step)
        names = list(self.weights)
        kept, dropped = {}, []
        for n in names:
            k = round(f * self._nnz[n])
            kept[n] = drop_smallest(self.weights[n].abs(), self.masks[n], k)
            dropped.append(k)
        scores = self.layer_scores()
        room = [self.masks[n].numel() - (self._nnz[n] - k) for n, k in zip(names, dropped)]
        regrow = split_proportionally(sum(dropped), [scores[n] for n in names], room)
        return {n: grow_largest(self.momentum[n].abs(), kept[n], r) for n, r in zip(names, regrow)}

    def extra_state(self) -> dict:
        return {"momentum": {n: m.detach().cpu().clone() for n, m in self.momentum.items()}}

    def load_extra_state(self, d: dict) -> None:
        for n, m in d["momentum"].items():
            self.momentum[n].copy_(m)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "drop_schedule": "cosine", "grow_init": "zero",
                "redistribution": "mean_momentum_magnitude"}
