"""CPU sparse kernels: every registered path against dense torch, plus masks, formats and the picker."""
from __future__ import annotations

import math

import pytest
import torch

from accelsim.errors import UserError
from accelsim.kernels import registry
from accelsim.kernels.cases import Case, make_mask, make_operands, reference
from accelsim.kernels.cpu import _native, mkl
from accelsim.kernels.cpu.blocksparse import block_layout, native_linear, native_sddmm, scatter_blocks
from accelsim.kernels.cpu.csr import csr_matmul, csr_matmul_dx, csr_sddmm, to_csr
from accelsim.kernels.cpu.csr_c import csr_arrays, native_csr_matmul
from accelsim.kernels.cpu.nm import nm_compress, nm_decompress, nm_gather_dw, nm_gather_matmul
from accelsim.kernels.registry import KernelPath, Prepared, check_path, paths_for, pick_fastest

RTOL, ATOL = 1e-4, 1e-4  # float32, reductions over <= 96 terms of N(0,1) products

# tokens=40 is not a multiple of the C kernels' row tiles (16/8 with AVX-512, 6/3 with AVX2): the remainder
# path is exercised too
CASES = [(op, pattern, density)
         for op in ("matmul", "matmul_dx", "matmul_dw")
         for pattern, density in (("unstructured", 1.0), ("unstructured", 0.3), ("unstructured", 0.02),
                                  ("2:4", 0.5), ("block16", 0.5), ("block16", 1.0), ("block32", 0.25))]


def _case(op, pattern, density, **kw) -> Case:
    return Case(op, kw.pop("tokens", 40), kw.pop("d_in", 64), kw.pop("d_out", 96), density, pattern, **kw)


@pytest.fixture(autouse=True)
def _one_thread():
    prev = torch.get_num_threads()
    registry.set_threads(1)
    yield
    torch.set_num_threads(prev)


@pytest.mark.parametrize("op,pattern,density", CASES)
def test_every_path_matches_dense_torch(op, pattern, density):
    ops = make_operands(_case(op, pattern, density))
    ref = reference(ops)
    found = paths_for(op, pattern)
    assert found[0].name == "dense_torch"
    checked = 0
    for path in found:
        if path.available():
            continue
        prepared = path.build(ops)
        got = prepared.to_dense(prepared.run())
        torch.testing.assert_close(got, ref, rtol=RTOL, atol=ATOL, msg=lambda m: f"{path.name}: {m}")
        checked += 1
    assert checked >= 2  # dense plus at least one sparse path on this machine


def test_structured_paths_are_registered():
    names = {p.name for p in paths_for("matmul", "block32")}
    assert {"dense_torch", "csr_torch", "bsr_torch", "blocksparse_c"} <= names
    assert {"nm_gather", "nm_decompress_dense"} <= {p.name for p in paths_for("matmul", "2:4")}
    assert "sddmm_torch" in {p.name for p in paths_for("matmul_dw", "unstructured")}
    assert "blocksparse_c" not in {p.name for p in paths_for("matmul", "unstructured")}


