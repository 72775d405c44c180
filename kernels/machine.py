"""What a measurement was taken on: CPU model, cores, ISA flags, library versions, threads."""
from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import os
import platform
import re
from pathlib import Path

import numpy as np
import torch

from accelsim.kernels import host_memory

#: ISA extensions that change what sparse/dense kernels can do (vector width, bf16/int8 dot, AMX).
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve")


def _cpuinfo() -> dict:
    info = {"model": platform.processor() or platform.machine(), "flags": []}
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return info
    mt = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    if mt:
        info["model"] = mt.group(1).strip()
    fam, mod = re.search(r"^cpu family\s*:\s*(\d+)$", text, re.M), re.search(r"^model\s*:\s*(\d+)$", text, re.M)
    if fam and mod:  # the model name of a KVM guest can hide the generation ("AMD EPYC"); these do not
        info["family_model"] = f"{fam.group(1)}/{mod.group(1)}"
    fl = re.search(r"^(flags|Features)\s*:\s*(.+)$", text, re.M)
    if fl:
        have = set(fl.group(2).split())
        info["flags"] = [f for f in ISA_FLAGS if f in have]
    cores = set()
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^(physical id|core id)\s*:\s*(\d+)", block, re.M))
        if len(fields) == 2:
            cores.add((fields["physical id"], fields["core id"]))
    info["physical_cores"] = len(cores) or None
    return info


def _mkl_version() -> str | None:
    mt = re.search(r"Math Kernel Library Version ([^\n]+)", torch.__config__.show())
    return mt.group(1).strip() if mt else None


def _optional_version(dist: str) -> str | None:
    """Installed version from package metadata (importing would load native libraries as a side effect)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


#: kernel paths built from this project's own C sources (relative to kernels/): a measurement records the
#: sources' hashes, so rounds timed before and after a kernel changed are never pooled unknowingly (merge)
KERNEL_SOURCES = {"blocksparse_c": "cpu/_blocksparse.c", "csr_c": "cpu/_csr.c", "fff_walk": "_fff.c"}


def kernel_sources() -> dict[str, str]:
    """{kernel path: first 16 hex digits of the SHA-256 of its C source} for the sources installed here."""
    root = Path(__file__).parent
    return {path: hashlib.sha256((root / src).read_bytes()).hexdigest()[:16]
            for path, src in KERNEL_SOURCES.items() if (root / src).is_file()}


def machine_info(device: str = "cpu") -> dict:
    cpu = _cpuinfo()
    info = {
        "cpu_model": cpu["model"],
        "logical_cores": os.cpu_count(),
        "physical_cores": cpu.get("physical_cores"),
        "isa_flags": cpu["flags"],
        "cpu_family_model": cpu.get("family_model"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_mkl": _mkl_version(),
        "torch_threads": torch.get_num_threads(),
        "host_memory": host_memory.retain_state(),
        "numpy": np.__version__,
        "scipy": _optional_version("scipy"),
        "sparse_dot_mkl": _optional_version("sparse_dot_mkl"),
        "mkl_wheel": _optional_version("mkl"),
        "triton": _optional_version("triton"),
        "device": device,
        "kernel_sources": kernel_sources(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


#: what makes two machines the same for a calibrated profile (versions and dates may differ)
SAME_MACHINE_KEYS = ("cpu_model", "cpu_family_model", "logical_cores", "isa_flags")


def machine_mismatch(recorded: dict | None, current: dict | None = None) -> str | None:
    """How the machine a profile was calibrated on (its ``fitted.machine``) differs from this one, or None.
    Keys missing on either side are not compared (older profiles record fewer)."""
    if not recorded:
        return None
    current = current or machine_info()
    diffs = [f"{k} {recorded[k]} vs {current[k]} here" for k in SAME_MACHINE_KEYS
             if recorded.get(k) is not None and current.get(k) is not None and recorded[k] != current[k]]
    return "; ".join(diffs) or None


def _cpu_name(m: dict) -> str:
    fm = (m.get("cpu_family_model") or "").split("/")
    fam = f"family {fm[0]} model {fm[1]}" if len(fm) == 2 else "family/model not recorded"
    return f"{m.get('cpu_model') or 'unknown CPU'} ({fam}, {m.get('logical_cores') or '?'} cores)"


def cpu_profile_note(profile, current: dict | None = None) -> tuple[str, bool] | None:
    """(one line saying which CPU a CPU profile describes, whether that is NOT this machine), or None for
    other kinds. Only a fitted profile records its machine (``fitted.machine``); one without is a datasheet
    figure set, described by its own description and never "this machine"."""
    if profile.kind != "cpu":
        return None
    recorded = (profile.fitted or {}).get("machine")
    if not recorded:
        return f"{profile.name} describes {profile.description} (not measured on this machine)", False
    current = current or machine_info()
    # the CPU generation decides the times; ISA flag lists grew between versions of ISA_FLAGS, so they are not
    # compared here (machine_mismatch, for pooling measurements, does compare them)
    keys = ("cpu_family_model", "logical_cores")
    if not any(recorded.get(k) != current.get(k) for k in keys):  # unrecorded family/model: cannot say it is
        return f"{profile.name} was calibrated on this machine ({_cpu_name(recorded)})", False
    return (f"{profile.name} describes {_cpu_name(recorded)}, not this machine's {_cpu_name(current)}: its times "
            f"are that CPU's; `accelsim hw calibrate-local` fits a profile of yours in ~10 min"), True


def _cpu_times() -> tuple[int, int] | None:
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return sum(vals[:8]), idle


def busy_fraction(interval: float = 0.5) -> float:
    """Share of all CPUs busy over ``interval`` while this process sleeps: the load of others."""
    import time

    a = _cpu_times()
    time.sleep(interval)
    b = _cpu_times()
    if a is None or b is None or b[0] == a[0]:
        return 0.0
    return 1.0 - (b[1] - a[1]) / (b[0] - a[0])


def wait_until_quiet(below: float, max_wait_s: float, interval: float = 0.5) -> float:
    """Sleep until other processes use less than ``below`` of the CPUs (or ``max_wait_s`` passed).

    Why: on a shared 2-core machine a timing taken while another process runs is mostly scheduler
    noise; waiting for a quiet moment before each case is cheaper than discarding rounds afterwards.
    Returns the last busy fraction seen (callers record it next to the timing).
    """
    import time

    deadline = time.monotonic() + max_wait_s
    busy = busy_fraction(interval)
    while busy >= below and time.monotonic() < deadline:
        busy = busy_fraction(interval)
    return busy
