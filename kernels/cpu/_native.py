"""Load the hand-written C block-sparse kernels (``_blocksparse.c``), built by :mod:`kernels.native`
(system C compiler, ctypes, cached under ``$ACCELSIM_CACHE/kernels``)."""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

from kernels.native import FLAGS, build, cache_dir  # noqa: F401  (re-exported: where builds are cached)

SOURCE = Path(__file__).with_name("_blocksparse.c")


@functools.lru_cache(maxsize=1)
def load():
    """(ctypes library, None) or (None, reason it could not be built)."""
    import torch  # noqa: F401  (load torch's libgomp first so the kernels share its OpenMP pool)

    lib, reason = build(SOURCE, "blocksparse", "the block-sparse kernels")
    if lib is None:
        return None, reason
    P, I64, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.bs_linear.argtypes = [P, I64, I64, P, P, P, I64, I, P, I64, I]
    lib.bs_linear.restype = I
    lib.bs_sddmm.argtypes = [P, I64, P, I64, I64, P, P, I64, I, P, I]
    lib.bs_sddmm.restype = I
    return lib, None


def available() -> str | None:
    return load()[1]
