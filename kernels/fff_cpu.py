"""Fast feedforward (FFF, UltraSparseBERT) forward on the CPU: conditional matrix multiplication (CMM).

An FFF layer of K trees of depth D holds N = 2^(D+1) - 1 neurons per tree (leaf size 1, heap order:
the children of node n are 2n+1 and 2n+2). Weights are stored one row per neuron: ``w_in`` [K*N, H]
(input weights), ``b_in`` [K*N] (input bias, as in the paper's training code), ``w_out`` [K*N, H]
(output weights, no bias). Tree k owns rows k*N .. k*N+N-1. With hard routing a token visits one node
per level of every tree, child = 2n + 1 + (logit > 0), and the output is the sum over visited nodes of
GELU(logit) * w_out[node] (Belcak & Wattenhofer, "UltraSparseBERT", Algorithm 1).

Formulations, all returning the same output (registry ``IMPLS``):

* ``walk``: the per-token level-by-level walk in C (``_fff.c``), OpenMP over tiles of 16 tokens whose
  dot products are interleaved (one token's walk is a dependent chain). Why C and not a
  BLAS-1 call per node (the paper's MKL "level 1" kernel): a 768-long sdot/saxpy is call-overhead
  bound; a prototype calling MKL's cblas_sdot/cblas_saxpy per node ran ~1.6x slower than the
  compiler-vectorised loops here at the paper's size, and the MKL wheel ships no headers and its own
  OpenMP runtime. Built by :mod:`kernels.native` like the block-sparse kernels (plain C through ctypes,
  cached by source hash).
* ``gather``: batched over tokens with torch primitives, level by level: ``index_select`` gathers each
  token's node rows, a batched row-wise dot (``torch.linalg.vecdot``) gives the logits, and
  ``embedding_bag(per_sample_weights=GELU(logits), mode="sum")`` does the fused gather-scale-sum of
  the output rows (the batched-saxpy of the paper's level-2 kernel) in one call. Tokens are processed
  in chunks so the gathered rows stay in cache. Works on any device and dtype.
* ``naive``: a Python loop per token and level (torch.dot / add): the readable reference, small
  shapes only.

:func:`fff_masked_dense` is the paper's own check (and its training code's formulation): compute every
neuron densely, zero every neuron not on the token's path, multiply densely. :func:`ff_dense` is the
dense feedforward baseline of equal width.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from accelsim.kernels.native import build as build_native

SOURCE = Path(__file__).with_name("_fff.c")
#: tokens per chunk of the gather formulation: 1024 x 768 fp32 rows = 3 MiB, about an L2+L3 share;
#: chunks of 512-2048 measured within noise of each other at H = 768 on the dev machine.
GATHER_CHUNK = 1024
#: deeper trees than this would need more than 2^41 rows; the C kernel refuses them too.
MAX_DEPTH = 40


def nodes_per_tree(depth: int) -> int:
    return (1 << (depth + 1)) - 1


def _check(x: torch.Tensor, w_in: torch.Tensor, b_in: torch.Tensor | None, w_out: torch.Tensor,
           trees: int, depth: int) -> None:
    if not (trees >= 1 and 0 <= depth <= MAX_DEPTH):
        raise ValueError(f"expected trees >= 1 and 0 <= depth <= {MAX_DEPTH}, got {trees}x{depth}")
    rows = trees * nodes_per_tree(depth)
    if x.dim() != 2 or w_in.shape != (rows, x.shape[1]) or w_out.shape != w_in.shape:
        raise ValueError(f"expected x [T, H] and w_in, w_out [{rows}, H]; got {tuple(x.shape)}, "
                         f"{tuple(w_in.shape)}, {tuple(w_out.shape)}")
    if b_in is not None and b_in.shape != (rows,):
        raise ValueError(f"expected b_in [{rows}], got {tuple(b_in.shape)}")


# ---------------------------------------------------------------- native walk (C, OpenMP)

@functools.lru_cache(maxsize=1)
def _native():
    """(ctypes library, None) or (None, why it could not be built). torch is imported (module top)
    before the library loads, so the kernel shares torch's libgomp OpenMP runtime."""
    lib, reason = build_native(SOURCE, "fff", "the FFF walk kernel", libs=("-lm",))
    if lib is None:
        return None, reason
    P, I64 = ctypes.c_void_p, ctypes.c_int64
    lib.fff_walk.argtypes = [P, I64, I64, P, P, P, I64, I64, P, P, P, ctypes.c_int]
    lib.fff_walk.restype = ctypes.c_int
    return lib, None


