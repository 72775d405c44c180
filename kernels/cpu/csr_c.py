"""Unstructured sparsity through the hand-written, cache-blocked CSR kernel (``_csr.c``).

Same operands and result layout as the torch CSR paths (:mod:`kernels.cpu.csr`): the product is formed
as W·Xᵀ and returned as the transposed view of a contiguous Yᵀ. The kernel reads the dense operand
feature-major (Xᵀ), so the runner transposes X inside the timed call; the CSR arrays (int32 indices)
are built once, like the CSR tensor of the torch path.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from accelsim.kernels.cases import Operands
from accelsim.kernels.cpu import _native
from accelsim.kernels.cpu.csr import SPARSE, to_csr
from accelsim.kernels.registry import OUT_T, KernelPath, Prepared, register, row_major


@dataclass(frozen=True)
class CSRArrays:
    """A rows × cols matrix in CSR with int32 indices, as the C kernel reads it."""

    rows: int
    cols: int
    row_ptr: torch.Tensor
    col: torch.Tensor
    val: torch.Tensor


def csr_arrays(W: torch.Tensor) -> CSRArrays:
    c = to_csr(W.contiguous())
    return CSRArrays(W.shape[0], W.shape[1], c.crow_indices().to(torch.int32).contiguous(),
                     c.col_indices().to(torch.int32).contiguous(), c.values().contiguous())


def native_csr_matmul(X: torch.Tensor, W: CSRArrays) -> torch.Tensor:
    """Y = X · Wᵀ (X: m × W.cols), as the transposed view of the contiguous W · Xᵀ."""
    lib = _native.load_csr()[0]
    if X.dtype != torch.float32 or X.device.type != "cpu" or X.shape[1] != W.cols:
        raise ValueError(f"the C CSR kernel takes float32 CPU X with {W.cols} columns, got {X.dtype} "
                         f"{tuple(X.shape)} on {X.device}")
    XT = X.T.contiguous()
    YT = torch.empty(W.rows, X.shape[0], dtype=X.dtype)
    rc = lib.csr_spmm_t(XT.data_ptr(), W.cols, X.shape[0], XT.stride(0), W.row_ptr.data_ptr(), W.col.data_ptr(),
                        W.val.data_ptr(), W.rows, YT.data_ptr(), YT.stride(0), torch.get_num_threads())
    if rc:
        raise ValueError("csr_spmm_t rejected its arguments" + (": column indices must ascend within each row "
                                                                 "and be < W.cols" if rc == 2 else ""))
    return YT.T


def _build(op: str):
    def build(o: Operands) -> Prepared:
        if op == "matmul":
            W = csr_arrays(o.W)
            return Prepared(lambda: row_major(native_csr_matmul(o.X, W)), layout=OUT_T)
        WT = csr_arrays(o.W.T)  # dX = dY·W: the forward product of Wᵀ (CSR+CSC storage, as csr_torch)
        return Prepared(lambda: row_major(native_csr_matmul(o.dY, WT)), layout=OUT_T)
    return build


for _op in ("matmul", "matmul_dx"):
    register(KernelPath("csr_c", _op, SPARSE, _build(_op), available=_native.csr_available, family="unstructured",
                        doc="hand-written C CSR kernel (OpenMP), tokens cut into L2-sized chunks"))
