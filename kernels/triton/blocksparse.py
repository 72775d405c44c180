"""Triton block-sparse products over a :class:`kernels.cpu.blocksparse.BlockLayout`.

* ``bsr_linear``: Y = X · Wᵀ, one program per (token tile, block row of W); it walks that block row's
  nonzero blocks and accumulates ``tl.dot`` of the matching X tile with the transposed block.
  Called with the layout of Wᵀ it computes dX = dY · W (the CSC side of the weight).
* ``bsr_sddmm``: the weight gradient dYᵀ · X at the nonzero blocks only, one program per block,
  reducing over tokens in chunks of ``BK``.

Accumulation is float32; float32 inputs use IEEE products (no TF32) so results match torch.
Run on the CPU for testing with ``TRITON_INTERPRET=1`` (set before triton is imported).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from accelsim.kernels.cpu.blocksparse import BlockLayout


@triton.jit
def _bsr_linear_kernel(X, ROW_PTR, COL, BT, Y, M, ldx, ldy,
                       B: tl.constexpr, BM: tl.constexpr, PRECISION: tl.constexpr):
    pid_m = tl.program_id(0)
    r = tl.program_id(1)
    offs_m = pid_m * BM + tl.arange(0, BM)
    offs_b = tl.arange(0, B)
    in_rows = offs_m[:, None] < M
    start = tl.load(ROW_PTR + r)
    end = tl.load(ROW_PTR + r + 1)
    acc = tl.zeros((BM, B), dtype=tl.float32)
    for j in range(start, end):
        c = tl.load(COL + j)
        x = tl.load(X + offs_m[:, None] * ldx + c * B + offs_b[None, :], mask=in_rows, other=0.0)
        w = tl.load(BT + j * B * B + offs_b[:, None] * B + offs_b[None, :])
        acc += tl.dot(x, w, input_precision=PRECISION)
    tl.store(Y + offs_m[:, None] * ldy + r * B + offs_b[None, :], acc.to(Y.dtype.element_ty), mask=in_rows)


@triton.jit
def _bsr_sddmm_kernel(A, X, BROW, BCOL, G, M, lda, ldx,
                      B: tl.constexpr, BK: tl.constexpr, PRECISION: tl.constexpr):
    j = tl.program_id(0)
    r = tl.load(BROW + j)
    c = tl.load(BCOL + j)
    offs_b = tl.arange(0, B)
    offs_k = tl.arange(0, BK)
    acc = tl.zeros((B, B), dtype=tl.float32)
    for k0 in range(0, M, BK):
        rows = k0 + offs_k
        a_t = tl.load(A + rows[None, :] * lda + r * B + offs_b[:, None], mask=rows[None, :] < M, other=0.0)
        x = tl.load(X + rows[:, None] * ldx + c * B + offs_b[None, :], mask=rows[:, None] < M, other=0.0)
        acc += tl.dot(a_t, x, input_precision=PRECISION)
    tl.store(G + j * B * B + offs_b[:, None] * B + offs_b[None, :], acc.to(G.dtype.element_ty))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"  # ignored for half inputs


def _check(*tensors: torch.Tensor) -> None:
    dev = tensors[0].device
    for t in tensors:
        if not t.is_contiguous() or t.device != dev:
            raise ValueError("triton block-sparse kernels take contiguous tensors on one device")


def bsr_linear(X: torch.Tensor, lay: BlockLayout, BT: torch.Tensor, block_m: int = 64) -> torch.Tensor:
    """Y = X · Wᵀ for W with layout ``lay``; ``BT`` = ``lay.transposed_blocks()`` cast to X's dtype."""
    _check(X, BT, lay.row_ptr, lay.col)
    M = X.shape[0]
    Y = torch.empty(M, lay.R * lay.b, dtype=X.dtype, device=X.device)
    grid = (triton.cdiv(M, block_m), lay.R)
    _bsr_linear_kernel[grid](X, lay.row_ptr, lay.col, BT, Y, M, X.stride(0), Y.stride(0),
                             B=lay.b, BM=block_m, PRECISION=_precision(X.dtype))
    return Y


def bsr_sddmm(dY: torch.Tensor, X: torch.Tensor, lay: BlockLayout, block_k: int = 64) -> torch.Tensor:
    """(nnzb, b, b) blocks of dYᵀ · X at the layout's nonzero blocks."""
    _check(dY, X, lay.row, lay.col)
    G = torch.empty(lay.nnzb, lay.b, lay.b, dtype=X.dtype, device=X.device)
    if lay.nnzb:
        _bsr_sddmm_kernel[(lay.nnzb,)](dY, X, lay.row, lay.col, G, X.shape[0], dY.stride(0), X.stride(0),
                                       B=lay.b, BK=block_k, PRECISION=_precision(X.dtype))
    return G
