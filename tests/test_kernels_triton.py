"""Triton kernels checked against dense torch on the CPU with the Triton interpreter (tiny shapes)."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # must precede the first `import triton` in this process

import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton", reason="triton is not installed (optional extra accelsim[triton])")

from accelsim.kernels.cases import Case, make_operands  # noqa: E402
from accelsim.kernels.cpu.blocksparse import block_layout, scatter_blocks  # noqa: E402
from accelsim.kernels.cpu.nm import nm_compress  # noqa: E402
from accelsim.kernels.registry import paths_for  # noqa: E402
from accelsim.kernels.triton.blocksparse import bsr_linear, bsr_sddmm  # noqa: E402
from accelsim.kernels.triton.nm import nm_linear, nm_linear_dx  # noqa: E402

RTOL, ATOL = 1e-4, 1e-4  # float32 with IEEE tl.dot: only the summation order differs from torch


def _ops(pattern, density, tokens=64, d_in=64, d_out=64):
    return make_operands(Case("matmul", tokens, d_in, d_out, density, pattern, seed=3))


@pytest.mark.parametrize("b,tokens", [(16, 64), (32, 40)])
def test_block_sparse_forward_dx_dw(b, tokens):
    o = _ops(f"block{b}", 0.5, tokens=tokens)
    lay = block_layout(o.W, o.mask, b)
    Y = bsr_linear(o.X, lay, lay.transposed_blocks(), block_m=16)
    torch.testing.assert_close(Y, o.X @ o.W.T, rtol=RTOL, atol=ATOL)
    lt = block_layout(o.W.T.contiguous(), o.mask.T, b)
    dX = bsr_linear(o.dY, lt, lt.transposed_blocks(), block_m=16)
    torch.testing.assert_close(dX, o.dY @ o.W, rtol=RTOL, atol=ATOL)
    G = bsr_sddmm(o.dY, o.X, lay, block_k=16)  # tokens=40: a partial reduction chunk is masked
    torch.testing.assert_close(scatter_blocks(G, lay), (o.dY.T @ o.X) * o.mask, rtol=RTOL, atol=ATOL)


def test_block_sparse_empty_rows():
    o = _ops("block16", 0.25)  # 4 of 16 blocks: some block rows of W have no block at all
    lay = block_layout(o.W, o.mask, 16)
    assert (lay.row_ptr.diff() == 0).any()
    Y = bsr_linear(o.X, lay, lay.transposed_blocks(), block_m=32)
    torch.testing.assert_close(Y, o.X @ o.W.T, rtol=RTOL, atol=ATOL)


def test_nm_forward_and_dx():
    o = _ops("2:4", 0.5, tokens=40, d_in=64, d_out=48)  # ragged tiles in every dimension
    c = nm_compress(o.W, o.mask)
    torch.testing.assert_close(nm_linear(o.X, c, tiles=(16, 32, 32)), o.X @ o.W.T, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(nm_linear_dx(o.dY, c, tiles=(16, 32, 32)), o.dY @ o.W, rtol=RTOL, atol=ATOL)


def test_triton_paths_registered_for_cuda_only():
    cuda = {p.name for p in paths_for("matmul", "block16", "cuda")}
    assert "blocksparse_triton" in cuda and "dense_torch" in cuda
    assert "blocksparse_triton" not in {p.name for p in paths_for("matmul", "block16", "cpu")}
    nm = {p.name: p for p in paths_for("matmul", "2:4", "cuda")}
    assert {"nm_triton", "semi_structured_torch"} <= set(nm)
    if not torch.cuda.is_available():
        assert nm["nm_triton"].available() == "no CUDA device"
