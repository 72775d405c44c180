"""The end-to-end check of issue 17 on more profiles: `accelsim simulate` (the same API) on every trace that
benchmarks/bench_sparse_training.py kept (--keep), against the whole-run time it measured.

Adds ``predicted_by_profile`` to each variant of the results file: per profile the predicted whole-run
time, its error against the measured one, the predicted speedup over dense and that speedup's error, for a
run with mask updates the time an update adds to a step, simulated and measured, and the cost model's time per
workload phase of the run's most common step (``phase_s``; compare with the bench's ``median_phase_s``: forward
~ fwd, backward ~ bwd_input + bwd_weight, optimizer ~ optimizer + mask_update less the format rebuild, which the
bench times after the optimizer). Adds ``step_spread`` too: the measured steps' slowest over their median, apart
for the steps right after each start or restart of the benchmark's chunks.

    python benchmarks/simulate_sparse_training.py benchmarks/results/zen5-f26m2/sparse-training.json \
        runs/i17-bench --hw cpu-zen3,runs/i17-calib/cpu-f26m2-i17.yaml
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def update_extra(step_s) -> float:
    """Simulated time a mask update adds to a step: the median update step's over the median step (the trace's
    update steps are the few steps above the rest; step 0's warm-up is not simulated)."""
    import numpy as np

    base = float(np.median(step_s))
    longer = step_s[step_s > 1.02 * base]
    return float(np.median(longer)) - base if len(longer) else 0.0


def step_op_costs(run: Path, hw: str) -> list[tuple[object, float]]:
    """(op, cost-model seconds) of every op of the run's most common step (the epoch with the most steps: its
    densities and pattern statistics), priced as the simulator prices them."""
    from accelsim import trace as tr
    from accelsim.hardware import fits_on_chip, load_profile, op_cost
    from accelsim.sim.schedule import plan_epochs
    from accelsim.workload import step_ops

    profile, trace = load_profile(hw), tr.load_trace(run)
    epoch = max(plan_epochs(trace).epochs, key=lambda e: e.count)
    resident = bool(fits_on_chip(profile, trace.manifest, epoch.densities))
    return [(op, op_cost(profile, op, epoch.patterns.get(op.layer) if op.layer else None, resident=resident).time_s)
            for op in step_ops(trace.manifest, epoch.densities, epoch.kind)]


def phase_times(run: Path, hw: str) -> dict[str, float]:
    """Cost-model seconds per workload phase of the run's most common step (the format rebuild apart)."""
    from collections import defaultdict

    from accelsim.workload import FORMAT_BUILD

    out: dict[str, float] = defaultdict(float)
    for op, t in step_op_costs(run, hw):
        out["format_rebuild" if op.role == FORMAT_BUILD else op.phase] += t
    return dict(out)


def step_spread(run: Path, chunk: int) -> dict[str, float]:
    """How the run's measured steps spread (the trace's wall_s, mask-update steps left out unless every step updates):
    the slowest step over the median, apart for the first two steps after each start or restart of the
    benchmark's chunks (every ``chunk`` steps), whose warm-up a whole-run prediction does not model."""
    import numpy as np
    from accelsim import trace as tr

    steps = tr.load_trace(run).steps
    wall, update = steps["wall_s"].to_numpy(), steps["mask_changed"].to_numpy()
    plain = ~update if not update.all() else np.ones_like(update)
    median = float(np.median(wall[plain]))
    restart = np.isin(np.arange(len(wall)) % chunk, (0, 1))
    return {"median_s": median,
            "restart_max_over_median": float(wall[plain & restart].max() / median),
            "other_max_over_median": float(wall[plain & ~restart].max() / median)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("traces")
    ap.add_argument("--hw", required=True, help="comma-separated profiles (names or YAML files)")
    a = ap.parse_args()
    from accelsim import simulate
    from accelsim.hardware import load_profile
    from accelsim.kernels.machine import machine_mismatch

    res = json.loads(Path(a.results).read_text())
    variants = res["variants"]
    for hw in a.hw.split(","):
        sims = {n: simulate(Path(a.traces) / n, hw) for n in variants}
        pred = {n: s.time_s for n, s in sims.items()}
        dense = pred.get("dense")
        for n, r in variants.items():
            r["step_spread"] = step_spread(Path(a.traces) / n, res["chunk"])
            p = {"run_s": pred[n], "run_error": pred[n] / r["measured_run_s"] - 1}
            p["phase_s"] = phase_times(Path(a.traces) / n, hw)
            # what a mask update adds to a step, measured (medians) and simulated; a method that updates every
            # step (N:M) has no plain step to compare with
            if r.get("update_steps") and r["update_steps"] < r["steps"]:
                p["update_extra_s"] = update_extra(sims[n].timeline["time_s"])
                p["update_extra_measured_s"] = r["median_update_step_s"] - r["median_step_s"]
            if dense:
                p["speedup"] = dense / pred[n]
                p["speedup_error"] = p["speedup"] / r["speedup_run_measured"] - 1
            r.setdefault("predicted_by_profile", {})[hw] = p
        fitted = (load_profile(hw).fitted or {}).get("machine")
        res.setdefault("profiles", {})[hw] = {"fitted_machine_mismatch": machine_mismatch(fitted)}
        print(f"\n{hw}")
        print(f"{'variant':22s} {'run s':>7s} {'pred s':>7s} {'err':>7s} {'x meas':>7s} {'x pred':>7s} {'err':>7s} "
              f"{'update +s meas':>14s} {'pred':>6s}")
        for n, r in variants.items():
            p = r["predicted_by_profile"][hw]
            print(f"{n:22s} {r['measured_run_s']:7.1f} {p['run_s']:7.1f} {100 * p['run_error']:6.1f}% "
                  f"{r.get('speedup_run_measured', float('nan')):7.2f} {p.get('speedup', float('nan')):7.2f} "
                  f"{100 * p.get('speedup_error', float('nan')):6.1f}% "
                  f"{p.get('update_extra_measured_s', float('nan')):14.3f} "
                  f"{p.get('update_extra_s', float('nan')):6.3f}")
    Path(a.results).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
