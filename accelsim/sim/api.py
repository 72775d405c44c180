"""``simulate(trace, profile)``: a whole training run on hardware, pattern epoch by pattern epoch.

Cost grows with the number of distinct pattern epochs, not with steps: each epoch (same quantised
patterns, same step kind) is simulated once and multiplied by its step count; the per-step timeline
is then expanded with numpy indexing. ``memoize=False`` simulates every step and every op afresh
(the brute-force reference the tests compare against).

Data parallelism is strong scaling: the trace's batch is the global batch, split over ``devices``
replicas (``ceil(batch / devices)`` sequences each), so the trace's loss curve still applies step for
step and time-to-target-loss is meaningful.
"""
from __future__ import annotations

import dataclasses
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable

import numpy as np

from accelsim.errors import expect
from accelsim.sim.device import CostFn, DeviceSpec
from accelsim.sim.engine import OpSimulator, StepTiming, simulate_step
from accelsim.sim.result import SimResult, time_to_target
from accelsim.sim.schedule import EpochPlan, Quantization, dense_plan, plan_epochs, plan_per_step
from accelsim.trace import PHASES, Manifest, Trace
from accelsim.trace_check import open_trace
from accelsim.workload import dense_params, step_ops


def simulate(trace: Trace | str | Path, profile, devices: int = 1, target_loss: float | None = None, *,
             memoize: bool = True, quant: Quantization = Quantization()) -> SimResult:
    """Simulate a run directory (or loaded trace) on a hardware profile (name, path or profile)."""
    return simulate_many(trace, [profile], devices, target_loss, memoize=memoize, quant=quant)[0]


def simulate_many(trace: Trace | str | Path, profiles: Iterable, devices: int = 1,
                  target_loss: float | None = None, *, memoize: bool = True,
                  quant: Quantization = Quantization()) -> list[SimResult]:
    """Simulate one trace on several profiles, loading and planning the trace once."""
    from accelsim.hardware import load_profile

    loaded = [load_profile(p) for p in profiles]  # a bad name fails before any work is done
    trace = trace if isinstance(trace, Trace) else open_trace(trace)
    plan = plan_epochs(trace, quant) if memoize else plan_per_step(trace, quant)
    results = [simulate_device(trace, DeviceSpec.from_profile(p), ProfileCost(p), devices, target_loss,
                               plan=plan, memoize=memoize) for p in loaded]
    for p, r in zip(loaded, results):  # never print a confident "nan s"
        expect(math.isfinite(r.time_s) and math.isfinite(r.energy_j) and r.time_s >= 0,
               f"simulation gave a non-finite result (time {r.time_s}, energy {r.energy_j}); check the "
               f"profile's rates and sizes", source=p.name)
    return results


class ProfileCost:
    """The hardware package's cost model, bound per epoch to whether the training state (at that
    epoch's densities and per-device batch) stays resident in on-chip SRAM."""

    def __init__(self, profile):
        self.profile = profile

    def bind(self, manifest: Manifest, densities: dict[str, float]) -> tuple[bool, CostFn]:
        from accelsim.hardware import fits_on_chip, op_cost

        resident = bool(fits_on_chip(self.profile, manifest, densities))

        def cost(op, pattern):
            return op_cost(self.profile, op, pattern, resident=resident)
        return resident, cost


def _bind(cost, manifest: Manifest, densities: dict[str, float]):
    """(context, cost function) for one epoch; a bare cost function has no context."""
    return cost.bind(manifest, densities) if hasattr(cost, "bind") else (None, cost)


