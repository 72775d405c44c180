"""Registry entries for the Triton kernels and torch's own 2:4 semi-structured GPU path."""
from __future__ import annotations

import torch

from accelsim.kernels.cases import Operands, block_of, nm_of
from accelsim.kernels.cpu.blocksparse import block_layout, scatter_blocks
from accelsim.kernels.cpu.nm import nm_compress
from accelsim.kernels.registry import KernelPath, Prepared, register
from accelsim.kernels.triton.blocksparse import bsr_linear, bsr_sddmm
from accelsim.kernels.triton.nm import nm_linear, nm_linear_dx

GPU = ("cuda",)


def _cuda_reason() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device"


def _bs_build(op: str):
    def build(o: Operands) -> Prepared:
        b = block_of(o.case.pattern)
        lay = block_layout(o.W, o.mask, b)
        if op == "matmul":
            BT = lay.transposed_blocks()
            return Prepared(lambda: bsr_linear(o.X, lay, BT))
        if op == "matmul_dx":
            lt = block_layout(o.W.T.contiguous(), o.mask.T, b)
            BT = lt.transposed_blocks()
            return Prepared(lambda: bsr_linear(o.dY, lt, BT))
        return Prepared(lambda: bsr_sddmm(o.dY, o.X, lay), to_dense=lambda G: scatter_blocks(G, lay))
    return build


def _nm_build(op: str):
    def build(o: Operands) -> Prepared:
        n, m = nm_of(o.case.pattern)
        c = nm_compress(o.W, o.mask, n, m)
        if op == "matmul":
            return Prepared(lambda: nm_linear(o.X, c, n, m))
        return Prepared(lambda: nm_linear_dx(o.dY, c, n, m))
    return build


def _semi_structured_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    if torch.cuda.get_device_capability() < (8, 0):
        return "2:4 sparse tensor cores need compute capability >= 8.0"
    return None


def _semi_structured(o: Operands) -> Prepared:
    from torch.sparse import to_sparse_semi_structured
    if o.X.dtype not in (torch.float16, torch.bfloat16):
        raise ValueError("to_sparse_semi_structured needs float16/bfloat16 operands")
    Ws = to_sparse_semi_structured(o.W)
    return Prepared(lambda: torch.nn.functional.linear(o.X, Ws))


for _op in ("matmul", "matmul_dx", "matmul_dw"):
    register(KernelPath("blocksparse_triton", _op, ("block16", "block32"), _bs_build(_op), devices=GPU, family="block",
                        available=_cuda_reason, doc="Triton kernel over the nonzero blocks"))
for _op in ("matmul", "matmul_dx"):
    register(KernelPath("nm_triton", _op, ("2:4",), _nm_build(_op), devices=GPU, available=_cuda_reason,
                        family="2:4",
                        doc="Triton GEMM decompressing the N:M weight tile in registers"))
register(KernelPath("semi_structured_torch", "matmul", ("2:4",), _semi_structured, devices=GPU, family="2:4",
                    available=_semi_structured_reason,
                    doc="torch.sparse.to_sparse_semi_structured (cuSPARSELt/CUTLASS sparse tensor cores)"))
