"""The base class that owns masks and their bookkeeping; methods override a few small hooks.

Call order per training step (the trainer's side of the contract)::

    kind = method.step_kind(step)          # what this step needs (FLOP accounting)
    loss.backward()
    method.before_optimizer_step(step)     # read dense grads, then mask them
    optimizer.step()
    change = method.after_optimizer_step(step)   # re-mask weights; MaskChange on update steps

Hooks a method may override: ``prepare`` (extra state before the first masks), ``initial_masks``,
``planned_densities``, ``is_update_step``, ``needs_dense_grad``, ``capture_grads`` and, above all,
``update_mask`` (new boolean masks from the current weights/grads). The base class applies them:
weights and optimizer state leave no trace of a pruned weight, and grown weights start at zero.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from accelsim.errors import expect
from accelsim.sim.methods import MethodRule
from accelsim.workload import StepKind
from accelsim.trainer.sparsity.config import SparsityConfig
from accelsim.trainer.sparsity.distribution import allocate, layer_densities
from accelsim.trainer.sparsity.masks import Grid, topk_mask
from accelsim.trainer.sparsity.schedules import DropGrowSchedule


@dataclass
class MaskChange:
    """Per-layer counts of one mask update (weights, not blocks)."""

    pruned: dict[str, int]
    grown: dict[str, int]


_REGISTRY: dict[str, type["SparsityMethod"]] = {}


def register(name: str):
    def deco(cls: type[SparsityMethod]) -> type[SparsityMethod]:
        cls.name = name
        _REGISTRY[name] = cls
        return cls
    return deco


def available_methods() -> list[str]:
    import accelsim.trainer.sparsity.methods  # noqa: F401  (importing registers every method)
    return sorted(_REGISTRY)


def build_method(cfg: SparsityConfig, layers: list[tuple[str, nn.Module]], total_steps: int) -> "SparsityMethod":
    """Validate ``cfg``, create the method and its initial masks, and apply them to the weights."""
    known = available_methods()
    expect(cfg.method in known, f"unknown method {cfg.method!r}; known methods: {', '.join(known)}",
           source="sparsity config", field="method")
    cfg.validate()
    expect(isinstance(total_steps, int) and total_steps >= 1, f"expected total_steps >= 1, got {total_steps!r}",
           source="sparsity config", field="total_steps")
    return _REGISTRY[cfg.method](cfg, layers, total_steps)


class SparsityMethod:
    name: ClassVar[str] = ""
    #: config fields that describe this method in the trace manifest
    HPARAMS: ClassVar[tuple[str, ...]] = ("sparsity", "distribution", "init", "seed")
    #: how the simulator costs this method (when it needs the dense gradient, its mask structure and
    #: schedule); written into the manifest as method.sim_rule, so a new method needs no simulator entry
    SIM_RULE: ClassVar[MethodRule] = MethodRule()

    def __init__(self, cfg: SparsityConfig, layers: list[tuple[str, nn.Module]], total_steps: int):
        self.cfg = cfg
        self.total_steps = total_steps
        self.weights: dict[str, nn.Parameter] = {}
        for name, module in layers:
            w = getattr(module, "weight", None)
            if not isinstance(w, torch.Tensor) or w.dim() != 2:
                raise ValueError(f"sparsity layer {name!r} has no 2-D weight")
            if name in self.weights:
                raise ValueError(f"sparsity layer {name!r} listed twice")
            self.weights[name] = w
        if not self.weights:
            raise ValueError("build_method needs at least one layer")
        self.schedule = DropGrowSchedule.from_config(cfg, total_steps)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.optimizer: torch.optim.Optimizer | None = None
        self.grids = {n: Grid(tuple(w.shape), self.unit_size()) for n, w in self.weights.items()}
        for n, g in self.grids.items():
            expect(g.divides(), f"block size {g.b} does not divide layer {n!r} of shape {g.rows}x{g.cols}",
                   source="sparsity config", field="block_size")
        #: active units (elements or blocks) per layer, fixed once from the distribution
        self.targets = allocate(self.planned_densities(), {n: g.units for n, g in self.grids.items()})
        self.prepare()
        with torch.no_grad():
            self.masks: dict[str, torch.Tensor] = {n: m.clone() for n, m in self.initial_masks().items()}
        self._nnz = {n: int(m.sum()) for n, m in self.masks.items()}
        self.build_hot_path()
        self.apply_masks()

    # ----------------------------------------------------------------- hooks
    def unit_size(self) -> int:
        return 1

    def planned_densities(self) -> dict[str, float]:
        """Per-layer densities before rounding to whole units (the distribution's output)."""
        shapes = {n: tuple(w.shape) for n, w in self.weights.items()}
        return layer_densities(self.cfg.distribution, shapes, 1.0 - self.cfg.sparsity)

    def prepare(self) -> None:
        """Create method state that must exist before the first masks are applied."""

    def initial_masks(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, w in self.weights.items():
            g = self.grids[n]
            if self.cfg.init == "magnitude":
                score = g.l1(w.detach())
            else:
                score = self.uniform_scores(g.shape, w.device)
            out[n] = g.expand(topk_mask(score, self.targets[n]))
        return out

    def is_update_step(self, step: int) -> bool:
        return False

    def needs_dense_grad(self, step: int) -> bool:
        return False

    def capture_grads(self, step: int) -> None:
        """Read the dense gradients (before they are masked)."""

    def update_mask(self, step: int) -> dict[str, torch.Tensor]:
        """New boolean masks for (a subset of) the layers; only called on update steps."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, d: dict[str, Any]) -> None:
        pass

    # ----------------------------------------------------------------- trainer API
    def attach(self, optimizer: torch.optim.Optimizer) -> None:
        params = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, w in self.weights.items() if id(w) not in params]
        if missing:
            raise ValueError(f"optimizer does not hold the weights of sparse layers {missing}")
        self.optimizer = optimizer

    def step_kind(self, step: int) -> StepKind:
        return StepKind(dense_grad=self.needs_dense_grad(step), mask_update=self.is_update_step(step),
                        sparse_compute=True)

    @torch.no_grad()
    def before_optimizer_step(self, step: int) -> None:
        self.capture_grads(step)
        grads = [w.grad for w in self._wlist]
        if all(g is not None for g in grads):
            torch._foreach_mul_(grads, self._klist)
        else:
            for g, k in zip(grads, self._klist):
                if g is not None:
                    g.mul_(k)

    @torch.no_grad()
    def after_optimizer_step(self, step: int) -> MaskChange | None:
        self.apply_masks()
        if not self.is_update_step(step):
            return None
        return self.commit(self.update_mask(step))

    def target_densities(self) -> dict[str, float]:
        """The density each layer is held at (GMP: reaches at the end of pruning); for the manifest."""
        return {n: self.targets[n] * g.unit_numel / self.masks[n].numel() for n, g in self.grids.items()}

    def densities(self) -> dict[str, float]:
        return {n: self._nnz[n] / self.masks[n].numel() for n in self.masks}

    @classmethod
    def sim_rule(cls) -> MethodRule:
        return cls.SIM_RULE

    def hyperparameters(self) -> dict[str, Any]:
        hp: dict[str, Any] = {"name": self.name, "total_steps": self.total_steps}
        hp.update({f: getattr(self.cfg, f) for f in self.HPARAMS})
        hp["sim_rule"] = self.sim_rule().to_manifest()
        return hp

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.name, "masks": {n: m.detach().cpu().clone() for n, m in self.masks.items()},
                "rng": self.generator.get_state(), **self.extra_state()}

    @torch.no_grad()
    def load_state_dict(self, d: dict[str, Any]) -> None:
        expect(d.get("method") == self.name, f"checkpoint holds method {d.get('method')!r}, not {self.name!r}",
               source="checkpoint", field="sparsity.method")
        masks = d.get("masks", {})
        expect(set(masks) == set(self.masks), f"checkpoint masks are for layers {sorted(masks)}, "
               f"expected {sorted(self.masks)}", source="checkpoint", field="sparsity.masks")
        for n, m in masks.items():
            expect(tuple(m.shape) == tuple(self.masks[n].shape), f"mask of {n!r} has shape {tuple(m.shape)}, "
                   f"expected {tuple(self.masks[n].shape)}", source="checkpoint", field="sparsity.masks")
            self.masks[n].copy_(m)
            if n in self._keep:
                self._keep[n].copy_(m)
            self._nnz[n] = int(self.masks[n].sum())
        self.generator.set_state(d["rng"])
        self.load_extra_state(d)
        self.apply_masks()

    # ----------------------------------------------------------------- helpers
    def build_hot_path(self) -> None:
        """0/1 copies of the masks in each weight's dtype, multiplied in place into weights and grads.

        A multiply by a same-dtype mask vectorises; masked_fill_ or a multiply by a bool mask branches
        or casts per element and measured ~6x slower on CPU (benchmarks/bench_sparsity.py). The price
        is one weight-sized buffer per layer. Updated in place, so the lists below stay valid. (Unlike
        masked_fill_, 0 * NaN stays NaN; a NaN reaching a pruned weight means the run diverged anyway.)
        """
        self._keep = {n: m.to(self.weights[n].dtype) for n, m in self.masks.items()}
        self._wlist = [self.weights[n] for n in self.masks]
        self._klist = [self._keep[n] for n in self.masks]

    @torch.no_grad()
    def apply_masks(self) -> None:
        """Zero the pruned weights in place: the hot path, one fused multiply, no allocation."""
        torch._foreach_mul_(self._wlist, self._klist)

    def uniform_scores(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        """Random scores from the private generator (drawn on CPU so CPU and GPU runs pick alike)."""
        return torch.rand(shape, generator=self.generator).to(device)

    def unit_masks(self, name: str) -> torch.Tensor:
        return self.grids[name].units_of(self.masks[name])

    @torch.no_grad()
    def commit(self, new_masks: dict[str, torch.Tensor]) -> MaskChange:
        """Install new masks: zero pruned and grown weights and their optimizer state; count changes."""
        pruned = dict.fromkeys(self.masks, 0)
        grown = dict.fromkeys(self.masks, 0)
        for n, new in new_masks.items():
            old = self.masks[n]
            keep = old & new
            kept, nnz_new = int(keep.sum()), int(new.sum())
            pruned[n], grown[n] = self._nnz[n] - kept, nnz_new - kept
            changed = ~keep
            self.weights[n].masked_fill_(changed, 0)
            self.reset_optimizer_state(n, changed)
            old.copy_(new)
            self._keep[n].copy_(new)
            self._nnz[n] = nnz_new
        return MaskChange(pruned=pruned, grown=grown)

    def reset_optimizer_state(self, name: str, where: torch.Tensor) -> None:
        """Zero every weight-shaped optimizer buffer (Adam's moments, SGD momentum) at ``where``."""
        if self.optimizer is None:
            return
        w = self.weights[name]
        state = self.optimizer.state.get(w)
        if not state:
            return
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == w.shape:
                value.masked_fill_(where, 0)

