"""The Ray engine of ``accelsim sweep``: the same trials as Ray tasks, or Ray Tune trials under ASHA.

Ray is optional (``pip install accelsim[ray]``): it is imported only here, only for ``--engine ray``.
A local Ray is started (and stopped) by the command unless ``--address`` names a running cluster.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from accelsim.app.sweep import _result_of, _write_json, run_trial
from accelsim.errors import UserError


def _ray():
    try:
        import ray
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'accelsim[ray]' (or 'ray[tune]')",
                        field="--engine") from None
    return ray


def _driver_paths() -> list[str]:
    """The folders Ray adds to its workers' sys.path (the driver's working and script directories).

    From the repo root that would shadow installed packages (its kernels/ folder hides HF's `kernels`, which
    transformers imports), the same reason the project runs ``python -P``; workers drop them again."""
    return [os.path.abspath(os.curdir), os.path.dirname(os.path.realpath(sys.argv[0] or "."))]


def _trial(spec: dict[str, Any], drop: list[str], report=None) -> dict[str, Any]:
    for p in drop:
        while p in sys.path:
            sys.path.remove(p)
    return run_trial(spec, report)


def run(todo: list[dict[str, Any]], address: str | None, cpus: int | None, asha: dict | None) -> None:
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=cpus if address is None else None, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=True)
    try:
        if asha:
            _run_tune(todo, asha)
        else:
            _run_tasks(ray, todo)
    finally:
        if started:
            ray.shutdown()


def _run_tasks(ray, todo: list[dict[str, Any]]) -> None:
    task = ray.remote(num_cpus=1, max_retries=0)(_trial)
    drop = _driver_paths()
    pending = {task.remote(spec, drop): spec for spec in todo}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            spec = pending.pop(ref)
            try:
                ray.get(ref)  # run_trial wrote result.json itself
            except Exception as err:  # the worker died: the trial is still reported
                _failed(spec, err)


def _failed(spec: dict[str, Any], err: BaseException) -> None:
    res = _result_of(spec)
    res.update(status="failed", error=f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:500])
    _write_json(Path(spec["dir"]) / "result.json", res)


def _run_tune(todo: list[dict[str, Any]], asha: dict) -> None:
    """ASHA (Li et al. 2020) on eval loss: each evaluation is one Tune iteration; a stopped trial is
    recorded as ``stopped`` with its last eval loss, and is not rerun on resume."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    drop = _driver_paths()

    def trainable(config: dict) -> None:
        res = _trial(config["spec"], drop,
                     lambda step, loss: tune.report({"eval_loss": float(loss), "step": int(step)}))
        if res["status"] != "ok":  # Tune needs the metric in every result; a failure reports none
            tune.report({"eval_loss": float("inf"), "step": -1})

    scheduler = ASHAScheduler(metric="eval_loss", mode="min", grace_period=int(asha.get("grace_period", 1)),
                              reduction_factor=float(asha.get("reduction_factor", 2)),
                              max_t=int(asha.get("max_t", 10**6)))  # default: no cap but the run length
    storage = Path(todo[0]["dir"]).parents[1] / "ray_results"
    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": 1}),
                       param_space={"spec": tune.grid_search(todo)},
                       tune_config=tune.TuneConfig(scheduler=scheduler, num_samples=1),
                       run_config=tune.RunConfig(storage_path=str(storage.resolve()), name="asha", verbose=0))
    grid = tuner.fit()
    for res in grid:
        spec = res.config["spec"]
        path = Path(spec["dir"]) / "result.json"
        if path.is_file() and json.loads(path.read_text()).get("status") == "ok":
            continue
        last = (res.metrics or {}).get("eval_loss")
        if res.error is not None:
            _failed(spec, res.error)
            continue
        stopped = _result_of(spec)
        stopped.update(status="stopped", error=f"stopped by ASHA (last eval loss {last})")
        _write_json(path, stopped)

