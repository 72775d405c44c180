"""Load the hand-written C sparse kernels (``_blocksparse.c``, ``_csr.c``), built by :mod:`kernels.native`
(system C compiler, ctypes, cached under ``$ACCELSIM_CACHE/kernels``)."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

from accelsim.kernels.native import FLAGS, build, cache_dir  # noqa: F401  (re-exported: where builds are cached)

SOURCE = Path(__file__).with_name("_blocksparse.c")
CSR_SOURCE = Path(__file__).with_name("_csr.c")
P, I64, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int


def _load(source: Path, stem: str, what: str, signatures: dict[str, list]):
    """(ctypes library with ``signatures`` (name -> argtypes, all returning int) set, None) or (None, reason)."""
    import torch  # noqa: F401  (load torch's libgomp first so the kernels share its OpenMP pool)

    lib, reason = build(source, stem, what)
    if lib is None:
        return None, reason
    for name, argtypes in signatures.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, I
    return lib, None


@functools.lru_cache(maxsize=1)
def load():
    """The block-sparse kernels: (library, None) or (None, reason it could not be built)."""
    return _load(SOURCE, "blocksparse", "the block-sparse kernels",
                 {"bs_linear": [P, I64, I64, P, P, P, I64, I, P, I64, I],
                  "bs_sddmm": [P, I64, P, I64, I64, P, P, I64, I, P, I], "bs_config": [I]})


def available() -> str | None:
    return load()[1]


@functools.lru_cache(maxsize=1)
def load_csr():
    """The cache-blocked CSR kernel: (library, None) or (None, reason)."""
    return _load(CSR_SOURCE, "csr", "the CSR kernel",
                 {"csr_spmm_t": [P, I64, I64, I64, P, P, P, I64, P, I64, I], "csr_config": [], "csr_panels": [I64]})


def csr_available() -> str | None:
    return load_csr()[1]
