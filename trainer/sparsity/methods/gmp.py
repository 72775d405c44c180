"""Gradual magnitude pruning (Zhu & Gupta 2017): dense to sparse on a cubic schedule.

Starts dense. At t = t0 + k dT (k = 1..n) each layer keeps the ``target(t)`` largest-magnitude weights
among those still active, where target(t) follows s_t = s_f + (s_i - s_f) (1 - (t - t0)/(n dT))^3
with s_i = 0 and the layer's final sparsity s_f from the distribution. Pruned weights never return.
"""
from __future__ import annotations

import math

import torch

from accelsim.sim.methods import MethodRule
from accelsim.trainer.sparsity.base import SparsityMethod, register
from accelsim.trainer.sparsity.masks import drop_smallest
from accelsim.trainer.sparsity.schedules import CubicSchedule


@register("gmp")
class GMP(SparsityMethod):
    HPARAMS = ("sparsity", "distribution", "update_every", "gmp_start_fraction", "gmp_end_fraction")
    SIM_RULE = MethodRule(schedule="prune")  # starts dense, prunes, never regrows

    def prepare(self) -> None:
        self.cubic = CubicSchedule.from_config(self.cfg, self.total_steps)

    def initial_masks(self) -> dict[str, torch.Tensor]:
        return {n: torch.ones(w.shape, dtype=torch.bool, device=w.device) for n, w in self.weights.items()}

    def is_update_step(self, step: int) -> bool:
        return self.cubic.is_update(step)

    def target_at(self, name: str, step: int) -> int:
        """Active weights of ``name`` after the update at ``step`` (its final target once t >= t0 + n dT)."""
        units = self.grids[name].units
        to_prune = units - self.targets[name]
        return units - math.floor(to_prune * self.cubic.progress(step + 1) + 0.5)

    def update_mask(self, step: int) -> dict[str, torch.Tensor]:
        new = {}
        for n, w in self.weights.items():
            k = self._nnz[n] - self.target_at(n, step)
            if k > 0:
                new[n] = drop_smallest(w.abs(), self.masks[n], k)
        return new

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "schedule": "cubic", "initial_sparsity": 0.0,
                "prune_start_step": self.cubic.t0, "prune_end_step": self.cubic.t_final}
