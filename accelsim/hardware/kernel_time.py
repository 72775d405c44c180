"""``kernel_time``: one product of a linear layer (or one FFF layer) timed by the cost model as a kernel
benchmark measures it, called again and again (``op_cost(..., warm=True)``): what calibration fits and what
`accelsim validate` compares with measured kernels. The simulator calls :func:`~accelsim.hardware.cost.op_cost`.
"""
from __future__ import annotations

from accelsim.errors import UserError
from accelsim.hardware.cost import op_cost
from accelsim.hardware.profile import HardwareProfile
from accelsim.hardware.synthetic import SYNTHETIC_KINDS, synthetic_pattern
from accelsim.workload import PRODUCT_KINDS, Op, fff_layer_ops, product_op


#: FFF kinds -> (phase, conditional): one FFF layer's two products of that phase (the forward with its GELU),
#: as the cond_matmul ops the simulator sees ("fff*") or as the dense FF of equal width ("ff*")
_FFF_KERNELS = {"fff": ("fwd", True), "fff_dx": ("bwd_input", True), "fff_dw": ("bwd_weight", True),
                "ff": ("fwd", False), "ff_dx": ("bwd_input", False), "ff_dw": ("bwd_weight", False)}


def kernel_time(profile: HardwareProfile | str, kind: str, m: int, k: int, n: int, density: float = 1.0,
                pattern: str = "unstructured", dtype: str | None = None, *, path: str | None = None,
                trees: int | None = None, depth: int | None = None, fff: dict | None = None,
                eager: bool = False, relayout: bool = False) -> float:
    """Seconds for one product of a linear layer Y = X W^T (X: m x k, W: n x k at ``density``).

    ``kind``: "matmul" (forward), "matmul_dx" (input gradient) or "matmul_dw" (weight gradient), always
    described by the forward layer's m, k, n. ``pattern``: one of SYNTHETIC_KINDS. Same code path as the
    simulator: builds the Op and a synthetic pattern row and returns ``op_cost(..., warm=True).time_s``, the
    time of the product called repeatedly, as a kernel benchmark measures it (weights that fit a cache stay
    there; the simulator costs a training step's ops cold, with weights in main memory).

    FFF kinds (docs/hardware-profiles.md, "kernel_time"): "fff", "fff_dx", "fff_dw" time one FFF layer of
    ``trees`` x ``depth`` (m = tokens, k = hidden, n = neurons = trees * (2^(depth+1) - 1)): the two
    cond_matmul products of that phase, plus the GELU of the visited neurons for "fff"; ``fff`` is an
    fff-table row (None: balanced visits). "ff", "ff_dx", "ff_dw": the dense FF of width n (GELU included
    in "ff"), the baseline. ``path`` forces the products' path (e.g. "cmm" or the dense path).
    ``eager``: dispatched from eager framework code; ``relayout``: a sparse product's dense operand arrives in
    the framework's layout (both: see :func:`op_cost`).
    """
    if kind in _FFF_KERNELS:
        return _fff_kernel_time(profile, kind, m, k, n, density, dtype, path, trees, depth, fff)
    if kind not in PRODUCT_KINDS:
        raise UserError(f"unknown kernel kind {kind!r}; expected one of {', '.join([*PRODUCT_KINDS, *_FFF_KERNELS])}")
    if pattern not in SYNTHETIC_KINDS:
        raise UserError(f"unknown pattern {pattern!r}; expected one of {', '.join(SYNTHETIC_KINDS)}")
    if not (0.0 < density <= 1.0) or min(m, k, n) < 1:
        raise UserError(f"expected 0 < density <= 1 and positive sizes, got m={m} k={k} n={n} density={density}")
    if pattern == "2:4" and density > 0.5:
        raise UserError(f"a 2:4 pattern keeps at most half of the weights, got density={density}")
    op = product_op(kind, m, k, n, density)
    pat = synthetic_pattern(n, k, density, pattern) if density < 1.0 else None
    return op_cost(profile, op, pat, dtype=dtype, path=path, warm=True, eager=eager, relayout=relayout).time_s


def _fff_kernel_time(profile, kind, m, k, n, density, dtype, path, trees, depth, fff) -> float:
    phase, conditional = _FFF_KERNELS[kind]
    if min(m, k, n) < 1 or density != 1.0:
        raise UserError(f"expected positive sizes and no density for {kind!r} (the path fraction follows from "
                        f"trees and depth), got m={m} k={k} n={n} density={density}")
    if conditional or trees is not None or depth is not None:
        ok = isinstance(trees, int) and isinstance(depth, int) and trees >= 1 and 0 <= depth <= 40
        if not ok or trees * ((1 << (depth + 1)) - 1) != n:
            raise UserError(f"{kind!r} needs trees >= 1 and 0 <= depth <= 40 with n = trees * (2^(depth+1) - 1) "
                            f"neurons, got trees={trees} depth={depth} n={n}")
    ffn = {"type": "fff", "trees": trees or n, "depth": depth or 0, "train_mode": "gather"}
    ops = [op for op in fff_layer_ops(ffn, 0, m, k, conditional) if op.phase == phase]
    total = sum(op_cost(profile, op, fff if conditional else None, dtype=dtype, path=path, warm=True).time_s
                for op in ops)
    if phase == "fwd":  # the activation between the two products: on the visited neurons only when conditional
        width = (trees * (depth + 1)) if conditional else n
        gelu = Op(name=f"kernel.{kind}.gelu", kind="elementwise", phase="fwd", role="gelu", elements=m * width)
        total += op_cost(profile, gelu, dtype=dtype).time_s
    return total
