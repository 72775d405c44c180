"""Build and load hand-written C sources with the system C compiler, through ctypes.

Why not ``torch.utils.cpp_extension``: it compiles against the torch headers (~1 min on 2 cores,
needs ninja) for kernels that only need raw float pointers; plain C through ctypes builds in
~0.2 s. A shared object is cached per source hash, compiler, flags and CPU under
``$ACCELSIM_CACHE/kernels`` (default ``~/.cache/accelsim/kernels``).

Loading a shared object runs its constructors, so the cache is trusted only as far as it can be: the
directory must belong to the user and be writable by no one else (else a shared ``ACCELSIM_CACHE`` would
let another user plant code), a build goes to a private temporary file renamed into place, and the
SHA-256 of the built file is recorded beside it and checked before every load (a replaced ``.so`` is
refused, not loaded).

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

from accelsim.errors import UserError

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
    target = trusted_dir(cache_dir()) / f"{stem}-{key}.so"
    if not (target.exists() and _recorded(target) is not None):  # no record: built before records, rebuild
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:  # mkdtemp: mode 0700, private
            out = Path(tmp) / target.name
            try:
                proc = subprocess.run([cc, *FLAGS, "-o", str(out), str(source), *libs], capture_output=True,
                                      text=True)
            except OSError as exc:
                return None, f"cannot run the C compiler '{cc}' to build {what} ({exc.strerror})"
            if proc.returncode != 0:
                return None, f"building {what} failed: {proc.stderr.strip()[:300]}"
            record = Path(tmp) / "record"
            record.write_text(_sha256(out))
            os.replace(record, _record_path(target))  # record first: a .so never sits there unrecorded
            os.replace(out, target)  # atomic: concurrent builders never load a half-written file
    if _sha256(target) != _recorded(target):
        raise UserError(f"cached build of {what} does not match the SHA-256 recorded when it was built; "
                        "refusing to load it (delete the file to rebuild)", source=target)
    return ctypes.CDLL(str(target)), None


def trusted_dir(path: Path) -> Path:
    """``path``, created private if missing; refused unless the user owns it and no one else can write it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise UserError("kernel cache directory is not owned by you or is writable by others; refusing to load "
                        "compiled code from it (chmod go-w it, or set ACCELSIM_CACHE to a private directory)",
                        source=path)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def _recorded(target: Path) -> str | None:
    try:
        return _record_path(target).read_text().strip()
    except OSError:
        return None
