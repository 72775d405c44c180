"""Dynamic-sparsity methods for the trainer: masks, schedules and layer distributions.

>>> method = build_method(SparsityConfig(method="rigl", sparsity=0.9), [("fc", nn.Linear(64, 64))], 1000)

See :mod:`trainer.sparsity.base` for the per-step call order.
"""
from accelsim.trainer.sparsity.base import MaskChange, SparsityMethod, available_methods, build_method, register
from accelsim.trainer.sparsity.config import SparsityConfig
from accelsim.trainer.sparsity.distribution import DISTRIBUTIONS, allocate, erk, layer_densities, uniform
from accelsim.trainer.sparsity.schedules import CubicSchedule, DropGrowSchedule, cosine_drop_fraction

import accelsim.trainer.sparsity.methods  # noqa: E402,F401  (registers every method)

__all__ = [
    "CubicSchedule", "DISTRIBUTIONS", "DropGrowSchedule", "MaskChange", "SparsityConfig", "SparsityMethod",
    "allocate", "available_methods", "build_method", "cosine_drop_fraction", "erk", "layer_densities",
    "register", "uniform",
]
