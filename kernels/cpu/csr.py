"""Unstructured sparsity through torch's CSR tensors (MKL sparse BLAS on CPU, cuSPARSE on CUDA).

Operands arrive row-major as nn.Linear gets them; any transpose a path needs is done inside the
timed runner. Sparse × dense products are formed as W·Xᵀ (sparse on the left is the fast side of
MKL's CSR mm: X·Wᵀ with a CSR right operand is ~6x slower here), so the result is Yᵀ, returned as a
transposed view of a contiguous (feature-major) tensor; ``layout`` records this.
"""
from __future__ import annotations

import warnings

import torch

from accelsim.kernels.cases import Operands
from accelsim.kernels.registry import OUT_T, KernelPath, Prepared, register, row_major

DEVICES = ("cpu", "cuda")
SPARSE = ("*",)  # any mask is a valid CSR matrix; structured patterns may still win with their own paths


def to_csr(dense: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta" on every conversion
        warnings.simplefilter("ignore", UserWarning)
        return dense.to_sparse_csr()


def csr_matmul(X: torch.Tensor, W_csr: torch.Tensor) -> torch.Tensor:
    """Y = X · Wᵀ for CSR W (d_out × d_in)."""
    return torch.sparse.mm(W_csr, X.T).T


def csr_matmul_dx(dY: torch.Tensor, WT_csr: torch.Tensor) -> torch.Tensor:
    """dX = dY · W, given Wᵀ in CSR (the transposed copy is kept alongside W, as in CSR+CSC storage)."""
    return torch.sparse.mm(WT_csr, dY.T).T


def csr_sddmm(dY: torch.Tensor, X: torch.Tensor, mask_csr: torch.Tensor) -> torch.Tensor:
    """dW = (dYᵀ · X) at the nonzeros of ``mask_csr`` only; returns a CSR tensor.

    dYᵀ is made contiguous first: sampled_addmm on the transposed view is ~1.6x slower than the
    copy plus the contiguous call on this machine.
    """
    return torch.sparse.sampled_addmm(mask_csr, dY.T.contiguous(), X, beta=0.0)


def _fwd(o: Operands) -> Prepared:
    Wc = to_csr(o.W)
    return Prepared(lambda: row_major(csr_matmul(o.X, Wc)), layout=OUT_T)


def _dx(o: Operands) -> Prepared:
    WTc = to_csr(o.W.T.contiguous())
    return Prepared(lambda: row_major(csr_matmul_dx(o.dY, WTc)), layout=OUT_T)


def _dw(o: Operands) -> Prepared:
    Mc = to_csr(o.mask.to(o.X.dtype))
    return Prepared(lambda: csr_sddmm(o.dY, o.X, Mc), to_dense=lambda out: out.to_dense())


register(KernelPath("csr_torch", "matmul", SPARSE, _fwd, devices=DEVICES, family="unstructured",
                    doc="torch.sparse.mm(W_csr, Xᵀ)ᵀ"))
register(KernelPath("csr_torch", "matmul_dx", SPARSE, _dx, devices=DEVICES, family="unstructured",
                    doc="torch.sparse.mm(Wᵀ_csr, dYᵀ)ᵀ"))
register(KernelPath("sddmm_torch", "matmul_dw", SPARSE, _dw, devices=DEVICES, family="unstructured",
                    doc="torch.sparse.sampled_addmm on the mask's CSR structure"))
