"""Movement pruning (Sanh, Wolf & Rush 2020), the hard (top-k) variant: pruning for fine-tuning.

GMP's cubic schedule decides how many weights each layer keeps; which ones is decided by the accumulated
movement score S = -sum_t dL/dW_t * W_t instead of |W|. A weight moving away from zero during fine-tuning
scores high even if it is small: the paper's point is that in transfer learning the pretrained magnitudes
say little about what the downstream task needs. Pruned weights never return (as in GMP).
"""
from __future__ import annotations

from typing import Any

import torch

from accelsim.trainer.sparsity.base import register
from accelsim.trainer.sparsity.masks import drop_smallest
from accelsim.trainer.sparsity.methods.gmp import GMP


@register("movement")
class Movement(GMP):
    def prepare(self) -> None:
        super().prepare()
        self.scores = {n: torch.zeros_like(w, memory_format=torch.contiguous_format) for n, w in self.weights.items()}

    def capture_grads(self, step: int) -> None:
        # every step: the score integrates the whole trajectory; pruned weights get no gradient and keep
        # their (irrelevant) score
        for n, w in self.weights.items():
            if w.grad is not None:
                self.scores[n].addcmul_(w.grad, w.detach(), value=-1.0)

    def update_mask(self, step: int) -> dict[str, torch.Tensor]:
        new = {}
        for n in self.weights:
            k = self._nnz[n] - self.target_at(n, step)
            if k > 0:
                new[n] = drop_smallest(self.scores[n], self.masks[n], k)
        return new

    def extra_state(self) -> dict[str, Any]:
        return {"scores": {n: s.detach().cpu().clone() for n, s in self.scores.items()}}

    def load_extra_state(self, d: dict[str, Any]) -> None:
        for n, s in d.get("scores", {}).items():
            self.scores[n].copy_(s)

    def hyperparameters(self) -> dict:
        return {**super().hyperparameters(), "score": "movement (-sum of grad x weight)"}
