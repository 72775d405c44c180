"""Build and load the hand-written C kernels (``_blocksparse.c``) with the system C compiler.

Why not ``torch.utils.cpp_extension``: it compiles against the torch headers (~1 min on 2 cores,
needs ninja) for kernels that only need raw float pointers; plain C through ctypes builds in
~0.2 s. The shared object is cached per source hash, compiler flags and CPU under
``$ACCELSIM_CACHE/kernels`` (default ``~/.cache/accelsim/kernels``).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("_blocksparse.c")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=gnu11"]


def cache_dir() -> Path:
    """$ACCELSIM_CACHE/kernels (the project's cache, as in trainer.tokenizer), else the XDG cache."""
    env = os.environ.get("ACCELSIM_CACHE")
    if env:
        return Path(env).expanduser() / "kernels"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "accelsim" / "kernels"


def _cpu_id() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "flags")):
                    return line  # -march=native output depends on the CPU
    except OSError:
        pass
    return platform.processor()


@functools.lru_cache(maxsize=1)
def load():
    """(ctypes library, None) or (None, reason it could not be built)."""
    import torch  # noqa: F401  (load torch's libgomp first so the kernels share its OpenMP pool)

    if not SOURCE.is_file():
        return None, f"kernel source {SOURCE.name} is not installed with the package"
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return None, "no C compiler (gcc/cc) on PATH to build the block-sparse kernels"
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join([cc, *FLAGS, _cpu_id()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"blocksparse-{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            try:
                proc = subprocess.run([cc, *FLAGS, "-o", str(out), str(SOURCE)], capture_output=True, text=True)
            except OSError as exc:
                return None, f"cannot run the C compiler '{cc}' to build the block-sparse kernels ({exc.strerror})"
            if proc.returncode != 0:
                return None, f"building the block-sparse kernels failed: {proc.stderr.strip()[:300]}"
            os.replace(out, target)  # atomic: concurrent builders never load a half-written file
    lib = ctypes.CDLL(str(target))
    P, I64, I = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.bs_linear.argtypes = [P, I64, I64, P, P, P, I64, I, P, I64, I]
    lib.bs_linear.restype = I
    lib.bs_sddmm.argtypes = [P, I64, P, I64, I64, P, P, I64, I, P, I]
    lib.bs_sddmm.restype = I
    return lib, None


def available() -> str | None:
    return load()[1]
