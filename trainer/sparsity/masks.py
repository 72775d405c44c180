"""Mask arithmetic on flat tensors: top-k selection, block grids, N:M groups (their selection, which
calibrate-local times, is accelsim.kernels.cpu.nm.NMSelector).

Every top-k selection uses ``torch.topk`` with an exact k (not a threshold from kthvalue), so ties can never
make a layer end up with more or fewer active units than its target.
"""
from __future__ import annotations

import torch


def topk_mask(score: torch.Tensor, k: int, *, largest: bool = True) -> torch.Tensor:
    """Boolean mask shaped like ``score`` with exactly ``k`` True entries at the best scores."""
    mask = torch.zeros(score.shape, dtype=torch.bool, device=score.device)
    if k > 0:
        idx = torch.topk(score.reshape(-1), k, largest=largest, sorted=False).indices
        mask.view(-1)[idx] = True
    return mask


def drop_smallest(score: torch.Tensor, active: torch.Tensor, k: int) -> torch.Tensor:
    """``active`` minus its ``k`` lowest-scoring entries."""
    if k <= 0:
        return active.clone()
    return active & ~topk_mask(score.masked_fill(~active, float("inf")), k, largest=False)


def grow_largest(score: torch.Tensor, kept: torch.Tensor, k: int) -> torch.Tensor:
    """``kept`` plus the ``k`` best-scoring entries outside it."""
    if k <= 0:
        return kept.clone()
    return kept | topk_mask(score.masked_fill(kept, float("-inf")), k)


class Grid:
    """A weight seen as a grid of b x b units; b = 1 is the unstructured case (units are elements)."""

    def __init__(self, shape: tuple[int, int], b: int = 1):
        self.rows, self.cols = int(shape[0]), int(shape[1])
        self.b = b
        self.shape = (self.rows // b, self.cols // b)
        self.units = self.shape[0] * self.shape[1]
        self.unit_numel = b * b

    def divides(self) -> bool:
        return self.rows % self.b == 0 and self.cols % self.b == 0

    def _blocks(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(self.shape[0], self.b, self.shape[1], self.b)

    def l1(self, t: torch.Tensor) -> torch.Tensor:
        """Per-unit L1 norm (block magnitude score)."""
        return t.abs() if self.b == 1 else self._blocks(t).abs().sum(dim=(1, 3))

    def l2(self, t: torch.Tensor) -> torch.Tensor:
        """Per-unit L2 norm (block gradient score)."""
        return t.abs() if self.b == 1 else self._blocks(t).square().sum(dim=(1, 3)).sqrt()

    def units_of(self, mask: torch.Tensor) -> torch.Tensor:
        """Unit-level view of a mask made of whole units (one element per block, no copy)."""
        return mask if self.b == 1 else mask[:: self.b, :: self.b]

    def expand(self, unit_mask: torch.Tensor) -> torch.Tensor:
        if self.b == 1:
            return unit_mask
        return (unit_mask[:, None, :, None].expand(self.shape[0], self.b, self.shape[1], self.b)
                .reshape(self.rows, self.cols))

    def is_union_of_units(self, mask: torch.Tensor) -> bool:
        return bool((self.expand(self.units_of(mask)) == mask).all())


def nm_valid(mask: torch.Tensor, n: int, m: int) -> bool:
    """Every group of ``m`` consecutive inputs holds exactly ``n`` active weights."""
    rows, cols = mask.shape
    return bool((mask.reshape(rows, cols // m, m).sum(-1) == n).all())
