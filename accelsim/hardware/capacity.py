"""Whether a model's training state fits in on-chip SRAM, and multi-device all-reduce time."""
from __future__ import annotations

from accelsim.hardware.profile import HardwareProfile, load_profile
from accelsim.hardware.schema import DTYPE_BYTES
from accelsim.trace import Manifest
from accelsim.workload import StepKind, dense_params, step_ops

#: Training state per stored parameter with AdamW and fp32 master weights: weight, grad, 2 moments.
STATE_BYTES_PER_PARAM = 16
#: Index stored with every nonzero of a sparse layer (CSR column index / popsparse metadata).
INDEX_BYTES_PER_NNZ = 4


def training_state_bytes(manifest: Manifest, densities: dict[str, float] | None = None,
                         dtype: str | None = None) -> float:
    """Bytes of weights + optimizer state + activations kept for backward in one training step."""
    densities = densities or {}
    b = DTYPE_BYTES.get(dtype or manifest.dtype, 4)
    state = dense_params(manifest) * STATE_BYTES_PER_PARAM
    for info in manifest.layers:
        numel = info.shape[0] * info.shape[1]
        if info.sparse:
            nnz = numel * densities.get(info.name, info.target_density)
            state += nnz * (STATE_BYTES_PER_PARAM + INDEX_BYTES_PER_NNZ)
        else:
            state += numel * STATE_BYTES_PER_PARAM
    activations = 0.0
    for op in step_ops(manifest, densities, StepKind()):
        if op.phase != "fwd":
            continue
        if op.kind in ("linear", "attn_matmul"):
            activations += op.batch * op.m * op.n * b  # each forward output is kept for backward
        elif op.kind in ("elementwise", "embedding"):
            activations += op.elements * b
    return state + activations


def fits_on_chip(profile: HardwareProfile | str, manifest: Manifest, densities: dict[str, float] | None = None) -> bool:
    """True if the profile has an 'sram' level that holds the whole training state (pass as ``resident``)."""
    profile = load_profile(profile)
    sram = profile.level("sram")
    if sram is None:
        return False
    return training_state_bytes(manifest, densities, profile.dtype) <= sram.capacity_bytes


def allreduce_time(profile: HardwareProfile | str, nbytes: float, devices: int) -> float:
    """Ring all-reduce of ``nbytes`` over ``devices`` devices: 2(p-1)/p of the data per link, 2(p-1) hops."""
    profile = load_profile(profile)
    if devices <= 1 or nbytes <= 0:
        return 0.0
    link = profile.link
    if link is None:
        raise ValueError(f"profile {profile.name} has no 'link' section for multi-device runs")
    p = devices
    return 2.0 * (p - 1) / p * nbytes / link.bandwidth_Bps + 2.0 * (p - 1) * link.latency_s
