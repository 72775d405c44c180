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


def _define(source: Path, name: str, isa_flags: frozenset = frozenset()) -> int:
    """The integer value a ``#define`` of the C source gives ``name`` when built for a CPU with ``isa_flags``:
    the first definition in the branch of ``#if defined(__AVX512F__) / #elif defined(__AVX__) / #else``
    that the CPU takes, or the unconditional one. The kernels' tiling constants live in the C sources only;
    the cost model reads them from there rather than from a second copy."""
    branch, taken, value = None, False, None
    for line in source.read_text().splitlines():
        s = line.strip()
        if s.startswith("#if defined(__AVX512F__)"):
            branch = "avx512f" in isa_flags
            taken = branch
        elif s.startswith("#elif defined(__AVX__)"):
            branch = not taken and "avx" in isa_flags
            taken = taken or branch
        elif s.startswith("#else") and branch is not None:
            branch = not taken
        elif s.startswith("#endif"):
            branch = None
        elif s.startswith(f"#define {name} ") and branch is not False:
            value = _int_expr(s[len(f"#define {name} "):].split("/*")[0].strip())
            break
    if value is None:
        raise ValueError(f"{source.name} defines no integer {name}")
    return value


def _int_expr(expr: str) -> int:
    """An integer expression of digits, parentheses, '*', '+' and '<<' (the defines above), without eval."""
    import ast
    import operator

    ops = {ast.Mult: operator.mul, ast.Add: operator.add, ast.LShift: operator.lshift}

    def ev(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"not an integer expression: {expr}")
    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        raise ValueError(f"not an integer expression: {expr}") from None
    return ev(tree.body)


def structure_terms(isa_flags) -> dict[str, dict[str, int]]:
    """Cost-model terms that follow from how the C kernels cut their work (accelsim.hardware.params:
    row_multiple, chunk_bytes, group_bytes), for a CPU with ``isa_flags``, by kernel: ``csr_c`` computes tokens in
    chunks of NA_MAX accumulators x VL lanes (a shorter last chunk costs a full one and more: the fitted
    tail_penalty) and reads X^T in panels of CHUNK_BYTES; ``blocksparse_c`` runs token chunks of CHUNK_BYTES of X
    rows and passes the weights in groups of GROUP_BYTES of block rows, re-reading X per group."""
    flags = frozenset(isa_flags)
    return {"csr_c": {"row_multiple": _define(CSR_SOURCE, "NA_MAX", flags) * _define(CSR_SOURCE, "VL", flags),
                      "chunk_bytes": _define(CSR_SOURCE, "CHUNK_BYTES", flags)},
            "blocksparse_c": {"chunk_bytes": _define(SOURCE, "CHUNK_BYTES", flags),
                              "group_bytes": _define(SOURCE, "GROUP_BYTES", flags)}}
