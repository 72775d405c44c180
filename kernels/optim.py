"""The optimizer the trainer runs and ``calibrate-local`` times: one definition, so a profile's optimizer
element time is the trainer's update.

torch's AdamW has three implementations with the same arithmetic (results agree to float rounding): a loop
over the parameters (torch's default for CPU tensors), ``foreach`` (one multi-tensor op per step of the
algorithm) and ``fused`` (one pass per parameter; on the CPU from torch 2.4). Measured on the Zen 5
(bert-small's parameters with global-norm clipping, 2 threads, benchmarks/results/zen5-f26m2/optimizer.json):
fused takes about half of the loop's time on dense weights and a third on a 90 %-sparse model's: the loop's
``torch.sqrt`` of the second moments runs 4.8x slower on exact zeros, and a pruned weight's moments are
exact zeros.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch


def fused_available(params: list[torch.nn.Parameter]) -> bool:
    """Whether this torch fuses AdamW for these parameters (floating point, one device type it supports)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # a torch without the helper predates fused CPU kernels
        return False
    devices = {p.device.type for p in params}
    return (len(devices) == 1 and devices <= set(_get_fused_kernels_supported_devices())
            and all(p.is_floating_point() for p in params))


def adamw(params: Iterable[torch.nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """torch's AdamW, fused where this torch supports it for these parameters, otherwise its default."""
    params = list(params)
    fused = True if fused_available(params) else None
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


def implementation(optimizer: torch.optim.Optimizer) -> str:
    """'fused', 'foreach' or 'loop': what the optimizer's first parameter group runs."""
    group = optimizer.param_groups[0]
    if group.get("fused"):
        return "fused"
    return "foreach" if group.get("foreach") else "loop"


def load_state(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """``optimizer.load_state_dict(state)`` keeping this optimizer's implementation: torch restores every group
    option from the saved state, ``fused`` and ``foreach`` included, so a checkpoint written by torch's default
    loop would otherwise resume on the loop (its moments and step counts are the same tensors either way)."""
    chosen = {key: optimizer.defaults.get(key) for key in ("fused", "foreach")}
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        group.update(chosen)
