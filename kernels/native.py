"""Build and load hand-written C sources with the system C compiler, through ctypes.

Why not ``torch.utils.cpp_extension``: it compiles against the torch headers (~1 min on 2 cores,
needs ninja) for kernels that only need raw float pointers; plain C through ctypes builds in
~0.2 s. A shared object is cached per source hash, compiler, flags and CPU under
``$ACCELSIM_CACHE/kernels`` (default ``~/.cache/accelsim/kernels``).

This module imports nothing of ``kernels.cpu`` (whose import registers every CPU kernel path), so
the trainer's FFF layers (``kernels.fff_cpu``) can build their kernel without loading the registry.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=gnu11")


def cache_dir() -> Path:
    """$ACCELSIM_CACHE/kernels (the project's cache, as in trainer.tokenizer), else the XDG cache."""
    env = os.environ.get("ACCELSIM_CACHE")
    if env:
        return Path(env).expanduser() / "kernels"
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "accelsim" / "kernels"


def cpu_key() -> str:
    """What -march=native output depends on: the CPU model and its ISA flags."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags"))]
        return "".join(lines[:2])
    except OSError:
        return platform.processor()


def build(source: Path, stem: str, what: str, libs: tuple[str, ...] = ()) -> tuple[ctypes.CDLL | None, str | None]:
    """(library, None), or (None, why it could not be built). ``what`` names the kernel in messages.

    torch must be imported before the first call, so that OpenMP kernels share torch's libgomp pool.
    """
    if not source.is_file():
        return None, f"kernel source {source.name} is not installed with the package"
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        return None, f"no C compiler (gcc/cc) on PATH to build {what}"
    key = hashlib.sha256(source.read_bytes() + " ".join([cc, *FLAGS, *libs, cpu_key()]).encode()).hexdigest()[:16]
    target = cache_dir() / f"{stem}-{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            try:
                proc = subprocess.run([cc, *FLAGS, "-o", str(out), str(source), *libs], capture_output=True,
                                      text=True)
            except OSError as exc:
                return None, f"cannot run the C compiler '{cc}' to build {what} ({exc.strerror})"
            if proc.returncode != 0:
                return None, f"building {what} failed: {proc.stderr.strip()[:300]}"
            os.replace(out, target)  # atomic: concurrent builders never load a half-written file
    return ctypes.CDLL(str(target)), None
