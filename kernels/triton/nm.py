"""Triton N:M (2:4) products from the compressed weight (values + in-group positions).

Each program rebuilds its dense weight tile in registers from the compressed values and metadata
and feeds ``tl.dot``. This halves the weight's memory traffic but not the arithmetic: Triton does
not expose the sparse tensor-core instruction (mma.sp), so on GPUs the 2:4 compute speedup is
cuSPARSELt/CUTLASS's (``torch.sparse.to_sparse_semi_structured``, registered next to this path).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from accelsim.kernels.cpu.nm import NMWeight


@triton.jit
def _nm_tile(V, POS, rows, cols, KC, GROUP: tl.constexpr, KEEP: tl.constexpr, row_ok):
    """Dense (len(rows), len(cols)) tile of the N:M weight; ``cols`` are absolute input columns."""
    g = cols // GROUP
    p = cols % GROUP
    base = rows[:, None] * KC + g[None, :] * KEEP
    ok = row_ok[:, None] & (cols[None, :] < KC // KEEP * GROUP)
    w = tl.zeros((rows.shape[0], cols.shape[0]), dtype=tl.float32)
    for s in tl.static_range(KEEP):
        v = tl.load(V + base + s, mask=ok, other=0.0)
        q = tl.load(POS + base + s, mask=ok, other=-1)
        w += tl.where(q == p[None, :], v.to(tl.float32), 0.0)
    return w


@triton.jit
def _nm_linear_kernel(X, V, POS, Y, M, N, K, KC, ldx, ldy, BM: tl.constexpr, BN: tl.constexpr,
                      BK: tl.constexpr, GROUP: tl.constexpr, KEEP: tl.constexpr, PRECISION: tl.constexpr):
    offs_m = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_n = tl.program_id(1) * BN + tl.arange(0, BN)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        offs_k = k0 + tl.arange(0, BK)
        x = tl.load(X + offs_m[:, None] * ldx + offs_k[None, :],
                    mask=(offs_m[:, None] < M) & (offs_k[None, :] < K), other=0.0)
        w = _nm_tile(V, POS, offs_n, offs_k, KC, GROUP, KEEP, offs_n < N)
        acc += tl.dot(x, tl.trans(w.to(x.dtype)), input_precision=PRECISION)
    tl.store(Y + offs_m[:, None] * ldy + offs_n[None, :], acc.to(Y.dtype.element_ty),
             mask=(offs_m[:, None] < M) & (offs_n[None, :] < N))


@triton.jit
def _nm_dx_kernel(DY, V, POS, DX, M, N, K, KC, ldy, ldx, BM: tl.constexpr, BN: tl.constexpr,
                  BK: tl.constexpr, GROUP: tl.constexpr, KEEP: tl.constexpr, PRECISION: tl.constexpr):
    offs_m = tl.program_id(0) * BM + tl.arange(0, BM)
    offs_k = tl.program_id(1) * BK + tl.arange(0, BK)
    acc = tl.zeros((BM, BK), dtype=tl.float32)
    for n0 in range(0, N, BN):
        offs_n = n0 + tl.arange(0, BN)
        dy = tl.load(DY + offs_m[:, None] * ldy + offs_n[None, :],
                     mask=(offs_m[:, None] < M) & (offs_n[None, :] < N), other=0.0)
        w = _nm_tile(V, POS, offs_n, offs_k, KC, GROUP, KEEP, offs_n < N)
        acc += tl.dot(dy, w.to(dy.dtype), input_precision=PRECISION)
    tl.store(DX + offs_m[:, None] * ldx + offs_k[None, :], acc.to(DX.dtype.element_ty),
             mask=(offs_m[:, None] < M) & (offs_k[None, :] < K))


def _meta(c: NMWeight, n: int, m: int) -> dict:
    if c.values.shape[1] * m != c.d_in * n:
        raise ValueError(f"compressed weight is not {n}:{m}")
    return dict(GROUP=m, KEEP=n, PRECISION="ieee" if c.values.dtype == torch.float32 else "tf32")


def nm_linear(X: torch.Tensor, c: NMWeight, n: int = 2, m: int = 4, tiles=(64, 64, 64)) -> torch.Tensor:
    """Y = X · Wᵀ for an N:M-compressed W (d_out × d_in)."""
    meta = _meta(c, n, m)
    BM, BN, BK = tiles
    M, K = X.shape
    N = c.values.shape[0]
    Y = torch.empty(M, N, dtype=X.dtype, device=X.device)
    grid = (triton.cdiv(M, BM), triton.cdiv(N, BN))
    _nm_linear_kernel[grid](X.contiguous(), c.values, c.pos, Y, M, N, K, c.values.shape[1], X.stride(0),
                            Y.stride(0), BM=BM, BN=BN, BK=BK, **meta)
    return Y


def nm_linear_dx(dY: torch.Tensor, c: NMWeight, n: int = 2, m: int = 4, tiles=(64, 64, 64)) -> torch.Tensor:
    """dX = dY · W for an N:M-compressed W."""
    meta = _meta(c, n, m)
    BM, BN, BK = tiles
    M, N = dY.shape
    K = c.d_in
    dX = torch.empty(M, K, dtype=dY.dtype, device=dY.device)
    grid = (triton.cdiv(M, BM), triton.cdiv(K, BK))
    _nm_dx_kernel[grid](dY.contiguous(), c.values, c.pos, dX, M, N, K, c.values.shape[1], dY.stride(0),
                        dX.stride(0), BM=BM, BN=BN, BK=BK, **meta)
    return dX
