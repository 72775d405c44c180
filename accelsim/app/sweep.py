"""``accelsim sweep SWEEP.yaml``: many trials of (method x sparsity x pattern x model) on listed hardware.

A sweep file names a grid (or random samples) of trainer settings; each trial trains a tiny model (or
writes a synthetic trace) and simulates it on every listed profile. Results: one Parquet table (one row
per trial x profile, the same columns whatever the engine) and a report page (sweep_report.py).

Engines run the same :func:`run_trial`: ``local`` (a process pool, needs nothing running) or ``ray``
(Ray tasks on a local Ray started here, or on a cluster given by ``--address``; with ``asha:`` in the
file, Ray Tune's ASHA scheduler stops trials whose eval loss lags). A trial that raises is recorded with
its error and the sweep goes on; every finished trial leaves ``trials/<id>/result.json``, so a rerun
of an interrupted sweep skips the trials that succeeded (failed ones are tried again).

Objective (hardware-aware search): ``objective: {profile, target_loss, minimise: time|energy}`` ranks
trials by simulated time (or energy) until the eval loss first reaches ``target_loss`` on that profile.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from accelsim.errors import UserError, expect

#: The table's columns, in order: both engines write exactly these (tests compare schemas).
COLUMNS = ("trial", "status", "error", "params", "method", "sparsity", "hw", "devices", "steps",
           "final_loss", "loss_source", "sim_time_s", "sim_energy_j", "speedup", "time_to_target_s",
           "energy_to_target_j", "trial_wall_s", "run")
MODES = ("train", "synth")
SEARCHES = ("grid", "random")
ENGINES = ("local", "ray")
#: synth_trace's keyword arguments a trial may set (the rest of a synthetic run is fixed by the generator)
SYNTH_KEYS = ("model", "method", "sparsity", "steps", "update_every", "batch_size", "seq_len", "distribution",
              "drop_fraction", "end_fraction", "block_size", "seed")


@dataclass
class Objective:
    profile: str  # the hardware the search is for: other profiles are simulated but do not rank trials
    target_loss: float  # eval loss a trial must reach (synthetic trials: their power-law train loss)
    minimise: str = "time"  # "time" or "energy" until the target: what the hardware buyer pays for


@dataclass
class SweepConfig:
    profiles: list[str]  # every trial is simulated on each: the table is per trial x profile
    space: dict[str, Any]  # setting -> list of values (grid, random choice) or {low, high, log} (random)
    fixed: dict[str, Any] = field(default_factory=dict)  # settings shared by every trial
    mode: str = "train"  # "train": real (tiny) runs with measured eval loss; "synth": no training, power-law loss
    search: str = "grid"
    samples: int = 4  # random search: trials drawn
    seed: int = 0  # random search: the draw, so a rerun resumes the same trials
    devices: int = 1  # data-parallel devices the simulator splits each batch over
    workers: int = 2  # local engine: processes; one trial per process (the trainer is single-threaded here)
    out: str = ""  # where trials, table and report go; default runs/sweeps/<file stem>
    objective: Objective | None = None
    asha: dict[str, Any] | None = None  # ray engine: {grace_period, reduction_factor, max_t} in evaluations

    @classmethod
    def load(cls, path: Path) -> "SweepConfig":
        import yaml

        path = Path(path)
        expect(path.is_file(), "no such sweep file", source=path)
        try:
            from accelsim.hardware.strict_yaml import load as strict_load  # safe_load, duplicate keys refused

            raw = strict_load(path.read_text(encoding="utf-8"), str(path))
        except (RecursionError, UnicodeDecodeError) as err:
            raise UserError(f"not a loadable YAML document ({err.__class__.__name__})", source=path) from None
        except yaml.YAMLError as err:
            raise UserError(f"not valid YAML ({str(err).splitlines()[0]})", source=path) from None
        expect(isinstance(raw, dict), "expected a mapping of sweep settings", source=path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        expect(not unknown, f"unknown keys {unknown}; expected some of {sorted(known)}", source=path)
        expect("profiles" in raw and "space" in raw, "expected 'profiles' and 'space'", source=path)
        obj = raw.get("objective")
        if obj is not None:
            expect(isinstance(obj, dict) and {"profile", "target_loss"} <= set(obj) and set(obj) <= {
                "profile", "target_loss", "minimise"}, "expected {profile, target_loss, minimise}", source=path,
                field="objective")
            raw["objective"] = Objective(**obj)
        cfg = cls(**raw)
        cfg.check(path)
        if not cfg.out:
            cfg.out = str(Path("runs") / "sweeps" / path.stem)
        return cfg

    def check(self, src: Path) -> None:
        from accelsim.hardware import list_profiles, load_profile

        expect(isinstance(self.profiles, list) and self.profiles, "expected a list of profile names", source=src,
               field="profiles")
        for p in self.profiles:
            try:  # names, aliases and YAML paths, as `accelsim simulate --hw` takes them
                load_profile(str(p))
            except UserError:
                raise UserError(f"unknown profile {p!r}; bundled: {', '.join(list_profiles())}", source=src,
                                field="profiles") from None
        expect(self.mode in MODES, f"expected one of {MODES}", source=src, field="mode")
        expect(self.search in SEARCHES, f"expected one of {SEARCHES}", source=src, field="search")
        expect(isinstance(self.space, dict) and self.space, "expected a mapping of settings", source=src,
               field="space")
        expect(isinstance(self.fixed, dict), "expected a mapping of settings", source=src, field="fixed")
        allowed = _allowed_keys(self.mode)
        for where, keys in (("space", self.space), ("fixed", self.fixed)):
            bad = sorted(set(keys) - allowed)
            expect(not bad, f"unknown settings {bad} for mode {self.mode}; expected some of {sorted(allowed)}",
                   source=src, field=where)
        for key, values in self.space.items():
            ok = (isinstance(values, list) and values) or (self.search == "random" and isinstance(values, dict)
                                                            and {"low", "high"} <= set(values))
            expect(bool(ok), "expected a non-empty list" + (" or {low, high, log}" if self.search == "random" else ""),
                   source=src, field=f"space.{key}")
        for name in ("samples", "devices", "workers"):
            value = getattr(self, name)
            expect(isinstance(value, int) and value >= 1, "expected a positive integer", source=src, field=name)
        if self.objective is not None:
            expect(self.objective.profile in self.profiles, "expected one of the sweep's profiles", source=src,
                   field="objective.profile")
            expect(self.objective.minimise in ("time", "energy"), "expected time or energy", source=src,
                   field="objective.minimise")
            expect(isinstance(self.objective.target_loss, (int, float)), "expected a number", source=src,
                   field="objective.target_loss")
        if self.asha is not None:
            expect(self.mode == "train", "ASHA stops on eval loss: needs mode train", source=src, field="asha")
            expect(isinstance(self.asha, dict) and set(self.asha) <= {"grace_period", "reduction_factor", "max_t"},
                   "expected {grace_period, reduction_factor, max_t} (in evaluations)", source=src, field="asha")

    def trials(self) -> list[dict[str, Any]]:
        """Every trial's settings (``fixed`` overlaid by the trial's own), in a reproducible order."""
        if self.search == "grid":
            keys = list(self.space)
            combos = [dict(zip(keys, vals)) for vals in itertools.product(*(self.space[k] for k in keys))]
        else:
            rng = np.random.default_rng(self.seed)
            combos = [{k: _draw(rng, v) for k, v in self.space.items()} for _ in range(self.samples)]
        return [{**self.fixed, **c} for c in combos]


def _draw(rng: np.random.Generator, spec: Any) -> Any:
    if isinstance(spec, list):
        return spec[int(rng.integers(len(spec)))]
    low, high = float(spec["low"]), float(spec["high"])
    if spec.get("log"):
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return float(rng.uniform(low, high))


def _allowed_keys(mode: str) -> set[str]:
    if mode == "synth":
        return set(SYNTH_KEYS)
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig

    return ({f.name for f in dataclasses.fields(TrainConfig)} - {"data", "sparsity", "out"}) | {
        f.name for f in dataclasses.fields(SparsityConfig)} | {f.name for f in dataclasses.fields(DataConfig)}


def trial_id(params: dict[str, Any]) -> str:
    """Named by its settings, not its position: reordering the file still resumes the right trials."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:10]


