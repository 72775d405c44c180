"""Simulation across phases: a fine-tuning run together with the runs it needed (its lineage).

A finetune run's manifest names its pretraining run (``parent``) and, when it distilled, its teacher
(``extra.teacher``, itself a finetune run with a parent). The lineage is every run reachable through
those links, each counted once (a student and its teacher usually share one pretraining run), ancestors
first. All of an ancestor's steps count: fine-tuning starts from its final checkpoint. Time to a target
metric is the ancestors' total plus the simulated time of the last run up to (and including) the step of
its first evaluation that reaches the target.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from accelsim.errors import UserError, expect
from accelsim.sim.result import SimResult
from accelsim.trace import EVAL_COLUMNS, Trace, read_manifest
from accelsim.trace_check import open_trace

#: ``--target-metric NAME=VALUE`` names -> eval table column (higher is better for all of them).
METRICS = {"accuracy": "eval_accuracy", "acc": "eval_accuracy", "f1": "eval_f1", "mcc": "eval_mcc",
           "matthews": "eval_mcc"}


def parse_target_metric(text: str) -> tuple[str, float]:
    """``accuracy=0.85`` -> ("eval_accuracy", 0.85)."""
    name, sep, value = text.partition("=")
    try:
        target = float(value)
    except ValueError:
        target = None
    if not sep or target is None or name.strip().lower() not in METRICS:
        raise UserError(f"expected NAME=VALUE with NAME one of {sorted(METRICS)}, got {text!r}",
                        field="--target-metric")
    column = METRICS[name.strip().lower()]
    assert column in EVAL_COLUMNS
    return column, target


def linked_runs(run: str | Path) -> list[Path]:
    """The run's lineage, ancestors first, the run itself last; each directory once."""
    order: list[Path] = []
    seen: set[Path] = set()

    def visit(path: Path, chain: tuple[Path, ...]) -> None:
        path = path.resolve()
        expect(path not in chain, "the parent/teacher links form a cycle", source=path / "manifest.json")
        if path in seen:
            return
        man = read_manifest(path)
        for link, where in ((man.parent, "parent"), (man.extra.get("teacher"), "extra.teacher")):
            if link:
                target = (path / link)
                expect(target.is_dir(), f"linked run {link!r} does not exist (moved? the link is relative to "
                       "this run's directory)", source=path / "manifest.json", field=where)
                visit(target, chain + (path,))
        seen.add(path)
        order.append(path)
    visit(Path(run), ())
    return order


@dataclass
class LineageRun:
    run: str
    phase: str
    method: str
    steps: int
    time_s: float
    energy_j: float


@dataclass
class LineageResult:
    hardware: str
    runs: list[LineageRun]
    time_s: float  # all runs, all steps
    energy_j: float
    metric: str | None = None  # eval column of the target
    target: float | None = None
    time_to_target_s: float | None = None  # None: the last run never reaches the target
    step_at_target: int | None = None
    value_at_target: float | None = None
    final_value: float | None = None  # the metric at the last run's last evaluation
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def time_to_metric(trace: Trace, result: SimResult, column: str, target: float) -> tuple[float | None, int | None,
                                                                                         float | None]:
    """Simulated seconds of ``trace`` until its first evaluation with ``column >= target`` (inclusive)."""
    ev = trace.eval
    if ev.num_rows == 0:
        return None, None, None
    values = np.asarray(ev[column].to_numpy(zero_copy_only=False), dtype=float)
    hit = np.nonzero(values >= target)[0]
    if hit.size == 0:
        return None, None, None
    step = int(ev["step"][int(hit[0])].as_py())
    steps, times = result.timeline["step"], result.timeline["time_s"]
    upto = float(np.cumsum(times)[np.searchsorted(steps, step)])
    return upto, step, float(values[hit[0]])


def simulate_lineage(run: str | Path, profiles: list, devices: int = 1,
                     target: tuple[str, float] | None = None) -> list[LineageResult]:
    """Per profile: every run of the lineage simulated, summed, and the time to the target metric."""
    from accelsim.sim.api import simulate_many

    runs = linked_runs(run)
    traces = [open_trace(r) for r in runs]  # validated as simulate_many would open them
    per_run = [simulate_many(t, profiles, devices) for t in traces]
    out = []
    last = traces[-1]
    for i, first in enumerate(per_run[0]):
        results = [rs[i] for rs in per_run]
        items = [LineageRun(str(t.path), t.manifest.phase, str(t.manifest.method.get("name")), r.steps, r.time_s,
                            r.energy_j) for t, r in zip(traces, results)]
        res = LineageResult(first.name, items, sum(r.time_s for r in results), sum(r.energy_j for r in results))
        if target is not None:
            column, value = target
            before = sum(r.time_s for r in results[:-1])
            t, step, hit = time_to_metric(last, results[-1], column, value)
            vals = last.eval[column].to_numpy(zero_copy_only=False) if last.eval.num_rows else []
            res.metric, res.target, res.step_at_target, res.value_at_target = column, value, step, hit
            res.time_to_target_s = before + t if t is not None else None
            res.final_value = float(vals[-1]) if len(vals) else None
        out.append(res)
    return out
