"""Experiments: models x methods x sparsities, trained, simulated on hardware profiles and reported.

An experiment is what ``accelsim run`` executes. Its output directory holds::

    experiment.json                  the resolved experiment (quick or not, the target loss used)
    runs/<model>-<method>[-<pct>]/   one trace per training run, simulations in its sim/<hw>.json
    report.html, report.md, report.json, figures/

Re-running is cheap and safe: a finished trace is reused (never retrained), an interrupted one is
continued with ``trainer.train(cfg, resume=True)``, and a simulation is redone only when the trace,
the profile, the simulator's source, the device count or the target loss changed (``sim/<hw>.key``).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from accelsim.errors import UserError, expect
from accelsim.app.experiment_config import Experiment, MethodSpec, RunSpec, default_experiment, load_experiment

__all__ = ["Experiment", "ExperimentResult", "MethodSpec", "RunOutcome", "RunSpec", "default_experiment",
           "load_experiment", "resolve_target_loss", "run_experiment", "simulate_runs", "train_config"]


@dataclass
class RunOutcome:
    name: str
    path: Path
    status: str  # trained | resumed | reused
    train_s: float


@dataclass
class ExperimentResult:
    out: Path
    experiment: Experiment
    quick: bool
    runs: list[RunOutcome]
    hardware: list[str]  # simulated result names (hw, or hw-xN for N devices)
    target_loss: float | None
    simulated: int  # (run, hardware) pairs simulated afresh; the others were up to date
    report: dict[str, Path]
    wall_s: float

    def to_dict(self) -> dict:
        return {"out": str(self.out), "quick": self.quick, "target_loss": self.target_loss,
                "hardware": self.hardware, "simulated": self.simulated, "wall_s": self.wall_s,
                "runs": [{"name": r.name, "path": str(r.path), "status": r.status, "train_s": r.train_s}
                         for r in self.runs],
                "report": {k: str(v) for k, v in self.report.items()},
                "experiment": self.experiment.to_dict()}


def train_config(exp: Experiment, spec: RunSpec, run_dir: Path):
    """The trainer configuration of one run of ``exp`` (also what tests use to interrupt a run)."""
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig

    sparsity = SparsityConfig(method=spec.method, sparsity=spec.sparsity,
                              **{"update_every": exp.resolved_update_every(), **dict(spec.options)})
    data = DataConfig(**{**exp.data, "seq_len": exp.seq_len})
    return TrainConfig(model=spec.model, out=str(run_dir), steps=exp.steps, batch_size=exp.batch_size, lr=exp.lr,
                       seed=exp.seed, eval_every=exp.resolved_eval_every(), threads=exp.threads, data=data,
                       sparsity=sparsity,
                       # a checkpoint at every eval keeps an interrupted run's loss to at most 1/8 of it
                       checkpoint_every=exp.resolved_eval_every())


# --- training with resume semantics --------------------------------------------------------------

_IGNORED_CONFIG_KEYS = ("out", "threads")  # where and how fast a run trains does not change its trace


def _comparable(cfg_dict: dict) -> dict:
    return json.loads(json.dumps({k: v for k, v in cfg_dict.items() if k not in _IGNORED_CONFIG_KEYS}))


def _first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            diff = _first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
            if diff:
                return diff
        return None
    return None if a == b else f"{prefix}: {a!r} in the run, {b!r} in the experiment"


def _train_one(cfg, progress: bool) -> str:
    """Train, resume or reuse the run in ``cfg.out``; returns what was done."""
    from accelsim import trace as tr
    from accelsim.trainer.train import CHECKPOINT, train

    out = Path(cfg.out)
    if tr.manifest_path(out).is_file():
        saved = tr.read_manifest(out).extra.get("train_config")
        expect(isinstance(saved, dict), "holds a trace that no trainer config describes; delete it or choose "
               "another --out", source=out)
        diff = _first_difference(_comparable(saved), _comparable(cfg.to_dict()))
        expect(diff is None, f"holds a run trained with a different configuration ({diff}); delete the "
               f"directory or choose another --out", source=out)
        rows = tr.read_table(out, "steps").num_rows
        if (out / "train_summary.json").is_file() and rows >= cfg.steps:
            return "reused"
        if (out / CHECKPOINT).is_file():
            train(cfg, resume=True, progress=progress)
            return "resumed"
        # killed before its first checkpoint: nothing to resume from, and the trainer refuses to
        # write over a trace, so the few steps there are dropped and the run starts again
        shutil.rmtree(out)
    train(cfg, progress=progress)
    return "trained"


# --- simulation, redone only when something it depends on changed ---------------------------------

def _source_digest() -> str:
    """Digest of the simulator's and cost model's source, so a changed model invalidates stored results."""
    import accelsim.hardware
    import accelsim.sim

    h = hashlib.sha256()
    for pkg in (accelsim.sim, accelsim.hardware):
        for path in sorted(Path(pkg.__file__).parent.rglob("*.py")):
            h.update(path.read_bytes())
    return h.hexdigest()


def _sim_key(run: Path, profile, devices: int, target: float | None, source: str) -> str:
    from accelsim import __version__
    from accelsim.hardware import profile_to_yaml

    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns)
             for d in ("steps.parquet", "patterns.parquet") for p in sorted((run / d).glob("*.parquet"))]
    doc = json.dumps([__version__, source, profile_to_yaml(profile), devices, target, stamp,
                      (run / "manifest.json").read_text()], default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def resolve_target_loss(target: float | str | None, runs: list[Path]) -> float | None:
    """``auto``: the highest final smoothed training loss of the runs, i.e. the best quality that every
    run reaches, so times-to-target compare methods at equal quality (a number is used as given)."""
    if target != "auto":
        return target
    import numpy as np

    from accelsim import trace as tr
    from accelsim.sim.result import smoothed_loss

    finals = []
    for run in runs:
        loss = tr.read_table(run, "steps")["loss"].to_numpy(zero_copy_only=False).astype(np.float64)
        if len(loss):
            finals.append(float(smoothed_loss(loss)[-1]))
    # rounded up to 4 decimals so the reported number reads cleanly and is still reached by every run
    return float(np.ceil(max(finals) * 1e4) / 1e4) if finals else None


def _simulate_all(runs: list[Path], hardware: list[str], devices: int, target: float | None, bar,
                  only_missing: bool = False) -> tuple[list[str], int]:
    from accelsim.hardware import load_profile
    from accelsim.sim.api import simulate
    from accelsim.trace_check import open_trace as load_trace  # validated, as simulate opens it

    source = _source_digest()
    profiles = [load_profile(h) for h in hardware]
    names, fresh = [], 0
    task = bar.add_task("simulate", total=len(runs) * len(profiles), what="") if bar else None
    for run in runs:
        trace = None
        for profile in profiles:
            name = profile.name if devices == 1 else f"{profile.name}-x{devices}"
            if name not in names:
                names.append(name)
            key = _sim_key(run, profile, devices, target, source)
            key_file = run / "sim" / f"{name}.key"
            if bar:
                bar.update(task, what=f"{run.name} on {name}")
            stored = (run / "sim" / f"{name}.json").is_file()
            if not (stored and (only_missing or (key_file.is_file() and key_file.read_text() == key))):
                trace = trace or load_trace(run)
                simulate(trace, profile, devices=devices, target_loss=target).save(run)
                key_file.write_text(key)
                fresh += 1
            if bar:
                bar.advance(task)
    return names, fresh


def simulate_runs(runs: list[str | Path], hardware: list[str], *, devices: int = 1, target_loss: float | None = None,
                  only_missing: bool = False, progress: bool = True) -> tuple[list[str], int]:
    """Simulate runs on profiles and store ``sim/<hw>.json``; skips results that are up to date (or, with
    ``only_missing``, any stored result). Returns the result names and how many were simulated."""
    with _progress(progress) as bar:
        return _simulate_all([Path(r) for r in runs], hardware, devices, target_loss, bar, only_missing)


def _progress(enabled: bool):
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), TextColumn("{task.fields[what]}"))


def _say(progress: bool, text: str) -> None:
    if progress:
        from rich.console import Console

        Console().print(text)


def run_experiment(exp: Experiment, out: str | Path, *, quick: bool = False, progress: bool = True,
                   report: bool = True) -> ExperimentResult:
    """Train every run of ``exp`` (reusing finished ones), simulate each on every profile, write the report."""
    t0 = time.perf_counter()
    out = Path(out)
    if quick:
        exp = exp.quick_variant()
    exp.validate()
    hardware = exp.hardware_names()
    specs = exp.runs()
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    for i, spec in enumerate(specs, 1):
        run_dir = out / "runs" / spec.name
        _say(progress, f"[bold cyan][{i}/{len(specs)}][/] {spec.name}: {spec.method} at {spec.sparsity:.0%} sparsity, "
                       f"{exp.steps} steps")
        t = time.perf_counter()
        try:
            status = _train_one(train_config(exp, spec, run_dir), progress)
        except KeyboardInterrupt:
            raise UserError(f"interrupted while training {spec.name}; run the same command again to resume "
                            f"it") from None
        outcomes.append(RunOutcome(spec.name, run_dir, status, time.perf_counter() - t))
        if status == "reused":
            _say(progress, "  finished trace found: reused")
    paths = [o.path for o in outcomes]
    target = resolve_target_loss(exp.target_loss, paths)
    names, fresh = simulate_runs(paths, hardware, devices=exp.devices, target_loss=target, progress=progress)
    doc = {"experiment": exp.to_dict(), "quick": quick, "target_loss": target, "hardware": names,
           "runs": [o.name for o in outcomes]}
    (out / "experiment.json").write_text(json.dumps(doc, indent=2))
    files: dict[str, Path] = {}
    if report:
        from accelsim.report import build_report

        _say(progress, "writing the report")
        files = build_report(paths, out, hardware=names, target_loss=target)
    return ExperimentResult(out, exp, quick, outcomes, names, target, fresh, files, time.perf_counter() - t0)


def experiment_to_yaml(exp: Experiment) -> str:
    """YAML text of ``exp`` that :func:`load_experiment` reads back to an equal experiment."""
    return yaml.safe_dump(exp.to_dict(), sort_keys=False)

