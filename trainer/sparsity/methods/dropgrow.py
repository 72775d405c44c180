"""Drop/grow methods with a fixed per-layer budget: SET, RigL and their block variants.

Every ``update_every`` steps (until ``end_fraction`` of training) each layer drops the k = f(t) * nnz
active units of smallest magnitude (L1 norm for blocks) and grows k units outside the kept set, where
f(t) is the cosine-decayed drop fraction. Growth candidates are all units not kept, including the
ones just dropped (RigL's ArgTopK over i not in theta \\ I_drop); a dropped-then-regrown unit keeps
its value and counts as neither pruned nor grown. Newly grown weights start at zero and their
optimizer state is zeroed (RigL's choice for every method it compares, SET included), so growth
never changes the function the network computes.
"""
from __future__ import annotations

import abc

import torch

import dataclasses

from accelsim.sim.methods import MethodRule
from accelsim.trainer.sparsity.base import SparsityMethod, register
from accelsim.trainer.sparsity.masks import drop_smallest, grow_largest

_DROP_GROW_HPARAMS = ("sparsity", "distribution", "init", "seed", "update_every", "drop_fraction", "end_fraction")


class DropGrow(SparsityMethod, abc.ABC):
    HPARAMS = _DROP_GROW_HPARAMS
    SIM_RULE = MethodRule(schedule="regrow")  # SET (Mocanu et al. 2018): sparse gradients only

    @abc.abstractmethod
    def grow_scores(self, name: str) -> torch.Tensor:
        """Unit-grid scores for growth; higher grows first (SET: random, RigL: gradient magnitude)."""

    def is_update_step(self, step: int) -> bool:
        return self.schedule.is_update(step)

    def update_mask(self, step: int) -> dict[str, torch.Tensor]:
        f = self.schedule.fraction(step)
        new = {}
        for n, w in self.weights.items():
            g, active = self.grids[n], self.unit_masks(n)
            k = round(f * self._nnz[n] / g.unit_numel)
            kept = drop_smallest(g.l1(w), active, k)
            new[n] = g.expand(grow_largest(self.grow_scores(n), kept, k))
        return new

    def hyperparameters(self) -> dict:
        hp = super().hyperparameters()
        hp.update(drop_schedule="cosine", grow_init="zero",
                  update_rule="after step s when (s+1) % update_every == 0 and s+1 < end_fraction*total_steps")
        return hp


@register("set")
class SET(DropGrow):
    """Mocanu et al. 2018: drop the smallest magnitudes, regrow uniformly at random."""

    def grow_scores(self, name: str) -> torch.Tensor:
        return self.uniform_scores(self.grids[name].shape, self.weights[name].device)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "grow": "random"}


@register("rigl")
class RigL(DropGrow):
    """Evci et al. 2020: drop the smallest magnitudes, grow where the dense gradient is largest.

    The dense gradient is only needed on update steps; it is read (as per-unit magnitudes) before
    the base class masks the gradient for the optimizer.
    """

    SIM_RULE = MethodRule(dense_grad="on_update")

    def prepare(self) -> None:
        self._grad_scores: dict[str, torch.Tensor] = {}

    def needs_dense_grad(self, step: int) -> bool:
        return self.schedule.is_update(step)

    def capture_grads(self, step: int) -> None:
        if not self.schedule.is_update(step):
            return
        for n, w in self.weights.items():
            g = self.grids[n]
            # a layer that got no gradient this step offers no growth signal: all scores tie at 0
            self._grad_scores[n] = g.l2(w.grad) if w.grad is not None else w.new_zeros(g.shape)

    def grow_scores(self, name: str) -> torch.Tensor:
        return self._grad_scores.pop(name)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "grow": "dense_grad_magnitude"}


class _Block:
    """Mixin: masks are unions of whole block_size x block_size blocks (drop by L1, grow by L2 of grad)."""

    def unit_size(self) -> int:
        return self.cfg.block_size

    @classmethod
    def sim_rule(cls) -> MethodRule:
        return dataclasses.replace(super().sim_rule(), structure="block")

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "block_size": self.cfg.block_size,
                "drop_score": "block_l1_magnitude"}


@register("block-set")
class BlockSET(_Block, SET):
    pass


@register("block-rigl")
class BlockRigL(_Block, RigL):
    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "grow": "block_l2_dense_grad"}
