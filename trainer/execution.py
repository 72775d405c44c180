"""How the sparse layers' products are executed: ``masked`` (dense products on zeroed weights, the default)
or ``sparse`` (the project's CPU kernels, accelsim.kernels.cpu.autograd).

In sparse execution every sparse layer's three products (forward, input gradient, weight gradient) go to
the kernel family the hardware profile's cost model finds fastest for that product: the very ``op_cost``
call the simulator makes for the same op of the same trace (same ``step_ops``, the layer's current
pattern statistics), so the run executes what the simulator will charge it for. Dense-gradient steps
(``StepKind.dense_grad``: RigL on update steps, sparse momentum and SR-STE on every step) compute the
weight gradient densely, exactly as the workload counts it.

After every mask change the formats are rebuilt (path choice + format build, both timed, inside the
step's measured wall time) and the rebuild is recorded in ``execution.json`` in the run directory:
``{"schema", "execution", "profile", "rebuilds": [{"step", "choose_s", "build_s", "paths": {layer:
[fwd, dx, dw]}}]}`` (step = the step whose mask change triggered it; the build before the first step
of a run or a resume is recorded with ``"initial": true``; ``paths`` only where the choice differs from the
rebuild before, see :func:`last_paths`). The file is written with the trace, at checkpoints and when training
stops, not per rebuild: SR-STE changes its masks every step, and rewriting a record that grows by a rebuild a
step costs time quadratic in the run's length.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from accelsim.errors import expect
from accelsim.hardware import load_profile, op_cost
from accelsim.kernels.cpu.autograd import FAMILIES, Paths, SparseWeight, sparse_linear
from accelsim.patterns import pattern_stats
from accelsim.trace import Manifest
from accelsim.workload import StepKind, step_ops

EXECUTIONS = ("masked", "sparse")
EXECUTION_FILE = "execution.json"
_PHASES = {"fwd": "fwd", "bwd_input": "dx", "bwd_weight": "dw"}


def family_of(profile, cost) -> str:
    """Kernel family (kernels.cpu.autograd.FAMILIES) that runs the profile path a cost model chose.

    A 2:4 path has no training kernel here (the CPU's N:M paths lose to dense MKL): it runs dense.
    """
    pattern = profile.paths[cost.path].pattern
    if pattern == "unstructured":
        return "unstructured"
    if pattern == "block" and f"block{cost.block}" in FAMILIES:
        return f"block{cost.block}"
    return "dense"


def last_paths(record: dict) -> dict | None:
    """The path choice in force after the record's last rebuild: that of the latest rebuild that records one."""
    return next((r["paths"] for r in reversed(record.get("rebuilds", [])) if "paths" in r), None)


def choose_paths(profile, manifest: Manifest, masks: dict[str, torch.Tensor],
                 densities: dict[str, float]) -> dict[str, Paths]:
    """Per sparse layer, the family of each product that the simulator's cost model picks."""
    chosen: dict[str, dict[str, str]] = {}
    stats = {n: pattern_stats(m.detach().cpu().numpy()) for n, m in masks.items()}
    for op in step_ops(manifest, densities, StepKind(dense_grad=False, mask_update=False, sparse_compute=True)):
        if op.kind != "linear" or op.layer not in masks:
            continue
        fam = family_of(profile, op_cost(profile, op, stats[op.layer])) if op.sparse else "dense"
        chosen.setdefault(op.layer, {})[_PHASES[op.phase]] = fam
    return {n: Paths(**p) for n, p in chosen.items()}


class MaskedExecution:
    """The default: nothing to do (the method's masks make the dense products compute the sparse model)."""

    name = "masked"

    def begin_step(self, kind: StepKind) -> None:
        pass

    def mask_changed(self, step: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class SparseExecution:
    """Routes the sparse layers' forward through :func:`sparse_linear` with formats rebuilt on mask changes."""

    name = "sparse"

    def __init__(self, profile, manifest: Manifest, method, layers: list[tuple[str, torch.nn.Module]],
                 out: Path, start: int):
        self.profile = load_profile(profile)
        self.manifest, self.method, self.out = manifest, method, Path(out)
        self.modules = dict(layers)
        for name, module in layers:
            expect(isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32
                   and module.weight.device.type == "cpu",
                   f"sparse execution runs float32 nn.Linear layers on the CPU; {name!r} is not one",
                   field="execute")
        self.formats: dict[str, SparseWeight] = {}
        self.dense_grad = False
        self._chosen: tuple[dict[str, Paths], dict[str, float]] = ({}, {})  # the last choice and its densities
        self.record = self._load_record(start)
        self._recorded = last_paths(self.record)  # the choice the record holds last (read once, not per rebuild)
        self._rebuild(start, initial=True)

    def _load_record(self, start: int) -> dict:
        path = self.out / EXECUTION_FILE
        rebuilds = []
        if start > 0 and path.is_file():  # a resumed run keeps the rebuilds of the steps it keeps
            rebuilds = [r for r in json.loads(path.read_text()).get("rebuilds", []) if r["step"] < start]
        return {"schema": "accelsim.execution/1", "execution": self.name,
                "profile": {"name": self.profile.name, "file": self.profile.source_file}, "rebuilds": rebuilds}

    def begin_step(self, kind: StepKind) -> None:
        self.dense_grad = kind.dense_grad

    def mask_changed(self, step: int) -> None:
        self._rebuild(step, initial=False)

    def _rebuild(self, step: int, initial: bool) -> None:
        t0 = time.perf_counter()
        masks = {n: self.method.masks[n] for n in self.modules}
        densities = self.method.densities()
        # an N:M mask keeps n of every m inputs at every update: its pattern statistics, so the cost model's
        # choice, do not change while the densities do not (SR-STE would otherwise re-choose every step)
        if initial or self.method.sim_rule().structure != "nm" or densities != self._chosen[1]:
            self._chosen = (choose_paths(self.profile, self.manifest, masks, densities), densities)
        paths = self._chosen[0]
        t1 = time.perf_counter()
        for name, module in self.modules.items():
            p = paths.get(name, Paths())
            if p.any_sparse:
                self.formats[name] = SparseWeight(masks[name], p)
                module.forward = self._forward_of(name, module)
            else:  # every product dense: the module's own forward is the masked path exactly
                self.formats.pop(name, None)
                module.__dict__.pop("forward", None)
        t2 = time.perf_counter()
        entry = {"step": step, "choose_s": t1 - t0, "build_s": t2 - t1}
        chosen = {n: [p.fwd, p.dx, p.dw] for n, p in paths.items()}
        if initial or chosen != self._recorded:
            entry["paths"] = self._recorded = chosen
        if initial:
            entry["initial"] = True
        self.record["rebuilds"].append(entry)

    def _forward_of(self, name: str, module: torch.nn.Linear):
        def forward(x: torch.Tensor) -> torch.Tensor:
            return sparse_linear(x, module.weight, module.bias, self.formats[name], self.dense_grad)
        return forward

    def flush(self) -> None:
        """Write ``execution.json`` (with the trace: at checkpoints and when training stops)."""
        path = self.out / EXECUTION_FILE
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(self.record, indent=1))
        os.replace(tmp, path)

    def close(self) -> None:
        """Write the record and give the modules their own forward back (the model is plain transformers again)."""
        self.flush()
        for module in self.modules.values():
            module.__dict__.pop("forward", None)


def build_execution(execute: str, profile: str, manifest: Manifest, method, layers, out: Path, start: int):
    expect(execute in EXECUTIONS, f"expected one of {EXECUTIONS}, got {execute!r}", field="execute")
    if execute == "masked" or method.name == "dense":
        return MaskedExecution()
    return SparseExecution(profile, manifest, method, layers, out, start)
