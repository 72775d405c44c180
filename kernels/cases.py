"""One benchmark case: which product, which layer shape, which sparsity pattern, and its operands.

Semantics follow ``nn.Linear`` and :mod:`accelsim.workload` so that measurements and simulator ops
describe the same products:

* ``matmul``    forward        Y  = X · Wᵀ           X: tokens×d_in,  W: d_out×d_in (masked)
* ``matmul_dx`` input grad     dX = dY · W           dY: tokens×d_out
* ``matmul_dw`` weight grad    dW = (dYᵀ · X) ⊙ mask  only the nonzeros are wanted (SDDMM)

``Case.mkn`` gives the product dimensions (m×k)·(k×n) in the workload's convention (fwd: T, in, out;
dx: T, out, in; dw: out, T, in), which is what a hardware profile's ``kernel_time`` is asked about.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from accelsim.errors import UserError
from accelsim.kernels.records import MATMUL_OPS

OPS = MATMUL_OPS  # the product kinds a record may hold (kernels.records)
PATTERNS = ("unstructured", "2:4", "block16", "block32")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}

_NM = re.compile(r"^(\d+):(\d+)$")
_BLOCK = re.compile(r"^block(\d+)$")


def nm_of(pattern: str) -> tuple[int, int] | None:
    """(N, M) for an 'N:M' pattern, else None."""
    mt = _NM.match(pattern)
    return (int(mt.group(1)), int(mt.group(2))) if mt else None


def block_of(pattern: str) -> int | None:
    """Block edge for a 'block<b>' pattern, else None."""
    mt = _BLOCK.match(pattern)
    return int(mt.group(1)) if mt else None


def pattern_supports(pattern: str, density: float) -> str | None:
    """None if ``pattern`` can realise ``density``, else the reason it cannot."""
    nm = nm_of(pattern)
    if nm is not None:
        if not abs(density - nm[0] / nm[1]) < 1e-9:
            return f"{pattern} fixes the density at {nm[0] / nm[1]:g}"
        return None
    if pattern != "unstructured" and block_of(pattern) is None:
        return f"unknown pattern '{pattern}' (expected unstructured, N:M or block<b>)"
    if not 0.0 < density <= 1.0:
        return f"density must be in (0, 1], got {density}"
    return None


#: Largest product dimension and operand a case may ask for (BERT-large's FFN is 4096; 1 GiB per operand).
MAX_DIM = 1 << 16
MAX_ELEMENTS = 1 << 28


@dataclass(frozen=True)
class Case:
    """A product to measure; shapes are those of the linear layer it belongs to."""

    op: str
    tokens: int
    d_in: int
    d_out: int
    density: float = 1.0
    pattern: str = "unstructured"
    dtype: str = "float32"
    seed: int = 0  # fixes mask and operands so every path sees the same problem

    def __post_init__(self):
        for name in ("tokens", "d_in", "d_out"):  # a negative or huge size is a user error, not an allocation
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_DIM:
                raise UserError(f"expected an integer in [1, {MAX_DIM}], got {v!r}", field=name)
        if max(self.tokens * self.d_in, self.d_in * self.d_out, self.tokens * self.d_out) > MAX_ELEMENTS:
            raise UserError(f"operands of {self.tokens}x{self.d_in}x{self.d_out} exceed {MAX_ELEMENTS} elements "
                            "(1 GiB in fp32)", field="tokens")
        if not 0.0 < self.density <= 1.0:
            raise UserError(f"expected a density in (0, 1], got {self.density}", field="density")
        if self.op not in OPS:
            raise UserError(f"unknown op '{self.op}' (expected one of {', '.join(OPS)})", field="op")
        if self.dtype not in DTYPES:
            raise UserError(f"unknown dtype '{self.dtype}' (expected {', '.join(DTYPES)})", field="dtype")
        reason = pattern_supports(self.pattern, self.density)
        if reason:
            raise UserError(reason, field="pattern")
        b = block_of(self.pattern)
        if b and (self.d_in % b or self.d_out % b):
            raise UserError(f"{self.pattern} needs d_in and d_out divisible by {b}, got "
                            f"{self.d_in}x{self.d_out}", field="pattern")
        nm = nm_of(self.pattern)
        if nm and self.d_in % nm[1]:
            raise UserError(f"{self.pattern} needs d_in divisible by {nm[1]}, got {self.d_in}", field="pattern")

    @property
    def mkn(self) -> tuple[int, int, int]:
        return {"matmul": (self.tokens, self.d_in, self.d_out),
                "matmul_dx": (self.tokens, self.d_out, self.d_in),
                "matmul_dw": (self.d_out, self.tokens, self.d_in)}[self.op]

    @property
    def flops_dense(self) -> float:
        m, k, n = self.mkn
        return 2.0 * m * k * n

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


def make_mask(pattern: str, density: float, d_out: int, d_in: int, gen: torch.Generator) -> torch.Tensor:
    """Random boolean mask (d_out × d_in) with exactly the requested share of kept weights/blocks."""
    nm = nm_of(pattern)
    if nm is not None:
        n_keep, group = nm
        scores = torch.rand(d_out, d_in // group, group, generator=gen)
        keep = scores.topk(n_keep, dim=-1).indices
        mask = torch.zeros(d_out, d_in // group, group, dtype=torch.bool)
        mask.scatter_(-1, keep, True)
        return mask.view(d_out, d_in)
    b = block_of(pattern) or 1
    rows, cols = d_out // b, d_in // b
    total = rows * cols
    nnz = min(max(round(density * total), 1), total)
    flat = torch.zeros(total, dtype=torch.bool)
    flat[torch.randperm(total, generator=gen)[:nnz]] = True
    mask = flat.view(rows, cols)
    if b > 1:
        mask = mask.repeat_interleave(b, 0).repeat_interleave(b, 1)
    return mask


@dataclass
class Operands:
    """Dense operands of a case, on one device; W is already multiplied by the mask."""

    case: Case
    X: torch.Tensor
    W: torch.Tensor
    mask: torch.Tensor
    dY: torch.Tensor
    extra: dict = field(default_factory=dict)

    @property
    def density_actual(self) -> float:
        return float(self.mask.float().mean())


def make_operands(case: Case, device: str = "cpu") -> Operands:
    gen = torch.Generator().manual_seed(case.seed)
    mask = make_mask(case.pattern, case.density, case.d_out, case.d_in, gen)
    dt = case.torch_dtype
    X = torch.randn(case.tokens, case.d_in, generator=gen).to(device=device, dtype=dt)
    W = (torch.randn(case.d_out, case.d_in, generator=gen) * mask).to(device=device, dtype=dt)
    dY = torch.randn(case.tokens, case.d_out, generator=gen).to(device=device, dtype=dt)
    return Operands(case, X, W, mask.to(device), dY)


def reference(ops: Operands) -> torch.Tensor:
    """The dense-torch result every path is checked against (computed in float32)."""
    X, W, dY = ops.X.float(), ops.W.float(), ops.dY.float()
    if ops.case.op == "matmul":
        return X @ W.T
    if ops.case.op == "matmul_dx":
        return dY @ W
    return (dY.T @ X) * ops.mask
