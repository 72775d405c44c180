"""What a report is built from: run directories (trace + ``sim/<hw>.json``), their experiment, validations.

The simulator writes results (``SimResult.save``) but has no reader; :func:`load_sims` is that small
adapter, reading the JSON and timeline files back as plain data.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelsim import trace as tr
from accelsim.errors import UserError, expect
from accelsim.trace_check import open_trace

EXPERIMENT_FILE = "experiment.json"


@dataclass
class SimData:
    name: str  # hardware name, or <hw>-x<N> for N devices
    doc: dict[str, Any]  # sim/<name>.json, exactly as the simulator wrote it
    timeline: dict[str, np.ndarray] = field(default_factory=dict)  # step, time_s, energy_j, epoch

    @property
    def hardware(self) -> str:
        return str(self.doc.get("hardware", self.name))


@dataclass
class RunData:
    path: Path
    trace: tr.Trace
    sims: dict[str, SimData]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def method(self) -> str:
        return str(self.trace.manifest.method.get("name", "?"))

    @property
    def is_dense(self) -> bool:
        return self.method == "dense"

    @property
    def model(self) -> str:
        m = self.trace.manifest
        return str(m.extra.get("model_name", f"{m.model['layers']}L/{m.model['hidden']}H"))

    @property
    def sparsity(self) -> float:
        """The method's target sparsity; else one minus the sparse layers' planned overall density."""
        s = self.trace.manifest.method.get("sparsity")
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            return 0.0 if self.is_dense else float(s)
        sparse = [i for i in self.trace.manifest.layers if i.sparse]
        numel = sum(i.shape[0] * i.shape[1] for i in sparse)
        kept = sum(i.shape[0] * i.shape[1] * i.target_density for i in sparse)
        return 1.0 - kept / numel if numel else 0.0

    def loss(self) -> np.ndarray:
        return self.trace.steps["loss"].to_numpy(zero_copy_only=False).astype(np.float64)

    def steps(self) -> np.ndarray:
        return self.trace.steps["step"].to_numpy(zero_copy_only=False)

    def shape_key(self) -> tuple:
        """Runs with equal keys do the same dense work per step: a dense one is the others' baseline."""
        m = self.trace.manifest
        return (json.dumps(m.model, sort_keys=True), m.batch_size, m.dtype, self.trace.steps.num_rows)


def load_sims(run: str | Path) -> dict[str, SimData]:
    """Every stored simulation of a run: ``sim/<name>.json`` plus its ``-timeline.parquet`` when present."""
    import pyarrow.parquet as pq

    d = Path(run) / "sim"
    out: dict[str, SimData] = {}
    if not d.is_dir():
        return out
    for js in sorted(d.glob("*.json")):
        if js.name.startswith("."):
            continue
        try:
            doc = json.loads(js.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"unreadable simulation result ({err.__class__.__name__})", source=js) from None
        expect(isinstance(doc, dict) and "time_s" in doc and "hardware" in doc,
               "not a simulation result (expected the JSON `accelsim simulate` writes)", source=js)
        timeline: dict[str, np.ndarray] = {}
        tl = d / f"{js.stem}-timeline.parquet"
        if tl.is_file():
            t = pq.read_table(tl)
            timeline = {c: t[c].to_numpy(zero_copy_only=False) for c in t.column_names}
        out[js.stem] = SimData(js.stem, doc, timeline)
    return out


def load_run(path: str | Path) -> RunData:
    path = Path(path)
    return RunData(path, open_trace(path), load_sims(path))


def expand_inputs(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """Run directories and experiment directories (``experiment.json`` + ``runs/``) -> (runs, experiments)."""
    expect(len(paths) > 0, "expected at least one run or experiment directory", field="RUN")
    runs: list[Path] = []
    experiments: list[Path] = []
    for p in map(Path, paths):
        if (p / EXPERIMENT_FILE).is_file():
            experiments.append(p)
            doc = read_experiment(p)
            names = doc.get("runs") or sorted(q.name for q in (p / "runs").iterdir() if tr.manifest_path(q).is_file())
            runs.extend(p / "runs" / n for n in names)
        elif tr.manifest_path(p).is_file():
            runs.append(p)
        else:
            raise UserError("not a run directory (no manifest.json) or an experiment directory (no "
                            f"{EXPERIMENT_FILE})", source=p)
    seen: set[Path] = set()
    unique = [r for r in runs if not (r.resolve() in seen or seen.add(r.resolve()))]
    return unique, experiments


def read_experiment(d: Path) -> dict:
    path = Path(d) / EXPERIMENT_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"unreadable experiment record ({err.__class__.__name__})", source=path) from None
    expect(isinstance(doc, dict), "expected a JSON object", source=path)
    return doc