def simulate_device(trace: Trace, device: DeviceSpec, cost: CostFn | ProfileCost, devices: int = 1,
                    target_loss: float | None = None, *, plan: EpochPlan | None = None,
                    memoize: bool = True) -> SimResult:
    """The engine on an explicit device model and cost function (what tests drive directly)."""
    device.check_devices(devices)
    wall = time.perf_counter()
    plan = plan if plan is not None else plan_epochs(trace)
    man = trace.manifest
    expect(devices <= man.batch_size, f"cannot split a batch of {man.batch_size} over {devices} devices",
           field="devices")
    per_device = dataclasses.replace(man, batch_size=math.ceil(man.batch_size / devices))
    rest = float(dense_params(man))
    opsim = OpSimulator(device, cost, memoize=memoize)

    def run(epoch) -> StepTiming:
        context, fn = _bind(cost, per_device, epoch.densities)
        opsim.bind(fn, context)
        return simulate_step(step_ops(per_device, epoch.densities, epoch.kind), epoch.patterns, opsim, devices,
                             rest)

    timings = [run(e) for e in plan.epochs]
    dense_t = run(dense_plan(trace).epochs[0])
    return _result(trace, device, devices, target_loss, plan, timings, dense_t, opsim, wall)


def _result(trace, device, devices, target_loss, plan, timings: list[StepTiming], dense_t: StepTiming,
            opsim, wall) -> SimResult:
    counts = plan.counts.astype(np.float64)
    ep_time = np.array([t.time_s for t in timings])
    ep_energy = np.array([t.energy_j for t in timings])
    step_time, step_energy = ep_time[plan.epoch_of_step], ep_energy[plan.epoch_of_step]
    total_t = float(counts @ ep_time)
    total_e = float(counts @ ep_energy)
    n = len(plan.steps)
    cum = np.cumsum(step_time)
    loss = trace.steps["loss"].to_numpy(zero_copy_only=False).astype(np.float64)
    t_target, s_target = time_to_target(loss, cum, plan.steps, target_loss)
    busy = _weighted(timings, counts, "busy")
    util = {"compute": busy.get("compute", 0.0) / (device.engines * total_t) if total_t else 0.0,
            "memory": busy.get("memory", 0.0) / total_t if total_t else 0.0,
            "link": busy.get("link", 0.0) / total_t if total_t else 0.0}
    flops = float(sum(c * t.flops for c, t in zip(counts, timings)))
    util["flops"] = flops / (device.peak_flops * total_t) if total_t else 0.0
    paths: dict[str, set] = defaultdict(set)
    for t in timings:
        for name, p in t.paths.items():
            paths[name].add(p)
    dense_time, dense_energy = dense_t.time_s * n, dense_t.energy_j * n
    man = trace.manifest
    trace_flops = float(sum(trace.steps[f"flops_{ph}"].to_numpy().sum() for ph in PHASES))
    return SimResult(
        hardware=device.name, kind=device.kind, devices=devices, run=str(trace.path),
        method=str(man.method.get("name")), synthetic=bool(man.synthetic), steps=n, epochs=len(timings),
        time_s=total_t, energy_j=total_e, dense_time_s=dense_time, dense_energy_j=dense_energy,
        speedup=dense_time / total_t if total_t else float("nan"),
        energy_ratio=total_e / dense_energy if dense_energy else float("nan"),
        by_kind=_breakdown(timings, counts, "by_kind"), by_layer=_breakdown(timings, counts, "by_layer"),
        by_unit=_weighted(timings, counts, "units"), energy_parts=_weighted(timings, counts, "energy"),
        utilisation=util, flops_executed=flops, flops_trace=trace_flops, target_loss=target_loss,
        time_to_target_s=t_target, step_at_target=s_target, paths={k: sorted(v) for k, v in paths.items()},
        sim_wall_s=time.perf_counter() - wall,
        events=opsim.events + sum(t.events for t in timings) + dense_t.events,
        timeline={"step": plan.steps.astype(np.int64), "time_s": step_time, "energy_j": step_energy,
                  "epoch": plan.epoch_of_step.astype(np.int32)})


def _weighted(timings: list[StepTiming], counts: np.ndarray, attr: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for c, t in zip(counts, timings):
        for k, v in getattr(t, attr).items():
            out[k] += c * v
    return dict(out)


def _breakdown(timings: list[StepTiming], counts: np.ndarray, attr: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for c, t in zip(counts, timings):
        for k, (sec, joules) in getattr(t, attr).items():
            rec = out.setdefault(k, {"time_s": 0.0, "energy_j": 0.0})
            rec["time_s"] += c * sec
            rec["energy_j"] += c * joules
    return out
