"""N:M (e.g. 2:4) weights stored compressed: the kept values plus their column inside each group.

CPUs have no N:M hardware, so there are two ways to use the compressed form, and we measure both:

* gather: Y[:, o] = Σ_j v[o, j] · X[:, col[o, j]] as a batched matrix-vector product over gathered
  input columns (chunked over output rows to bound memory). Half the FLOPs of dense, but every
  gathered element is used once: it is memory-bound, far slower than dense MKL.
* decompress + dense: scatter the values into a dense weight each call, then dense MKL. Costs a
  little more than keeping a dense copy (``dense_torch``) and is the sensible CPU fallback.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from accelsim.kernels.cases import Operands, nm_of
from accelsim.kernels.registry import OUT_T, KernelPath, Prepared, register, row_major

NM_PATTERNS = ("2:4",)
DEVICES = ("cpu", "cuda")
GATHER_BUDGET = 1 << 22  # elements per gathered chunk (16 MB fp32): stays cache/memory friendly


@dataclass(frozen=True)
class NMWeight:
    values: torch.Tensor  # (d_out, d_in·N/M)
    cols: torch.Tensor  # (d_out, d_in·N/M) int64 absolute column of each value
    pos: torch.Tensor  # (d_out, d_in·N/M) int8 position inside its group of M (the metadata)
    d_in: int


def nm_compress(W: torch.Tensor, mask: torch.Tensor, n: int = 2, m: int = 4) -> NMWeight:
    d_out, d_in = W.shape
    per_group = mask.reshape(d_out, d_in // m, m).sum(-1)
    if not bool((per_group == n).all()):
        raise ValueError(f"mask is not {n}:{m}: every group of {m} must keep exactly {n}")
    cols = mask.nonzero()[:, 1].reshape(d_out, d_in * n // m)  # nonzero() is row-major: sorted cols
    return NMWeight(torch.gather(W, 1, cols).contiguous(), cols, (cols % m).to(torch.int8), d_in)


def nm_decompress(c: NMWeight) -> torch.Tensor:
    out = torch.zeros(c.values.shape[0], c.d_in, dtype=c.values.dtype, device=c.values.device)
    return out.scatter_(1, c.cols, c.values)


def _row_chunk(c: NMWeight, m: int) -> int:
    return max(1, GATHER_BUDGET // max(c.values.shape[1] * m, 1))


def nm_gather_matmul(X: torch.Tensor, c: NMWeight) -> torch.Tensor:
    """Y = X · Wᵀ from the compressed weight (returned as a transposed view of Yᵀ)."""
    Xt = X.T.contiguous()
    d_out, m = c.values.shape[0], X.shape[0]
    Yt = torch.empty(d_out, m, dtype=X.dtype, device=X.device)
    step = _row_chunk(c, m)
    for o0 in range(0, d_out, step):
        o1 = min(o0 + step, d_out)
        g = Xt[c.cols[o0:o1]]  # (rows, K', m)
        torch.bmm(c.values[o0:o1].unsqueeze(1), g, out=Yt[o0:o1].unsqueeze(1))
    return Yt.T


def nm_gather_dw(dY: torch.Tensor, X: torch.Tensor, c: NMWeight) -> torch.Tensor:
    """Compressed dW: dW[o, j] = dY[:, o] · X[:, col[o, j]] (only the kept weights)."""
    Xt, dYt = X.T.contiguous(), dY.T.contiguous()
    d_out, m = c.values.shape[0], X.shape[0]
    out = torch.empty_like(c.values)
    step = _row_chunk(c, m)
    for o0 in range(0, d_out, step):
        o1 = min(o0 + step, d_out)
        torch.bmm(Xt[c.cols[o0:o1]], dYt[o0:o1].unsqueeze(-1), out=out[o0:o1].unsqueeze(-1))
    return out


def _compressed(o: Operands) -> NMWeight:
    n, m = nm_of(o.case.pattern)
    return nm_compress(o.W, o.mask, n, m)


def _scatter_back(c: NMWeight):
    return lambda vals: nm_decompress(NMWeight(vals, c.cols, c.pos, c.d_in))


def _gather_fwd(o: Operands) -> Prepared:
    c = _compressed(o)
    return Prepared(lambda: row_major(nm_gather_matmul(o.X, c)), layout=OUT_T)


def _gather_dw(o: Operands) -> Prepared:
    c = _compressed(o)
    return Prepared(lambda: nm_gather_dw(o.dY, o.X, c), to_dense=_scatter_back(c))


def _decompress(op: str):
    def build(o: Operands) -> Prepared:
        c = _compressed(o)
        if op == "matmul":
            return Prepared(lambda: o.X @ nm_decompress(c).T)
        if op == "matmul_dx":
            return Prepared(lambda: o.dY @ nm_decompress(c))
        return Prepared(lambda: torch.gather(o.dY.T @ o.X, 1, c.cols), to_dense=_scatter_back(c))
    return build


register(KernelPath("nm_gather", "matmul", NM_PATTERNS, _gather_fwd, devices=DEVICES, family="2:4",
                    doc="compressed values + column gather, batched GEMV"))
register(KernelPath("nm_gather", "matmul_dw", NM_PATTERNS, _gather_dw, devices=DEVICES, family="2:4",
                    doc="compressed dW: gathered dot products at the kept weights"))
for _op in ("matmul", "matmul_dx", "matmul_dw"):
    register(KernelPath("nm_decompress_dense", _op, NM_PATTERNS, _decompress(_op), devices=DEVICES, dense=True,
                        doc="scatter the compressed weight to dense, then dense torch"))
