"""N:M structured sparsity trained with SR-STE (Zhou et al. 2021).

Mechanism: the method owns a dense copy W of every weight; the parameter itself holds W * M, so every
forward pass (training or evaluation) sees weights that are exactly zero where masked. Around the
optimizer step the two swap:

* ``before_optimizer_step``: the parameter's gradient g was taken at W * M; it is used straight through
  for all of W, plus the SR-STE decay lambda * (1 - M) * W on the pruned weights. The dense W is then
  written into the parameter so the optimizer updates W (all weights keep training; their optimizer
  state is never reset, unlike the drop/grow methods).
* ``after_optimizer_step``: W is read back from the parameter, M is recomputed from |W| (top N of each
  M consecutive inputs) and W * M is written into the parameter for the next forward.

All of this runs in preallocated buffers. SR-STE recomputes M every step; ``nm_update_every`` can
space the recomputations out (each recompute is reported as a mask update).
"""
from __future__ import annotations

import torch

from accelsim.errors import expect
from accelsim.sim.methods import MethodRule
from accelsim.workload import StepKind
from accelsim.trainer.sparsity.base import MaskChange, SparsityMethod, register
from accelsim.kernels.cpu.nm import NMSelector


@register("nm")
class NMSparsity(SparsityMethod):
    HPARAMS = ("n", "m", "srste_lambda", "nm_update_every")
    # straight-through: every weight gets its gradient every step; masks recomputed all through training
    SIM_RULE = MethodRule(dense_grad="always", structure="nm", schedule="recompute")

    def planned_densities(self) -> dict[str, float]:
        cfg = self.cfg
        implied = 1.0 - cfg.n / cfg.m
        expect(cfg.sparsity == 0.0 or abs(cfg.sparsity - implied) < 1e-9,
               f"N:M {cfg.n}:{cfg.m} fixes the sparsity at {implied:g}; set sparsity to {implied:g} (or 0), "
               f"got {cfg.sparsity!r}", source="sparsity config", field="sparsity")
        for name, w in self.weights.items():
            expect(w.shape[1] % cfg.m == 0, f"m={cfg.m} does not divide the input dimension {w.shape[1]} "
                   f"of layer {name!r}", source="sparsity config", field="m")
        return {n: cfg.n / cfg.m for n in self.weights}

    def prepare(self) -> None:
        n, m = self.cfg.n, self.cfg.m
        self.dense = {k: w.detach().clone(memory_format=torch.contiguous_format) for k, w in self.weights.items()}
        self._param_is_dense = False
        self._select = {k: NMSelector(w, n, m) for k, w in self.weights.items()}
        self._both = {k: torch.empty(w.shape, dtype=torch.bool, device=w.device) for k, w in self.weights.items()}
        # per-layer kept counts gathered in one tensor so a mask update costs one host sync, not one per layer
        device = next(iter(self.weights.values())).device  # N:M layers are expected on one device
        self._kept = torch.zeros(len(self.weights), dtype=torch.long, device=device)

    def initial_masks(self) -> dict[str, torch.Tensor]:
        return {k: self._select[k](d).clone() for k, d in self.dense.items()}

    def is_update_step(self, step: int) -> bool:
        return (step + 1) % self.cfg.nm_update_every == 0

    def step_kind(self, step: int) -> StepKind:
        # straight-through: every weight, pruned or not, gets its gradient every step
        return StepKind(dense_grad=True, mask_update=self.is_update_step(step), sparse_compute=True,
                        mask_select=self.sim_rule().mask_select)

    @torch.no_grad()
    def before_optimizer_step(self, step: int) -> None:
        lam = self.cfg.srste_lambda
        for n, w in self.weights.items():
            if w.grad is not None and lam > 0:
                w.grad.addcmul_(self.dense[n], self._pruned[n], value=lam)
            w.copy_(self.dense[n])
        self._param_is_dense = True

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> MaskChange | None:
        update = self.is_update_step(step)
        # read W back only if before_optimizer_step put it there (a skipped step leaves W * M in place)
        from_param, self._param_is_dense = self._param_is_dense, False
        for i, (n, w) in enumerate(self.weights.items()):
            dense, mask = self.dense[n], self.masks[n]
            if from_param:
                dense.copy_(w)
            if update:
                new = self._select[n](dense)
                torch.sum(torch.logical_and(mask, new, out=self._both[n]), dim=(0, 1), out=self._kept[i])
                mask.copy_(new)
                self._keep[n].copy_(new)
                torch.sub(1, self._keep[n], out=self._pruned[n])
            torch.mul(dense, self._keep[n], out=w)
        if not update:
            return None
        # every group keeps exactly n, so as many weights leave the mask as join it
        moved = {n: self._nnz[n] - kept for n, kept in zip(self.weights, self._kept.tolist())}
        return MaskChange(pruned=moved, grown=dict(moved))

    def build_hot_path(self) -> None:
        super().build_hot_path()
        self._pruned = {n: 1 - k for n, k in self._keep.items()}  # 1 - M in the weight dtype, for SR-STE

    @torch.no_grad()
    def apply_masks(self) -> None:
        for n, w in self.weights.items():
            torch.mul(self.dense[n], self._keep[n], out=w)
        for n, k in self._keep.items():  # after build or load_state_dict: refresh 1 - M
            torch.sub(1, k, out=self._pruned[n])

    def extra_state(self) -> dict:
        return {"dense": {n: d.detach().cpu().clone() for n, d in self.dense.items()}}

    def load_extra_state(self, d: dict) -> None:
        for n, t in d["dense"].items():
            self.dense[n].copy_(t)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "sparsity": 1.0 - self.cfg.n / self.cfg.m, "axis": "input",
                "ste": "sr-ste", "forward_weights": "dense copy * mask written into the parameter"}
