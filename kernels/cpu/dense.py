"""Dense baselines (torch → MKL on CPU, cuBLAS on CUDA) on the masked weight.

These are what a framework does without sparse kernels, and the reference every speedup is
measured against in the same run. The weight gradient is computed densely and then masked.
"""
from __future__ import annotations

from accelsim.kernels.cases import Operands
from accelsim.kernels.registry import KernelPath, Prepared, register

DEVICES = ("cpu", "cuda")


def dense_matmul(X, W):
    """Y = X · Wᵀ."""
    return X @ W.T


def dense_matmul_dx(dY, W):
    """dX = dY · W."""
    return dY @ W


def dense_matmul_dw(dY, X, mask):
    """dW = (dYᵀ · X) ⊙ mask."""
    return (dY.T @ X).mul_(mask)


def _fwd(o: Operands) -> Prepared:
    return Prepared(lambda: dense_matmul(o.X, o.W))


def _dx(o: Operands) -> Prepared:
    return Prepared(lambda: dense_matmul_dx(o.dY, o.W))


def _dw(o: Operands) -> Prepared:
    mask = o.mask.to(o.X.dtype)
    return Prepared(lambda: dense_matmul_dw(o.dY, o.X, mask))


for _op, _build in (("matmul", _fwd), ("matmul_dx", _dx), ("matmul_dw", _dw)):
    register(KernelPath("dense_torch", _op, ("*",), _build, devices=DEVICES, dense=True,
                        doc="dense torch matmul on the masked weight (MKL / cuBLAS)"))
