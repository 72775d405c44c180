"""CPU kernel paths. Importing this package registers them (see :mod:`kernels.registry`).

The torch-based paths (dense, CSR, BSR, SDDMM, N:M gather) are device-agnostic and also register for
CUDA, where the same calls dispatch to cuBLAS/cuSPARSE.
"""
from accelsim.kernels.cpu import blocksparse, csr, csr_c, dense, mkl, nm  # noqa: F401  (registration side effects)