def native_unavailable() -> str | None:
    """None when the C walk kernel can run here, else the reason."""
    return _native()[1]


def _walk_usable(x: torch.Tensor, *ws: torch.Tensor | None) -> bool:
    return all(t is None or (t.device.type == "cpu" and t.dtype == torch.float32) for t in (x, *ws)) \
        and native_unavailable() is None


def _ptr(t: torch.Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


def _output(x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """The result tensor: ``out`` when given (a reused buffer spares the page faults of a fresh
    T x H allocation, which at T = 16384, H = 768 cost about as much as the walk itself)."""
    if out is None:
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    if out.shape != x.shape or out.dtype != x.dtype or out.device != x.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {x.dtype} tensor of shape {tuple(x.shape)} on {x.device}")
    return out


def fff_walk(x, w_in, b_in, w_out, trees: int, depth: int, return_paths: bool = False, out=None):
    """Per-token walk in C. float32 CPU tensors only."""
    _check(x, w_in, b_in, w_out, trees, depth)
    lib, reason = _native()
    if lib is None:
        raise RuntimeError(reason)
    if not _walk_usable(x, w_in, b_in, w_out):
        raise ValueError("the C walk kernel needs float32 CPU tensors")
    x, w_in, w_out = x.contiguous(), w_in.contiguous(), w_out.contiguous()
    b_in = b_in.contiguous() if b_in is not None else None
    T, H = x.shape
    y = _output(x, out)
    nodes = torch.empty(T, trees, depth + 1, dtype=torch.int64) if return_paths else None
    logits = torch.empty(T, trees, depth + 1, dtype=x.dtype) if return_paths else None
    rc = lib.fff_walk(_ptr(x), T, H, _ptr(w_in), _ptr(b_in), _ptr(w_out), trees, depth, _ptr(y), _ptr(nodes),
                      _ptr(logits), torch.get_num_threads())
    if rc != 0:
        raise ValueError(f"fff_walk rejected the shapes (code {rc})")
    return (y, nodes, logits) if return_paths else y


# ---------------------------------------------------------------- batched gather (torch primitives)

def cmm(x, w_in, b_in, trees: int, depth: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Conditional matmul of Algorithm 1 for a chunk of tokens: (nodes, logits), each [T, K, D+1];
    ``nodes`` are global row indices into w_in."""
    T, H = x.shape
    n_tree = nodes_per_tree(depth)
    base = torch.arange(trees, device=x.device) * n_tree  # first row of each tree
    node = torch.zeros(T, trees, dtype=torch.int64, device=x.device)  # node within its tree
    nodes = torch.empty(T, trees, depth + 1, dtype=torch.int64, device=x.device)
    logits = torch.empty(T, trees, depth + 1, dtype=x.dtype, device=x.device)
    for level in range(depth + 1):
        g = node + base
        rows = w_in.index_select(0, g.reshape(-1)).view(T, trees, H)
        lam = torch.linalg.vecdot(rows, x.unsqueeze(1))
        if b_in is not None:
            lam = lam + b_in.index_select(0, g.reshape(-1)).view(T, trees)
        nodes[:, :, level] = g
        logits[:, :, level] = lam
        node = 2 * node + 1 + (lam > 0)
    return nodes, logits


def fff_gather(x, w_in, b_in, w_out, trees: int, depth: int, return_paths: bool = False,
               chunk: int = GATHER_CHUNK, out=None):
    """Batched gather formulation with torch primitives, ``chunk`` tokens at a time."""
    _check(x, w_in, b_in, w_out, trees, depth)
    T, H = x.shape
    y = _output(x, out)
    all_nodes, all_logits = [], []
    for s in range(0, T, chunk):
        xc = x[s:s + chunk]
        nodes, logits = cmm(xc, w_in, b_in, trees, depth)
        flat = nodes.view(xc.shape[0], -1)
        y[s:s + chunk] = F.embedding_bag(flat, w_out, per_sample_weights=F.gelu(logits.view_as(flat)), mode="sum")
        if return_paths:
            all_nodes.append(nodes)
            all_logits.append(logits)
    if not return_paths:
        return y
    if not all_nodes:  # no tokens
        empty = torch.empty(0, trees, depth + 1, device=x.device)
        return y, empty.long(), empty.to(x.dtype)
    return y, torch.cat(all_nodes), torch.cat(all_logits)


# ---------------------------------------------------------------- naive reference

def fff_naive(x, w_in, b_in, w_out, trees: int, depth: int, return_paths: bool = False):
    """One token, one tree, one level at a time: the definition, for small shapes."""
    _check(x, w_in, b_in, w_out, trees, depth)
    T, H = x.shape
    n_tree = nodes_per_tree(depth)
    y = torch.zeros(T, H, dtype=x.dtype, device=x.device)
    nodes = torch.empty(T, trees, depth + 1, dtype=torch.int64)
    logits = torch.empty(T, trees, depth + 1, dtype=x.dtype)
    for t in range(T):
        for k in range(trees):
            n = 0
            for level in range(depth + 1):
                g = k * n_tree + n
                lam = torch.dot(x[t], w_in[g]) + (b_in[g] if b_in is not None else 0.0)
                y[t] += F.gelu(lam) * w_out[g]
                nodes[t, k, level], logits[t, k, level] = g, lam
                n = 2 * n + 1 + int(lam > 0)
    return (y, nodes, logits) if return_paths else y


# ---------------------------------------------------------------- dispatch and references

IMPLS: dict[str, Callable] = {"walk": fff_walk, "gather": fff_gather, "naive": fff_naive}


def best_impl(x: torch.Tensor, *weights) -> str:
    """The fastest formulation that can run on these tensors."""
    return "walk" if _walk_usable(x, *weights) else "gather"


def fff_forward(x, w_in, b_in, w_out, trees: int, depth: int, impl: str = "auto", return_paths: bool = False,
                out: torch.Tensor | None = None):
    """FFF forward with hard routing. ``x`` [T, H] -> y [T, H] (and nodes, logits [T, K, D+1]);
    ``out`` (walk and gather only): write y there instead of a new tensor."""
    name = best_impl(x, w_in, b_in, w_out) if impl == "auto" else impl
    if name not in IMPLS:
        raise ValueError(f"unknown FFF implementation {impl!r}; expected auto or one of {sorted(IMPLS)}")
    kw = {"out": out} if out is not None else {}
    return IMPLS[name](x, w_in, b_in, w_out, trees, depth, return_paths=return_paths, **kw)


def route_from_logits(logits: torch.Tensor, trees: int, depth: int) -> torch.Tensor:
    """Hard routing given every neuron's logit [T, K*N]: the visited global rows [T, K, D+1]."""
    T = logits.shape[0]
    n_tree = nodes_per_tree(depth)
    base = torch.arange(trees, device=logits.device) * n_tree
    node = torch.zeros(T, trees, dtype=torch.int64, device=logits.device)
    out = torch.empty(T, trees, depth + 1, dtype=torch.int64, device=logits.device)
    for level in range(depth + 1):
        g = node + base
        out[:, :, level] = g
        node = 2 * node + 1 + (logits.gather(1, g) > 0)
    return out


def fff_masked_dense(x, w_in, b_in, w_out, trees: int, depth: int, return_paths: bool = False):
    """Every neuron computed densely, then every neuron not on the token's path zeroed (the paper's
    verification, and its training code's formulation). Differentiable; gradients flow through the
    GELU of visited neurons only, the routing itself has none."""
    _check(x, w_in, b_in, w_out, trees, depth)
    logits = F.linear(x, w_in, b_in)
    with torch.no_grad():
        nodes = route_from_logits(logits, trees, depth)
        mask = torch.zeros_like(logits).scatter_(1, nodes.view(x.shape[0], -1), 1.0)
    y = (F.gelu(logits) * mask) @ w_out
    return (y, nodes, logits.gather(1, nodes.view(x.shape[0], -1)).view_as(nodes)) if return_paths else y


def ff_dense(x, w1, b1, w2):
    """Dense feedforward of the same width and weight layout: GELU(x w1^T + b1) w2."""
    return F.gelu(F.linear(x, w1, b1)) @ w2
