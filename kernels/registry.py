"""Registry of kernel "paths": every way we know to compute one (op, pattern) product.

A path turns a case's dense operands into its own format once (``build``; format conversion is a
per-mask-update cost, so it is not timed) and returns a runner plus a converter of the runner's
native result to the dense reference layout. ``pick_fastest`` checks every available path against
dense torch, times the correct ones interleaved and reports the winner.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from accelsim.kernels.cases import Case, Operands, make_operands, reference
from accelsim.kernels.timing import measure

#: Modules whose import registers the paths of a device (loaded lazily: triton is optional).
DEVICE_MODULES = {"cpu": ("accelsim.kernels.cpu",), "cuda": ("accelsim.kernels.cpu", "accelsim.kernels.triton")}

#: allclose tolerances per dtype vs the float32 dense reference. float32 paths differ only in
#: summation order; half-precision inputs carry ~3 (fp16) / ~2 (bf16) significant digits.
TOLERANCES = {"float32": (1e-3, 1e-3), "float16": (2e-2, 2e-2), "bfloat16": (6e-2, 6e-2)}


#: layout note of a kernel whose natural result is the transpose of a contiguous Yᵀ: the timed call copies it
#: to row-major, because that is what the next op of a training step reads (a transposed view left to the
#: consumer costs more there: strided GELU / LayerNorm / dropout and autograd's own copies, issue 17)
OUT_T = "out: Yᵀ computed, copied to row-major"


def row_major(result):
    """A kernel's transposed-view result as the row-major tensor a training step's next op needs."""
    return result.contiguous()


@dataclass(frozen=True)
class Prepared:
    run: Callable[[], Any]
    to_dense: Callable[[Any], torch.Tensor] = lambda out: out
    layout: str = "row-major"  # which layout the runner reads its dense operand in (documented in records)


def _always() -> str | None:
    return None


@dataclass(frozen=True)
class KernelPath:
    name: str
    op: str
    patterns: tuple[str, ...]  # "*" = any pattern
    build: Callable[[Operands], Prepared]
    devices: tuple[str, ...] = ("cpu",)
    dense: bool = False  # computes the full dense product (the baseline, or a fallback)
    # what kind of kernel this is, in the terms of a hardware profile's path patterns (dense,
    # unstructured, block, 2:4): calibration fits a profile path to the best timing of its family
    family: str = "dense"
    available: Callable[[], str | None] = _always  # None, or why it cannot run here
    doc: str = ""

    def handles(self, op: str, pattern: str, device: str) -> bool:
        return op == self.op and device in self.devices and ("*" in self.patterns or pattern in self.patterns)


_PATHS: dict[tuple[str, str], KernelPath] = {}
_THREAD_HOOKS: list[Callable[[int], None]] = []


def register(path: KernelPath) -> KernelPath:
    key = (path.op, path.name)
    if key in _PATHS and _PATHS[key] is not path:
        raise ValueError(f"kernel path {key} registered twice")
    _PATHS[key] = path
    return path


def on_set_threads(hook: Callable[[int], None]) -> None:
    """Libraries with their own thread pools (sparse_dot_mkl's MKL) follow ``set_threads``."""
    _THREAD_HOOKS.append(hook)


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
    for hook in _THREAD_HOOKS:
        hook(n)


def load_paths(device: str) -> None:
    for mod in DEVICE_MODULES.get(device, ()):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as err:  # optional backend (triton) missing: its paths do not exist
            if err.name != "triton":
                raise


def all_paths(device: str = "cpu") -> list[KernelPath]:
    load_paths(device)
    return [p for p in _PATHS.values() if device in p.devices]


def paths_for(op: str, pattern: str, device: str = "cpu") -> list[KernelPath]:
    """Registered paths for (op, pattern) on ``device``, dense baseline first."""
    found = [p for p in all_paths(device) if p.handles(op, pattern, device)]
    return sorted(found, key=lambda p: (not p.dense, p.name))


@dataclass
class Choice:
    """Outcome of timing every path of one case."""

    case: Case
    device: str
    threads: int
    times: dict[str, float] = field(default_factory=dict)  # median seconds per correct path
    rejected: dict[str, str] = field(default_factory=dict)  # path -> why it was not timed
    layouts: dict[str, str] = field(default_factory=dict)
    density_actual: float = 1.0

    @property
    def winner(self) -> str:
        return min(self.times, key=self.times.get)

    @property
    def dense_s(self) -> float:
        return self.times["dense_torch"]


def check_path(path: KernelPath, ops: Operands, ref: torch.Tensor | None = None) -> tuple[Prepared, str | None]:
    """Build a path and compare its result with dense torch; returns (prepared, error or None)."""
    prepared = path.build(ops)
    got = prepared.to_dense(prepared.run()).float()
    ref = reference(ops) if ref is None else ref
    rtol, atol = TOLERANCES[ops.case.dtype]
    if got.shape != ref.shape:
        return prepared, f"shape {tuple(got.shape)} != reference {tuple(ref.shape)}"
    if not torch.allclose(got, ref, rtol=rtol, atol=atol):
        err = (got - ref).abs().max().item()
        return prepared, f"mismatch vs dense torch (max abs err {err:.3g}, rtol={rtol}, atol={atol})"
    return prepared, None


def pick_fastest(case: Case, *, device: str = "cpu", threads: int | None = None, repeats: int = 5,
                 warmup: int = 1, only: tuple[str, ...] | None = None, ops: Operands | None = None,
                 slow_factor: float = 30.0, min_sample_s: float = 2e-3, warm_below_s: float = 0.0) -> Choice:
    """Time every correct path of ``case`` (dense torch always included) and report the winner."""
    threads = threads or torch.get_num_threads()
    set_threads(threads)
    ops = ops or make_operands(case, device)
    ref = reference(ops)
    choice = Choice(case, device, threads, density_actual=ops.density_actual)
    runners = {}
    for path in paths_for(case.op, case.pattern, device):
        if not admit(path.name, path.available, only, choice):
            continue
        try:
            prepared, err = check_path(path, ops, ref)
        except Exception as exc:  # a backend refusing a shape/format is a result to report, not a crash
            first_line = (str(exc).splitlines() or [""])[0][:160]
            choice.rejected[path.name] = f"failed: {type(exc).__name__}: {first_line}"
            continue
        if err:
            choice.rejected[path.name] = err
            continue
        runners[path.name] = prepared.run
        choice.layouts[path.name] = prepared.layout
    return time_runners(choice, runners, warmup=warmup, repeats=repeats, slow_factor=slow_factor,
                        min_sample_s=min_sample_s, warm_below_s=warm_below_s)


def admit(name: str, available: Callable[[], str | None], only: tuple[str, ...] | None, choice: Choice) -> bool:
    """Whether to check and time a path: selected by ``only`` (the dense baseline always) and able to run
    here (else the reason is recorded in ``choice.rejected``)."""
    if only is not None and name not in only and name != "dense_torch":
        return False
    reason = available()
    if reason:
        choice.rejected[name] = f"unavailable: {reason}"
        return False
    return True


def time_runners(choice: Choice, runners: dict[str, Callable[[], Any]], **measure_kw) -> Choice:
    """Time the checked runners interleaved (the dense baseline is never dropped) into ``choice``."""
    medians, dropped = measure(runners, device=choice.device, keep=("dense_torch",), **measure_kw)
    choice.times = medians
    choice.rejected.update(dropped)
    return choice
