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


#: groups up to this size are ranked by pairwise comparisons (m(m-1)/2 passes); larger ones by torch.topk
RANK_GROUPS_UP_TO = 8


class NMSelector:
    """Recomputes an N:M mask (the ``n`` largest |w| of every ``m`` consecutive inputs, i.e. along a row of an
    nn.Linear weight) in preallocated buffers: SR-STE does this every step, so it must not allocate.

    Why not ``torch.topk`` over the last dimension of the grouped view: it runs a selection per group, which on
    the Zen 5 is 2.6-3.0x slower at m = 4 than ranking each element by comparisons with the other m - 1 of its
    group, and 1.2-1.5x at m = 8 (2048 x 512 and 3072 x 768 weights, benchmarks/results/zen5-f26m2/nm-select.json);
    topk is kept from m = 9 on, where the comparisons grow as m squared.
    A tie goes to the lower position, so every group keeps exactly ``n`` (topk's tie order is unspecified)."""

    def __init__(self, like: torch.Tensor, n: int, m: int):
        rows, cols = like.shape
        self.n, self.m, self.group_shape = n, m, (rows, cols // m, m)
        self.abs = torch.empty(like.shape, dtype=like.dtype, device=like.device)
        self.mask = torch.empty(like.shape, dtype=torch.bool, device=like.device)
        if m <= RANK_GROUPS_UP_TO:
            self.rank = torch.empty(self.group_shape, dtype=torch.uint8, device=like.device)
            self.beats = torch.empty(self.group_shape[:2], dtype=torch.bool, device=like.device)
        else:
            self.values = torch.empty((rows, cols // m, n), dtype=like.dtype, device=like.device)
            self.index = torch.empty((rows, cols // m, n), dtype=torch.long, device=like.device)

    def __call__(self, weight: torch.Tensor) -> torch.Tensor:
        """The N:M mask of ``weight``, in a buffer that the next call overwrites."""
        torch.abs(weight, out=self.abs)
        a, mask = self.abs.view(self.group_shape), self.mask.view(self.group_shape)
        if self.m > RANK_GROUPS_UP_TO:
            torch.topk(a, self.n, dim=-1, sorted=False, out=(self.values, self.index))
            mask.zero_().scatter_(-1, self.index, True)
            return self.mask
        rank = self.rank.zero_()  # how many of the group outrank each element
        for i in range(self.m):
            for j in range(i + 1, self.m):
                torch.gt(a[..., j], a[..., i], out=self.beats)  # j outranks i
                rank[..., i].add_(self.beats)
                torch.le(a[..., j], a[..., i], out=self.beats)  # otherwise i outranks j (a tie: the lower one)
                rank[..., j].add_(self.beats)
        torch.lt(rank, self.n, out=mask)
        return self.mask


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
