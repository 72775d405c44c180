"""Block-sparse products (b×b blocks): torch BSR tensors and the hand-written C kernels.

``BlockLayout`` is the block structure both the C kernels here and the Triton kernels read: block
rows as ``row_ptr``/``col`` (int32, BSR order) plus the blocks laid out for the product at hand.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from accelsim.kernels.cases import Operands, block_of
from accelsim.kernels.cpu import _native
from accelsim.kernels.registry import OUT_T, KernelPath, Prepared, register, row_major

BLOCKS = ("block16", "block32")


@dataclass(frozen=True)
class BlockLayout:
    """Nonzero b×b blocks of an (R·b)×(C·b) matrix in BSR order."""

    b: int
    R: int
    C: int
    row_ptr: torch.Tensor  # (R+1,) int32
    col: torch.Tensor  # (nnzb,) int32 block column of each block
    row: torch.Tensor  # (nnzb,) int32 block row of each block
    blocks: torch.Tensor  # (nnzb, b, b) the blocks, as stored in the matrix

    @property
    def nnzb(self) -> int:
        return int(self.col.numel())

    def transposed_blocks(self) -> torch.Tensor:
        return self.blocks.transpose(1, 2).contiguous()


def block_layout(W: torch.Tensor, mask: torch.Tensor, b: int) -> BlockLayout:
    """Structure from the mask (so a block of zero-valued weights still counts as kept)."""
    R, C = W.shape[0] // b, W.shape[1] // b
    bm = mask.reshape(R, b, C, b).any(dim=3).any(dim=1)
    rr, cc = bm.nonzero(as_tuple=True)  # row-major order = BSR order
    row_ptr = torch.zeros(R + 1, dtype=torch.int32, device=W.device)
    row_ptr[1:] = torch.cumsum(bm.sum(1), 0)
    blocks = W.reshape(R, b, C, b).permute(0, 2, 1, 3)[rr, cc].contiguous()
    return BlockLayout(b, R, C, row_ptr, cc.to(torch.int32).contiguous(), rr.to(torch.int32).contiguous(), blocks)


def scatter_blocks(G: torch.Tensor, lay: BlockLayout) -> torch.Tensor:
    """Dense (R·b)×(C·b) matrix from per-block results ``G`` (nnzb, b, b)."""
    b = lay.b
    out = torch.zeros(lay.R, lay.C, b, b, dtype=G.dtype, device=G.device)
    out[lay.row.long(), lay.col.long()] = G
    return out.permute(0, 2, 1, 3).reshape(lay.R * b, lay.C * b)


# ---- hand-written C kernels -------------------------------------------------------------------

def _check_native(*tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError("the C block-sparse kernels take contiguous float32 CPU tensors")


def native_linear(X: torch.Tensor, lay: BlockLayout, BT: torch.Tensor) -> torch.Tensor:
    """Y = X · Wᵀ for W with layout ``lay``; ``BT`` = lay.transposed_blocks() (kept from build)."""
    lib = _native.load()[0]
    _check_native(X, BT)
    m = X.shape[0]
    Y = torch.empty(m, lay.R * lay.b, dtype=X.dtype)
    rc = lib.bs_linear(X.data_ptr(), m, X.stride(0), lay.row_ptr.data_ptr(), lay.col.data_ptr(),
                       BT.data_ptr(), lay.R, lay.b, Y.data_ptr(), Y.stride(0), torch.get_num_threads())
    if rc:
        raise ValueError(f"bs_linear does not support block size {lay.b}")
    return Y


def native_sddmm(dY: torch.Tensor, X: torch.Tensor, lay: BlockLayout) -> torch.Tensor:
    """Blocks (nnzb, b, b) of dYᵀ·X at the layout's nonzero blocks."""
    lib = _native.load()[0]
    _check_native(dY, X)
    G = torch.empty(lay.nnzb, lay.b, lay.b, dtype=X.dtype)
    rc = lib.bs_sddmm(dY.data_ptr(), dY.stride(0), X.data_ptr(), X.stride(0), X.shape[0],
                      lay.row.data_ptr(), lay.col.data_ptr(), lay.nnzb, lay.b, G.data_ptr(),
                      torch.get_num_threads())
    if rc:
        raise ValueError(f"bs_sddmm does not support block size {lay.b}")
    return G


def _native_build(op: str):
    def build(o: Operands) -> Prepared:
        lay = block_layout(o.W, o.mask, block_of(o.case.pattern))
        if op == "matmul":
            BT = lay.transposed_blocks()
            return Prepared(lambda: native_linear(o.X, lay, BT))
        if op == "matmul_dx":
            # dX = dY·W is the forward product of the matrix Wᵀ (the CSC side of the weight).
            lt = block_layout(o.W.T.contiguous(), o.mask.T, lay.b)
            BT = lt.transposed_blocks()
            return Prepared(lambda: native_linear(o.dY, lt, BT))
        return Prepared(lambda: native_sddmm(o.dY, o.X, lay), to_dense=lambda G: scatter_blocks(G, lay))
    return build


for _op in ("matmul", "matmul_dx", "matmul_dw"):
    register(KernelPath("blocksparse_c", _op, BLOCKS, _native_build(_op), available=_native.available,
                        family="block",
                        doc="hand-written C kernel (OpenMP, register-tiled) over the nonzero blocks"))


# ---- torch BSR tensors ------------------------------------------------------------------------

def to_bsr(dense: torch.Tensor, b: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_bsr((b, b))


def bsr_matmul(X: torch.Tensor, W_bsr: torch.Tensor) -> torch.Tensor:
    """Y = X · Wᵀ for BSR W."""
    return torch.sparse.mm(W_bsr, X.T.contiguous()).T


def _bsr_build(op: str):
    def build(o: Operands) -> Prepared:
        b = block_of(o.case.pattern)
        if op == "matmul":
            Wb = to_bsr(o.W, b)
            return Prepared(lambda: row_major(bsr_matmul(o.X, Wb)), layout=OUT_T)
        WTb = to_bsr(o.W.T.contiguous(), b)
        return Prepared(lambda: row_major(bsr_matmul(o.dY, WTb)), layout=OUT_T)
    return build


for _op in ("matmul", "matmul_dx"):
    register(KernelPath("bsr_torch", _op, BLOCKS, _bsr_build(_op), devices=("cpu", "cuda"), family="block",
                        doc="torch.sparse.mm(W_bsr, Xᵀ)ᵀ"))