def experiment_of(run: Path) -> Path | None:
    """The experiment directory a run belongs to (``<exp>/runs/<run>``), if any."""
    parent = run.resolve().parent
    return parent.parent if parent.name == "runs" and (parent.parent / EXPERIMENT_FILE).is_file() else None


def dense_baseline(run: RunData, runs: list[RunData]) -> RunData | None:
    """The dense run of the same shape (model, batch, dtype, steps) among ``runs``."""
    return next((r for r in runs if r.is_dense and r.shape_key() == run.shape_key()), None)


def hardware_order(runs: list[RunData], wanted: list[str] | None = None) -> list[str]:
    """Simulated hardware names to show: ``wanted`` (in its order), else all found, bundled order first."""
    found: list[str] = []
    for r in runs:
        for name in r.sims:
            if name not in found:
                found.append(name)
    if wanted:
        missing = [w for w in wanted if not any(w in r.sims for r in runs)]
        expect(not missing, f"no stored simulation for {missing}; run `accelsim simulate RUN --hw "
               f"{','.join(missing)}` first (simulated here: {', '.join(found) or 'nothing'})", field="--hw")
        return list(wanted)
    from accelsim.hardware import list_profiles

    order = {n: i for i, n in enumerate(list_profiles())}
    return sorted(found, key=lambda n: (order.get(re.sub(r"-x\d+$", "", n), len(order)), n))


def time_to_target(run: RunData, sim: SimData, target: float | None) -> tuple[float | None, int | None]:
    """Simulated seconds until the smoothed loss first reaches ``target`` (the simulator's own rule)."""
    from accelsim.sim.result import time_to_target as ttt

    if target is None:
        return None, None
    if sim.doc.get("target_loss") == target and "time_to_target_s" in sim.doc:
        return sim.doc["time_to_target_s"], sim.doc.get("step_at_target")
    if "time_s" not in sim.timeline:
        return None, None
    return ttt(run.loss(), np.cumsum(sim.timeline["time_s"]), sim.timeline["step"], target)


def stored_target(runs: list[RunData]) -> float | None:
    """The target loss the stored simulations used, when they agree on one."""
    targets = {s.doc.get("target_loss") for r in runs for s in r.sims.values()} - {None}
    return targets.pop() if len(targets) == 1 else None


def find_validations(runs: list[Path], experiments: list[Path], explicit: list[Path] | None) -> list[Path]:
    """``--validation`` files, else ``validation.json`` (or ``validation/validation.json``) next to the
    experiment or any run, as ``accelsim validate --out DIR`` writes it."""
    if explicit:
        for p in explicit:
            expect(Path(p).is_file(), "no such validation file", source=p, field="--validation")
        return [Path(p) for p in explicit]
    dirs = list(experiments) + [e for e in (experiment_of(r) for r in runs) if e] + list(runs)
    found: list[Path] = []
    for d in dirs:
        for cand in (d / "validation.json", d / "validation" / "validation.json"):
            if cand.is_file() and cand.resolve() not in {f.resolve() for f in found}:
                found.append(cand)
    return found


def simulated_profiles(runs: list[RunData], hw: list[str]) -> dict[str, object | None]:
    """Each simulated hardware's profile, a ``<profile>@<dtype>`` one (simulate/compare --dtype) in that
    precision (None when it is not bundled and cannot be found by name)."""
    from accelsim.hardware.dtype import with_dtype

    out: dict[str, object | None] = {}
    for h in hw:
        name = next((r.sims[h].hardware for r in runs if h in r.sims), re.sub(r"-x\d+$", "", h))
        base, _, precision = name.partition("@")
        try:
            out[h] = with_dtype(base, precision or None)
        except UserError:
            out[h] = None
    return out
