"""Writes a run's trace while training: shared by trainer.train and the HF TrainerCallback.

Rows are buffered in memory and written as one Parquet part per flush; the training loop flushes
right before each checkpoint, so the trace on disk never runs ahead of a resumable state by more than
one part (which --resume trims).
"""
from __future__ import annotations

import getpass
import importlib.metadata
import platform
import socket
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from accelsim import trace as tr
from accelsim.kernels import host_memory
from accelsim.patterns import pattern_stats
from accelsim.workload import StepKind, phase_flops, step_ops

#: Masks are stored at every change by default only for models up to this size (bytes stay small).
MASK_PARAM_LIMIT = 20_000_000


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("accelsim", "torch", "transformers", "tokenizers", "datasets", "numpy", "pyarrow"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers; the user name is informational only
        user = ""
    return {"hostname": socket.gethostname(), "user": user, "platform": platform.platform(), "cpu": cpu,
            "torch_threads": torch.get_num_threads(), "host_memory": host_memory.retain_state()}


class InputZeroProbe:
    """Forward pre-hooks recording the zero fraction of each sparse layer's input, only when armed
    (mask-change steps), so ordinary steps pay nothing."""

    def __init__(self, layers: list[tuple[str, torch.nn.Module]]):
        self.armed = False
        self.values: dict[str, float] = {}
        self._handles = [m.register_forward_pre_hook(self._hook(name)) for name, m in layers]

    def _hook(self, name: str):
        def hook(_module, args):
            if self.armed:
                x = args[0]
                # count_nonzero is one fused reduction; (x == 0).sum() first materialises a bool tensor
                # the size of the activations, and SR-STE probes at every step
                self.values[name] = 1.0 - float(torch.count_nonzero(x)) / x.numel() if x.numel() else 0.0
        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class TraceWriter:
    def __init__(self, run: Path, manifest: tr.Manifest, save_masks: str | int = "auto"):
        self.run = Path(run)
        self.manifest = manifest
        self._steps: list[dict] = []
        self._patterns: list[dict] = []
        self._eval: list[dict] = []
        params = int(manifest.model.get("params", 0))
        if save_masks == "auto":
            self.mask_every = 1 if params <= MASK_PARAM_LIMIT else 0
        elif save_masks == "none":
            self.mask_every = 0
        else:
            self.mask_every = int(save_masks)  # store every N-th mask change
        self._mask_changes = 0
        self._flops = lru_cache(maxsize=256)(self._flops_uncached)
        self.trace_seconds = 0.0  # time spent in tracing code, for the overhead benchmark

    def start(self) -> None:
        tr.write_manifest(self.run, self.manifest)

    def _flops_uncached(self, kind: StepKind, dens: tuple[tuple[str, float], ...]) -> dict[str, float]:
        return phase_flops(step_ops(self.manifest, dict(dens), kind))

    def step(self, step: int, loss: float, lr: float, tokens: int, wall_s: float, kind: StepKind,
             densities: dict[str, float], mask_changed: bool) -> None:
        t0 = time.perf_counter()
        # densities are exact counts / sizes, so rounding only merges float noise in the cache key
        key = tuple(sorted((k, round(v, 9)) for k, v in densities.items()))
        row = {"step": step, "loss": loss, "lr": lr, "tokens": tokens, "wall_s": wall_s,
               "mask_changed": mask_changed, "density": self.overall_density(densities)}
        row.update(self._flops(kind, key))
        self._steps.append(row)
        self.trace_seconds += time.perf_counter() - t0

    def overall_density(self, densities: dict[str, float]) -> float:
        num = den = 0.0
        for info in self.manifest.layers:
            size = info.shape[0] * info.shape[1]
            num += densities.get(info.name, 1.0) * size
            den += size
        return num / den if den else 1.0

    def patterns(self, step: int, masks: dict[str, torch.Tensor], pruned: dict[str, int] | None = None,
                 grown: dict[str, int] | None = None, input_zero: dict[str, float] | None = None,
                 ) -> None:
        t0 = time.perf_counter()
        np_masks = {name: m.detach().cpu().numpy().astype(bool) for name, m in masks.items()}
        for name, m in np_masks.items():
            row = {"step": step, "layer": name, "pruned": int((pruned or {}).get(name, 0)),
                   "grown": int((grown or {}).get(name, 0)),
                   "input_zero_frac": float((input_zero or {}).get(name, float("nan")))}
            row.update(pattern_stats(m))
            self._patterns.append(row)
        if self.mask_every and self._mask_changes % self.mask_every == 0:
            tr.write_masks(self.run, step, np_masks)
        self._mask_changes += 1
        self.trace_seconds += time.perf_counter() - t0

    def eval(self, step: int, loss: float, accuracy: float, f1: float = float("nan"),
             mcc: float = float("nan")) -> None:
        self._eval.append({"step": step, "eval_loss": loss, "eval_accuracy": accuracy, "eval_f1": f1,
                           "eval_mcc": mcc})

    def flush(self) -> None:
        t0 = time.perf_counter()
        for table, rows in (("steps", self._steps), ("patterns", self._patterns), ("eval", self._eval)):
            tr.append_rows(self.run, table, rows)
            rows.clear()
        self.trace_seconds += time.perf_counter() - t0

    def discard_after(self, step: int) -> None:
        """Drop buffered rows past ``step`` (used when a step fails before it completes)."""
        self._steps = [r for r in self._steps if r["step"] <= step]
        self._patterns = [r for r in self._patterns if r["step"] <= step]
        self._eval = [r for r in self._eval if r["step"] <= step]

