"""Configuration of a sparsity method (one dataclass shared by every method; each reads its own fields)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from accelsim.errors import expect
from accelsim.trainer.sparsity.distribution import DISTRIBUTIONS

#: Initial-mask rules for static masks and the first masks of dynamic methods.
INITS = ("random", "magnitude")

_SOURCE = "sparsity config"


@dataclass
class SparsityConfig:
    # Registry name (see available_methods()); "dense" is the baseline every method is compared with.
    method: str = "dense"
    # Target fraction of zeros over all sparse layers together (per layer it follows `distribution`).
    sparsity: float = 0.0
    # How the overall sparsity is spread over layers: ERK (Evci et al. 2020) keeps small layers denser,
    # which the RigL paper found better than uniform at equal parameter count.
    distribution: str = "erk"
    # Delta T: steps between mask updates (RigL uses 100 on ImageNet; fewer updates means each one
    # carries more gradient information).
    update_every: int = 100
    # Fraction of active weights dropped (and regrown) at the first update; it decays with a cosine so
    # that late updates only fine-tune the topology (RigL's drop schedule).
    drop_fraction: float = 0.3
    # Masks freeze after this fraction of training so the final topology gets trained to convergence.
    end_fraction: float = 0.75
    # Initial masks: "random" (the usual sparse-from-scratch start) or "magnitude" (top-|W| at init).
    init: str = "random"
    # N:M structure (N kept out of every M consecutive inputs); 2:4 is what sparse tensor cores run.
    n: int = 2
    m: int = 4
    # Side of the square blocks of the block-* methods; 16 matches common block-sparse kernel tiles.
    block_size: int = 16
    # SR-STE decay on the currently pruned dense weights (Zhou et al. 2021 use 2e-4); pulls weights
    # that keep losing out towards zero so the N:M mask stops flipping.
    srste_lambda: float = 2e-4
    # SR-STE recomputes the N:M mask every step; a larger value recomputes it every k steps, which
    # keeps trace files small at some loss of fidelity to the paper.
    nm_update_every: int = 1
    # Sparse momentum: EMA coefficient of the dense gradient (Dettmers & Zettlemoyer use the SGD
    # momentum 0.9; we keep our own EMA since the optimizer only ever sees masked gradients).
    momentum: float = 0.9
    # GMP: pruning starts after this fraction of training; magnitudes of freshly initialised weights
    # carry no information, so the dense model trains briefly first (our choice; Zhu & Gupta's t0).
    gmp_start_fraction: float = 0.1
    # GMP: the cubic schedule reaches the final sparsity here; the rest of training fine-tunes the
    # final mask (same default as end_fraction so GMP and the drop/grow methods freeze together).
    gmp_end_fraction: float = 0.75
    # Private RNG seed for random masks and SET regrowth, kept apart from the trainer's RNG so that
    # changing the method does not perturb data order or dropout, and resume is exact.
    seed: int = 0

    def validate(self) -> None:
        """Raise UserError naming the first bad field."""
        def need(cond: bool, field: str, what: str) -> None:
            expect(cond, f"expected {what}, got {getattr(self, field)!r}", source=_SOURCE, field=field)

        need(_num(self.sparsity) and 0.0 <= self.sparsity < 1.0, "sparsity", "a number in [0, 1)")
        need(self.distribution in DISTRIBUTIONS, "distribution", f"one of {sorted(DISTRIBUTIONS)}")
        need(_int(self.update_every) and self.update_every >= 1, "update_every", "an integer >= 1")
        need(_num(self.drop_fraction) and 0.0 <= self.drop_fraction <= 1.0, "drop_fraction", "a number in [0, 1]")
        need(_num(self.end_fraction) and 0.0 <= self.end_fraction <= 1.0, "end_fraction", "a number in [0, 1]")
        need(self.init in INITS, "init", f"one of {list(INITS)}")
        need(_int(self.m) and self.m >= 1, "m", "an integer >= 1")
        need(_int(self.n) and 1 <= self.n <= self.m, "n", f"an integer in [1, m={self.m}]")
        need(_int(self.block_size) and self.block_size >= 1, "block_size", "an integer >= 1")
        need(_num(self.srste_lambda) and self.srste_lambda >= 0.0, "srste_lambda", "a number >= 0")
        need(_int(self.nm_update_every) and self.nm_update_every >= 1, "nm_update_every", "an integer >= 1")
        need(_num(self.momentum) and 0.0 <= self.momentum < 1.0, "momentum", "a number in [0, 1)")
        need(_num(self.gmp_start_fraction) and 0.0 <= self.gmp_start_fraction < 1.0,
             "gmp_start_fraction", "a number in [0, 1)")
        need(_num(self.gmp_end_fraction) and self.gmp_start_fraction < self.gmp_end_fraction <= 1.0,
             "gmp_end_fraction", f"a number in ({self.gmp_start_fraction}, 1]")
        need(_int(self.seed), "seed", "an integer")


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)
