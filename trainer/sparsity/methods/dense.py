"""Baselines: ``dense`` (no masks at all) and ``static`` (fixed sparse masks from initialisation)."""
from __future__ import annotations

import torch

from accelsim.sim.methods import MethodRule
from accelsim.workload import StepKind
from accelsim.trainer.sparsity.base import MaskChange, SparsityMethod, register


@register("dense")
class Dense(SparsityMethod):
    """All-ones masks; the per-step hooks do nothing, so the dense baseline pays nothing per step."""

    HPARAMS = ()
    SIM_RULE = MethodRule(sparse_compute=False, schedule="none")

    def planned_densities(self) -> dict[str, float]:
        return {n: 1.0 for n in self.weights}

    def initial_masks(self) -> dict[str, torch.Tensor]:
        return {n: torch.ones(w.shape, dtype=torch.bool, device=w.device) for n, w in self.weights.items()}

    def build_hot_path(self) -> None:
        self._keep, self._wlist, self._klist = {}, [], []  # nothing is ever masked: no 0/1 buffers

    def apply_masks(self) -> None:
        pass

    def step_kind(self, step: int) -> StepKind:
        return StepKind(dense_grad=False, mask_update=False, sparse_compute=False)

    def before_optimizer_step(self, step: int) -> None:
        pass

    def after_optimizer_step(self, step: int) -> MaskChange | None:
        return None


@register("static")
class Static(SparsityMethod):
    """Masks drawn once (random, or top-|W| at initialisation, per ``init``) and never updated."""

    SIM_RULE = MethodRule(schedule="none")