def test_wrappers_directly():
    ops = make_operands(_case("matmul", "unstructured", 0.2))
    X, W, dY, mask = ops.X, ops.W, ops.dY, ops.mask
    torch.testing.assert_close(csr_matmul(X, to_csr(W)), X @ W.T, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(csr_matmul_dx(dY, to_csr(W.T.contiguous())), dY @ W, rtol=RTOL, atol=ATOL)
    got = csr_sddmm(dY, X, to_csr(mask.float()))
    assert got.layout == torch.sparse_csr and got.values().numel() == int(mask.sum())
    torch.testing.assert_close(got.to_dense(), (dY.T @ X) * mask, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("b", [16, 32])
def test_native_block_kernels(b):
    if _native.available():
        pytest.skip(_native.available())
    ops = make_operands(_case("matmul", f"block{b}", 0.4, tokens=37, d_in=128, d_out=64))
    lay = block_layout(ops.W, ops.mask, b)
    assert lay.nnzb == int(ops.mask.sum()) // (b * b)
    torch.testing.assert_close(native_linear(ops.X, lay, lay.transposed_blocks()), ops.X @ ops.W.T,
                               rtol=RTOL, atol=ATOL)
    lt = block_layout(ops.W.T.contiguous(), ops.mask.T, b)
    torch.testing.assert_close(native_linear(ops.dY, lt, lt.transposed_blocks()), ops.dY @ ops.W,
                               rtol=RTOL, atol=ATOL)
    G = native_sddmm(ops.dY, ops.X, lay)
    torch.testing.assert_close(scatter_blocks(G, lay), (ops.dY.T @ ops.X) * ops.mask, rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="contiguous float32"):
        native_linear(ops.X.double(), lay, lay.transposed_blocks())


def test_native_block_kernels_use_the_isa_width(isa_vector_floats):
    """64-byte vectors on an AVX2 CPU spill the 16-row tile: a median 7x slower on a Zen 3. The build must pick the
    machine's own width and a tile whose accumulators fit its register file."""
    if _native.available():
        pytest.skip(_native.available())
    lib = _native.load()[0]
    vl, mr16, mr32 = (lib.bs_config(i) for i in range(3))
    assert vl == isa_vector_floats
    registers = 32 if vl == 16 else 16
    for b, mr in ((16, mr16), (32, mr32)):
        assert mr * (b // vl) + 1 <= registers, (b, mr)  # accumulators + the broadcast


@pytest.mark.parametrize("b", [16, 32])
def test_native_block_kernels_chunks_and_groups(b):
    """Several token chunks (the last one partial) and several groups of block rows, an empty block row:
    the registry test's small shapes fit in one chunk and one group."""
    if _native.available():
        pytest.skip(_native.available())
    lib = _native.load()[0]
    chunk_bytes, group_bytes, sd_min = lib.bs_config(3), lib.bs_config(4), lib.bs_config(5)
    k, n = 2048, 256
    m = 2 * max(chunk_bytes // (4 * k), sd_min, chunk_bytes // (4 * (k + n))) + 7
    g = torch.Generator().manual_seed(b)
    bm = torch.rand(n // b, k // b, generator=g) < 0.3
    bm[1] = False
    assert int(bm.sum()) * b * b * 4 > 2 * group_bytes
    mask = bm.repeat_interleave(b, 0).repeat_interleave(b, 1)
    W = torch.randn(n, k, generator=g) * mask
    X = torch.randn(m, k, generator=g)
    lay = block_layout(W, mask, b)
    torch.testing.assert_close(native_linear(X, lay, lay.transposed_blocks()), X @ W.T, rtol=RTOL, atol=ATOL)
    dY = torch.randn(m, n, generator=g)
    torch.testing.assert_close(scatter_blocks(native_sddmm(dY, X, lay), lay), (dY.T @ X) * mask,
                               rtol=RTOL, atol=ATOL * 4)  # sums over m = 2.1 chunks of tokens


@pytest.mark.parametrize("m, k, n, density, multi", [(150, 64, 40, 0.3, False), (70, 3000, 24, 0.05, True),
                                                     (150, 1000, 50, 0.3, True), (5, 33, 7, 0.5, False)])
def test_native_csr_kernel(m, k, n, density, multi, isa_vector_floats):
    """Full token chunks, a narrower last chunk and long rows cut into k panels that each chunk sums (the
    registry test's 40 tokens fit in one partial chunk); rows without nonzeros come out as zeros."""
    if _native.csr_available():
        pytest.skip(_native.csr_available())
    g = torch.Generator().manual_seed(m + k)
    W = torch.randn(n, k, generator=g) * (torch.rand(n, k, generator=g) < density)
    W[0] = 0.0
    X = torch.randn(m, k, generator=g)
    Y = native_csr_matmul(X, csr_arrays(W))
    torch.testing.assert_close(Y, X @ W.T, rtol=RTOL, atol=ATOL)
    dY = torch.randn(m, n, generator=g)
    torch.testing.assert_close(native_csr_matmul(dY, csr_arrays(W.T)), dY @ W, rtol=RTOL, atol=ATOL)
    lib = _native.load_csr()[0]
    assert lib.csr_config() == isa_vector_floats
    # a chunk is 8 vectors wide; k is cut so that its slice of Xᵀ stays within 192 KB
    assert lib.csr_panels(k) == max(1, math.ceil(k * 8 * isa_vector_floats * 4 / (192 * 1024)))
    assert (lib.csr_panels(k) > 1) == multi
    with pytest.raises(ValueError, match="float32 CPU X with"):
        native_csr_matmul(X.double(), csr_arrays(W))
    if multi:  # panels need each row's columns in order: a row given out of order is refused, not mis-summed
        bad = csr_arrays(W)
        r = int(torch.argmax(bad.row_ptr[1:] - bad.row_ptr[:-1]))
        p0 = int(bad.row_ptr[r])
        bad.col[p0], bad.col[p0 + 1] = bad.col[p0 + 1].clone(), bad.col[p0].clone()
        with pytest.raises(ValueError, match="must ascend"):
            native_csr_matmul(X, bad)


def test_native_build_failure_is_a_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("ACCELSIM_CACHE", str(tmp_path))
    _native.load.cache_clear()
    try:
        reason = _native.available()
    finally:
        _native.load.cache_clear()
    assert reason and "C compiler" in reason


def test_nm_compress_roundtrip_and_gather():
    ops = make_operands(_case("matmul", "2:4", 0.5, d_in=32, d_out=24, tokens=9))
    c = nm_compress(ops.W, ops.mask)
    assert c.values.shape == (24, 16) and int(c.pos.max()) < 4
    assert torch.equal(nm_decompress(c), ops.W)
    torch.testing.assert_close(nm_gather_matmul(ops.X, c), ops.X @ ops.W.T, rtol=RTOL, atol=ATOL)
    dwc = nm_gather_dw(ops.dY, ops.X, c)
    torch.testing.assert_close(dwc, torch.gather(ops.dY.T @ ops.X, 1, c.cols), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match="not 2:4"):
        nm_compress(ops.W, torch.ones_like(ops.mask))


def test_masks_have_the_requested_structure():
    gen = torch.Generator().manual_seed(1)
    m = make_mask("unstructured", 0.05, 64, 128, gen)
    assert int(m.sum()) == round(0.05 * 64 * 128)
    nm = make_mask("2:4", 0.5, 16, 32, gen)
    assert bool((nm.view(16, 8, 4).sum(-1) == 2).all())
    blk = make_mask("block16", 0.25, 64, 128, gen)
    tiles = blk.view(4, 16, 8, 16).permute(0, 2, 1, 3).reshape(32, -1)
    assert bool(((tiles.all(1)) | (~tiles.any(1))).all()) and int(tiles.all(1).sum()) == 8


def test_case_validation():
    with pytest.raises(UserError, match="2:4 fixes the density"):
        Case("matmul", 8, 64, 64, 0.1, "2:4")
    with pytest.raises(UserError, match="divisible by 32"):
        Case("matmul", 8, 48, 64, 0.5, "block32")
    with pytest.raises(UserError, match="unknown op"):
        Case("conv", 8, 64, 64)
    assert Case("matmul_dw", 7, 64, 96).mkn == (96, 7, 64)  # workload convention: out, T, in
    assert Case("matmul_dx", 7, 64, 96).mkn == (7, 96, 64)


def test_pick_fastest_rejects_a_wrong_path(monkeypatch):
    wrong = KernelPath("wrong_on_purpose", "matmul", ("*",), lambda o: Prepared(lambda: o.X @ o.W.T + 1.0))
    monkeypatch.setitem(registry._PATHS, ("matmul", "wrong_on_purpose"), wrong)
    choice = pick_fastest(_case("matmul", "block16", 0.5), threads=1, repeats=1, min_sample_s=1e-4)
    assert "mismatch" in choice.rejected["wrong_on_purpose"]
    assert "wrong_on_purpose" not in choice.times
    assert choice.winner in choice.times and choice.times[choice.winner] == min(choice.times.values())
    assert {"dense_torch", "blocksparse_c"} <= set(choice.times)
    _, err = check_path(wrong, make_operands(_case("matmul", "block16", 0.5)))
    assert err and "max abs err" in err


def test_mkl_library_is_found_or_explained():
    reason = mkl.available()
    if reason:
        assert "sparse_dot_mkl unavailable" in reason
    else:
        assert mkl.find_mkl_rt() is None or "libmkl_rt" in mkl.find_mkl_rt()
