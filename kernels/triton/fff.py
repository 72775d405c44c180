"""Triton fast-feedforward (FFF, UltraSparseBERT) forward: CMM, then the gathered output sum.

Same weight layout and routing as :mod:`kernels.fff_cpu` (rows per neuron, heap order, child
2n + 1 + (logit > 0)). Two kernels, as Algorithm 1 of the paper splits the work:

* ``_cmm_kernel``: each program walks BLOCK_T tokens down every tree; at each level it gathers the
  tokens' node rows of ``w_in`` (one row per token, coalesced along H) and reduces the dot products in
  BLOCK_H slices. Node indices and logits go to a [T, K*(D+1)] scratch (also returned: the trainer's
  backward pass and load statistics use them).
* ``_fff_out_kernel``: each program owns a BLOCK_T x BLOCK_H tile of the output and accumulates
  GELU(logit) * w_out[node] over the visited nodes, so every output element is written once.

Two launches instead of one fused kernel: phase two reads what phase one wrote for other H slices,
which would need a barrier across the program's threads; the scratch is only K*(D+1) values per token.
Runs under ``TRITON_INTERPRET=1`` on the CPU for testing; GPU timings come only from a real GPU.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from accelsim.kernels.fff_cpu import _check, nodes_per_tree



@triton.jit
def _cmm_kernel(X, WIN, BIN, NODES, LOGITS, T, H, N_TREE, ldx,
                TREES: tl.constexpr, LEVELS: tl.constexpr, HAS_BIAS: tl.constexpr,
                BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    t_ok = offs_t < T
    for k in range(TREES):
        node = tl.zeros((BLOCK_T,), dtype=tl.int64)
        for level in range(LEVELS):
            g = node + k * N_TREE
            acc = tl.zeros((BLOCK_T,), dtype=tl.float32)
            for h0 in range(0, H, BLOCK_H):
                offs_h = h0 + tl.arange(0, BLOCK_H)
                m = t_ok[:, None] & (offs_h[None, :] < H)
                x = tl.load(X + offs_t[:, None] * ldx + offs_h[None, :], mask=m, other=0.0)
                w = tl.load(WIN + g[:, None] * H + offs_h[None, :], mask=m, other=0.0)
                acc += tl.sum(x.to(tl.float32) * w.to(tl.float32), axis=1)
            if HAS_BIAS:
                acc += tl.load(BIN + g, mask=t_ok, other=0.0).to(tl.float32)
            col = offs_t * (TREES * LEVELS) + k * LEVELS + level
            tl.store(NODES + col, g, mask=t_ok)
            tl.store(LOGITS + col, acc, mask=t_ok)
            node = 2 * node + 1 + (acc > 0).to(tl.int64)


@triton.jit
def _fff_out_kernel(NODES, LOGITS, WOUT, Y, T, H, ldy, PATH: tl.constexpr,
                    BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr):
    offs_t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_h = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    t_ok = offs_t < T
    m = t_ok[:, None] & (offs_h[None, :] < H)
    acc = tl.zeros((BLOCK_T, BLOCK_H), dtype=tl.float32)
    for j in range(PATH):
        g = tl.load(NODES + offs_t * PATH + j, mask=t_ok, other=0)
        lam = tl.load(LOGITS + offs_t * PATH + j, mask=t_ok, other=0.0)
        a = 0.5 * lam * (1.0 + tl.math.erf(lam * 0.7071067811865476))  # exact (erf) GELU
        w = tl.load(WOUT + g[:, None] * H + offs_h[None, :], mask=m, other=0.0)
        acc += a[:, None] * w.to(tl.float32)
    tl.store(Y + offs_t[:, None] * ldy + offs_h[None, :], acc.to(Y.dtype.element_ty), mask=m)


def fff_triton(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor | None, w_out: torch.Tensor,
               trees: int, depth: int, return_paths: bool = False, block_t: int = 32, block_h: int = 64):
    """FFF forward with hard routing; x [T, H] -> y [T, H] (and nodes, logits [T, K, D+1])."""
    _check(x, w_in, b_in, w_out, trees, depth)
    x, w_in, w_out = x.contiguous(), w_in.contiguous(), w_out.contiguous()
    T, H = x.shape
    levels = depth + 1
    nodes = torch.empty(T, trees, levels, dtype=torch.int64, device=x.device)
    logits = torch.empty(T, trees, levels, dtype=torch.float32, device=x.device)
    y = torch.empty(T, H, dtype=x.dtype, device=x.device)
    bias = b_in.contiguous() if b_in is not None else w_in  # any pointer; unused without HAS_BIAS
    _cmm_kernel[(triton.cdiv(T, block_t),)](
        x, w_in, bias, nodes, logits, T, H, nodes_per_tree(depth), x.stride(0),
        TREES=trees, LEVELS=levels, HAS_BIAS=b_in is not None, BLOCK_T=block_t, BLOCK_H=block_h)
    _fff_out_kernel[(triton.cdiv(T, block_t), triton.cdiv(H, block_h))](
        nodes, logits, w_out, y, T, H, y.stride(0), PATH=trees * levels, BLOCK_T=block_t, BLOCK_H=block_h)
    return (y, nodes, logits.to(x.dtype)) if return_paths else y