# ------------------------------------------------------------------------------------------ one trial
def run_trial(spec: dict[str, Any], report: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train (or synthesise) and simulate one trial; never raises: a failure is a result with its error.

    ``spec``: trial, params, mode, profiles, devices, dir, target_loss. ``report(step, eval_loss)`` is
    called at each evaluation (Ray Tune's ASHA reads it)."""
    t0 = time.perf_counter()
    run = Path(spec["dir"]) / "run"
    base = _identity(spec)
    try:
        if spec["mode"] == "train":
            _train(spec["params"], run, report)
        else:
            _synth(spec["params"], run)
        rows = _simulate(run, spec["profiles"], spec["devices"], spec.get("target_loss"))
        result = {"status": "ok", "error": "", "rows": rows}
    except Exception as err:  # a failed trial is a result; the sweep goes on
        if type(err).__name__ in ("StopTrial", "TuneStopTrial"):
            raise
        message = str(err).splitlines()[0] if str(err) else ""
        result = {"status": "failed", "error": f"{type(err).__name__}: {message}"[:500], "rows": [],
                  "traceback": traceback.format_exc(limit=8)}
    result.update(base, trial_wall_s=time.perf_counter() - t0)
    _write_json(Path(spec["dir"]) / "result.json", result)
    return result


def _train(params: dict[str, Any], run: Path, report) -> None:
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.sparsity import SparsityConfig
    from accelsim.trainer.train import TrainConfig, train

    groups: dict[str, dict] = {"data": {}, "sparsity": {}, "top": {}}
    data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    sp_keys = {f.name for f in dataclasses.fields(SparsityConfig)}
    for k, v in params.items():
        groups["data" if k in data_keys else "sparsity" if k in sp_keys else "top"][k] = v
    cfg = TrainConfig(out=str(run), data=DataConfig(**groups["data"]), sparsity=SparsityConfig(**groups["sparsity"]),
                      **groups["top"])
    on_step = None
    if report is not None:
        def on_step(step: int, metrics: dict) -> None:
            if "eval_loss" in metrics:
                report(step, metrics["eval_loss"])
    # a run the sweep was killed in continues from its checkpoint (or restarts if it had none)
    train(cfg, resume=(run / "manifest.json").exists(), progress=False, on_step=on_step)


def _synth(params: dict[str, Any], run: Path) -> None:
    from accelsim.synth import synth_trace

    synth_trace(out=run, overwrite=True, **params)


def _quality(trace) -> tuple[np.ndarray, np.ndarray, str]:
    """(steps, loss) the target is judged on: the eval loss, or the synthetic power law of a synth trace."""
    ev = trace.eval
    if ev.num_rows:
        return ev["step"].to_numpy(), ev["eval_loss"].to_numpy(), "eval"
    return trace.steps["step"].to_numpy(), trace.steps["loss"].to_numpy(), "synthetic" if \
        trace.manifest.synthetic else "train"


def _simulate(run: Path, profiles: list[str], devices: int, target: float | None) -> list[dict]:
    from accelsim.sim.api import simulate_many
    from accelsim.trace import load_trace

    trace = load_trace(run)
    q_steps, q_loss, source = _quality(trace)
    rows = []
    for r in simulate_many(trace, profiles, devices):
        r.save(run)  # sim/<hw>.json and the per-step timeline, as `accelsim simulate` leaves them
        t = np.cumsum(r.timeline["time_s"])
        e = np.cumsum(r.timeline["energy_j"])
        steps = np.asarray(r.timeline["step"])
        t_hit = e_hit = None
        if target is not None:
            hit = np.nonzero(q_loss <= target)[0]
            if hit.size:
                i = min(int(np.searchsorted(steps, q_steps[hit[0]])), len(steps) - 1)
                t_hit, e_hit = float(t[i]), float(e[i])
        rows.append({"hw": r.hardware, "devices": devices, "steps": int(r.steps), "final_loss": float(q_loss[-1]),
                     "loss_source": source, "sim_time_s": float(r.time_s), "sim_energy_j": float(r.energy_j),
                     "speedup": float(r.speedup), "time_to_target_s": t_hit, "energy_to_target_j": e_hit})
    return rows


def _identity(spec: dict[str, Any]) -> dict[str, Any]:
    """The fields of a trial's result that come from its spec alone (a finished or a missing trial)."""
    return {"trial": spec["trial"], "params": json.dumps(spec["params"], sort_keys=True, default=str),
            "method": str(spec["params"].get("method", "dense")),
            "sparsity": float(spec["params"].get("sparsity", 0.0)), "run": str(Path(spec["dir"]) / "run")}


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------ the sweep
@dataclass
class SweepOutcome:
    out: Path
    table: Path
    report: Path
    ran: list[str]  # trials run by this invocation (the others were finished before)
    failed: list[str]


def plan(cfg: SweepConfig) -> list[dict[str, Any]]:
    out = Path(cfg.out)
    target = cfg.objective.target_loss if cfg.objective else None
    # absolute: Ray Tune runs each trial in its own working directory
    return [{"trial": trial_id(p), "params": p, "mode": cfg.mode, "profiles": list(cfg.profiles),
             "devices": cfg.devices, "dir": str((out / "trials" / trial_id(p)).resolve()), "target_loss": target}
            for p in cfg.trials()]


def finished(spec: dict[str, Any]) -> dict[str, Any] | None:
    path = Path(spec["dir"]) / "result.json"
    if not path.is_file():
        return None
    try:
        res = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # cut short mid-write (never: written by rename) or damaged: run it again
    return res if res.get("status") in ("ok", "stopped") else None  # ASHA's stops are decisions, not faults


def run_sweep(cfg: SweepConfig, engine: str = "local", address: str | None = None,
              cpus: int | None = None) -> SweepOutcome:
    from accelsim.app import sweep_report

    expect(engine in ENGINES, f"expected one of {ENGINES}", field="--engine")
    expect(cfg.asha is None or engine == "ray", "ASHA early stopping runs on Ray Tune: add --engine ray",
           field="asha")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan(cfg)
    todo = [s for s in specs if finished(s) is None]
    if todo and engine == "local":
        _run_local(todo, cfg.workers)
    elif todo:
        from accelsim.app import sweep_ray

        sweep_ray.run(todo, address, cpus, cfg.asha)
    results = [_result_of(s) for s in specs]
    table = sweep_report.write_table(results, out / "results.parquet")
    report = sweep_report.write_report(out, cfg, table)
    return SweepOutcome(out, out / "results.parquet", report, [s["trial"] for s in todo],
                        [r["trial"] for r in results if r["status"] != "ok"])


def _result_of(spec: dict[str, Any]) -> dict[str, Any]:
    path = Path(spec["dir"]) / "result.json"
    if path.is_file():
        return json.loads(path.read_text())
    return {**_identity(spec), "status": "failed", "error": "the trial did not finish", "rows": [],
            "trial_wall_s": None}


def _run_local(todo: list[dict[str, Any]], workers: int) -> None:
    """A spawn pool: each trial in a fresh process (torch's threads and fork do not mix)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(run_trial, s): s for s in todo}
        for fut in as_completed(futures):
            err = fut.exception()
            if err is not None:  # the worker process died (killed, out of memory): still a result
                spec = futures[fut]
                res = _result_of(spec)
                res.update(status="failed", error=f"{type(err).__name__}: {err}"[:500])
                _write_json(Path(spec["dir"]) / "result.json", res)
