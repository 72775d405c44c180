"""FFF (UltraSparseBERT) forward kernels: CPU walk / gather / naive and Triton (interpreter, in a
subprocess) against the dense computation with every neuron off the token's path zeroed."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from accelsim.kernels import fff_cpu
from accelsim.trainer.fff import FFFLayer, FFFSpec

# float32: the kernels sum the H products in a different order than torch's GEMM
RTOL, ATOL = 1e-5, 1e-5
SHAPES = [  # tokens, hidden, trees, depth, bias
    (37, 16, 1, 3, True),
    (50, 24, 3, 2, False),
    (20, 8, 4, 0, True),  # depth 0: K single-node trees = a dense FF of width K
    (9, 40, 2, 5, True),
]


def _operands(T, H, K, D, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = K * fff_cpu.nodes_per_tree(D)
    x = torch.randn(T, H, generator=g)
    w_in = torch.randn(W, H, generator=g) / H ** 0.5
    b_in = torch.randn(W, generator=g) * 0.1 if bias else None
    w_out = torch.randn(W, H, generator=g)
    logits = F.linear(x, w_in, b_in)
    # a logit within float noise of 0 could route differently under another summation order
    assert float(logits.abs().min()) > 1e-4, "test data has a near-tie; change the seed"
    return x, w_in, b_in, w_out


def _zeroed_reference(x, w_in, b_in, w_out, K, D):
    """The paper's verification, written out independently: all neurons, then zero those not visited."""
    h = F.linear(x, w_in, b_in)
    n_tree = fff_cpu.nodes_per_tree(D)
    keep = torch.zeros_like(h)
    for t in range(x.shape[0]):
        for k in range(K):
            n = 0
            for _ in range(D + 1):
                keep[t, k * n_tree + n] = 1.0
                n = 2 * n + (2 if h[t, k * n_tree + n] > 0 else 1)
    return (F.gelu(h) * keep) @ w_out, keep


@pytest.mark.parametrize("impl", sorted(fff_cpu.IMPLS))
@pytest.mark.parametrize("T,H,K,D,bias", SHAPES)
def test_cpu_kernels_equal_zeroing_unused_neurons(impl, T, H, K, D, bias):
    if impl == "walk" and fff_cpu.native_unavailable():
        pytest.skip(fff_cpu.native_unavailable())
    x, w_in, b_in, w_out = _operands(T, H, K, D, bias)
    ref, keep = _zeroed_reference(x, w_in, b_in, w_out, K, D)
    y, nodes, logits = fff_cpu.fff_forward(x, w_in, b_in, w_out, K, D, impl=impl, return_paths=True)
    torch.testing.assert_close(y, ref, rtol=RTOL, atol=ATOL)
    visited = torch.zeros_like(keep).scatter_(1, nodes.view(T, -1), 1.0)
    assert torch.equal(visited, keep)
    assert int(keep.sum(1).min()) == int(keep.sum(1).max()) == K * (D + 1)  # 0.3% of 4095 at 1x11
    torch.testing.assert_close(logits, F.linear(x, w_in, b_in).gather(1, nodes.view(T, -1)).view_as(logits),
                               rtol=RTOL, atol=ATOL)


def test_walk_kernel_uses_the_isa_width(isa_vector_floats):
    """The walk's TILE accumulators are vectors of the CPU's own width (16-float vectors spill on AVX2)."""
    import ctypes

    if fff_cpu.native_unavailable():
        pytest.skip(fff_cpu.native_unavailable())
    lib = fff_cpu._native()[0]
    lib.fff_config.argtypes, lib.fff_config.restype = [ctypes.c_int], ctypes.c_int
    vw, tile = lib.fff_config(0), lib.fff_config(1)
    assert vw == isa_vector_floats and tile + 2 <= (32 if vw == 16 else 16)


def test_gather_chunks_and_masked_formulation_agree():
    x, w_in, b_in, w_out = _operands(45, 16, 2, 4, True, seed=1)
    ref = fff_cpu.fff_masked_dense(x, w_in, b_in, w_out, 2, 4)
    for chunk in (1, 7, 64):  # chunk boundaries inside and beyond the token count
        torch.testing.assert_close(fff_cpu.fff_gather(x, w_in, b_in, w_out, 2, 4, chunk=chunk), ref,
                                   rtol=RTOL, atol=ATOL)


def test_depth_zero_is_the_dense_ff():
    x, w_in, b_in, w_out = _operands(16, 12, 6, 0, True)
    torch.testing.assert_close(fff_cpu.fff_forward(x, w_in, b_in, w_out, 6, 0),
                               fff_cpu.ff_dense(x, w_in, b_in, w_out), rtol=RTOL, atol=ATOL)


def test_bad_shapes_are_rejected():
    x, w_in, b_in, w_out = _operands(4, 8, 1, 2, True)
    with pytest.raises(ValueError, match="w_in"):
        fff_cpu.fff_forward(x, w_in[:-1], b_in, w_out, 1, 2)
    with pytest.raises(ValueError, match="trees"):
        fff_cpu.fff_forward(x, w_in, b_in, w_out, 0, 2)
    with pytest.raises(ValueError, match="implementation"):
        fff_cpu.fff_forward(x, w_in, b_in, w_out, 1, 2, impl="nope")


@pytest.mark.parametrize("mode", ["gather", "masked"])
def test_layer_inference_equals_cmm_kernels(mode):
    """Hard-routing inference of the trained layer is exactly what the CMM kernels compute."""
    torch.manual_seed(0)
    layer = FFFLayer(24, FFFSpec(2, 4), mode=mode).eval()
    x = torch.randn(3, 11, 24)
    flat = x.reshape(-1, 24)
    args = (layer.weight_in.detach(), layer.bias_in.detach(), layer.weight_out.detach(), 2, 4)
    assert float(F.linear(flat, args[0], args[1]).abs().min()) > 1e-4
    with torch.no_grad():
        y = layer(x).reshape(-1, 24)
    for impl in ("gather", "naive") + (() if fff_cpu.native_unavailable() else ("walk",)):
        torch.testing.assert_close(y, fff_cpu.fff_forward(flat, *args, impl=impl), rtol=RTOL, atol=ATOL)


def triton_check() -> None:
    """Triton FFF forward vs the zeroed dense reference and the naive walk, under the interpreter."""
    from accelsim.kernels.triton.fff import fff_triton

    for T, H, K, D, bias in SHAPES[:3]:
        x, w_in, b_in, w_out = _operands(T, H, K, D, bias)
        ref, _ = _zeroed_reference(x, w_in, b_in, w_out, K, D)
        y, nodes, logits = fff_triton(x, w_in, b_in, w_out, K, D, return_paths=True, block_t=16, block_h=16)
        torch.testing.assert_close(y, ref, rtol=RTOL, atol=ATOL)
        _, ref_nodes, ref_logits = fff_cpu.fff_naive(x, w_in, b_in, w_out, K, D, return_paths=True)
        assert torch.equal(nodes, ref_nodes)
        torch.testing.assert_close(logits, ref_logits, rtol=RTOL, atol=ATOL)


def test_triton_forward_matches_torch_in_interpreter():
    """Run in a fresh interpreter-mode process: triton's own library functions are interpretable only if
    the process imported triton with TRITON_INTERPRET=1 first, and other test modules (anything reaching
    torch._dynamo) may already have imported it, depending on which files pytest was given and in what order."""
    pytest.importorskip("triton", reason="triton is not installed (optional extra accelsim[triton])")
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, "-P", "-c", "import runpy, sys; runpy.run_path(sys.argv[1])['triton_check']()", __file__],
                          cwd=Path(__file__).parents[1], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
