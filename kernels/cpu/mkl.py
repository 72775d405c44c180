"""Unstructured (CSR) and block (BSR) products through ``sparse_dot_mkl`` (MKL's inspector-executor).

sparse_dot_mkl loads ``libmkl_rt`` itself; the pip ``mkl`` wheel puts it in ``<prefix>/lib``, which
the loader does not always search, so ``MKL_RT`` is pointed there when unset. Its threading layer is
set to GNU OpenMP (when unset) so that it shares torch's libgomp pool: Intel OpenMP's spinning idle
threads (KMP_BLOCKTIME=200 ms) would otherwise steal the 2 cores from whatever runs next.
"""
from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
from pathlib import Path

import numpy as np
import torch

from accelsim.kernels.cases import Operands, block_of
from accelsim.kernels.registry import OUT_T, KernelPath, Prepared, on_set_threads, register, row_major



def find_mkl_rt() -> str | None:
    """Path of libmkl_rt.so.* from the mkl wheel (or None)."""
    candidates = [Path(sys.prefix) / "lib", Path(sys.base_prefix) / "lib"]
    try:
        for f in importlib.metadata.distribution("mkl").files or ():
            if f.name.startswith("libmkl_rt.so"):
                candidates.insert(0, Path(f.locate()).parent)
    except importlib.metadata.PackageNotFoundError:
        pass
    for d in candidates:
        hits = sorted(d.glob("libmkl_rt.so*")) if d.is_dir() else []
        if hits:
            return str(hits[-1].resolve())
    return None


@functools.lru_cache(maxsize=1)
def _load():
    """(module, None) or (None, reason)."""
    if "MKL_RT" not in os.environ:
        found = find_mkl_rt()
        if found:
            os.environ["MKL_RT"] = found
    os.environ.setdefault("MKL_THREADING_LAYER", "GNU")
    try:
        import sparse_dot_mkl
        sparse_dot_mkl.mkl_get_max_threads()
    except Exception as exc:  # ImportError, OSError from ctypes, or the library's own ImportError
        return None, (f"sparse_dot_mkl unavailable ({type(exc).__name__}: {exc}); install "
                      "accelsim[mkl] or set MKL_RT to libmkl_rt.so")
    on_set_threads(sparse_dot_mkl.mkl_set_num_threads)
    sparse_dot_mkl.mkl_set_num_threads(torch.get_num_threads())
    return sparse_dot_mkl, None


def available() -> str | None:
    return _load()[1]


def _scipy(dense: torch.Tensor, block: int | None):
    import scipy.sparse as sp
    arr = dense.detach().cpu().numpy()
    return sp.bsr_matrix(arr, blocksize=(block, block)) if block else sp.csr_matrix(arr)


def mkl_matmul(X: torch.Tensor, W_sp) -> torch.Tensor:
    """Y = X · Wᵀ for a scipy CSR/BSR W; Xᵀ is made C-contiguous (MKL is ~3x slower on F-order)."""
    sdm = _load()[0]
    out = sdm.dot_product_mkl(W_sp, np.ascontiguousarray(X.numpy().T))
    return torch.from_numpy(out).T


def _builder(kind: str, block: bool):
    def build(o: Operands) -> Prepared:
        b = block_of(o.case.pattern) if block else None
        if kind == "fwd":
            W_sp = _scipy(o.W, b)
            return Prepared(lambda: row_major(mkl_matmul(o.X, W_sp)), layout=OUT_T)
        WT_sp = _scipy(o.W.T.contiguous(), b)  # dX = dY·W = (Wᵀ·dYᵀ)ᵀ
        return Prepared(lambda: row_major(mkl_matmul(o.dY, WT_sp)), layout=OUT_T)
    return build


for _op, _kind in (("matmul", "fwd"), ("matmul_dx", "dx")):
    register(KernelPath("csr_mkl", _op, ("*",), _builder(_kind, False), available=available,
                        family="unstructured",
                        doc="sparse_dot_mkl.dot_product_mkl(W_csr, Xᵀ)"))
    register(KernelPath("bsr_mkl", _op, ("block16", "block32"), _builder(_kind, True), available=available,
                        family="block",
                        doc="sparse_dot_mkl.dot_product_mkl(W_bsr, Xᵀ)"))
