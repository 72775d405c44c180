"""Simulator speed: a 1 M-step BERT-base RigL trace on every bundled profile (goal: all in <= 60 s).

Prints, per profile, wall time, simpy events and events/s, pattern epochs and simulated steps/s; then
two scaling series on one profile:

* vs steps at fixed pattern epochs (RigL with repeated pattern statistics: always 2 epochs) -- the
  time should stay flat apart from reading the longer trace;
* vs pattern epochs at fixed steps (bert-mini traces with fresh masks at every change, so every
  change is its own epoch) -- the time should grow linearly with the number of epochs.

Traces are generated once into --cache (default runs/bench-sim) and reused.

    python benchmarks/bench_simulator.py [--profiles all] [--steps 1000000] [--out benchmarks/results/simulator.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from accelsim.hardware import list_profiles
from accelsim.sim.api import simulate_many
from accelsim.sim.schedule import plan_epochs
from accelsim.synth import synth_trace
from accelsim.trace import load_trace


def cached_trace(cache: Path, name: str, **kw) -> tuple[Path, float]:
    out = cache / name
    if (out / "manifest.json").is_file() and (out / "steps.parquet").is_dir():
        return out, 0.0
    t0 = time.perf_counter()
    synth_trace(out=out, overwrite=out.exists(), **kw)
    return out, time.perf_counter() - t0


def timed_simulation(run: Path, profiles: list[str]) -> dict:
    """Wall time of what `accelsim simulate RUN --hw ...` does: load, plan once, simulate each profile."""
    t0 = time.perf_counter()
    trace = load_trace(run)
    t_load = time.perf_counter() - t0
    results = simulate_many(trace, profiles)
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    plan = plan_epochs(trace)  # again, outside the total, to report its share
    return {"wall_s": wall, "load_s": t_load, "plan_s": time.perf_counter() - t1, "epochs": len(plan.epochs),
            "steps": len(plan.steps), "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", default="all", help="comma-separated names or 'all'")
    ap.add_argument("--steps", type=int, default=1_000_000)
    ap.add_argument("--cache", type=Path, default=Path("runs/bench-sim"))
    ap.add_argument("--scaling-profile", default=None, help="profile for the scaling series (default: first)")
    ap.add_argument("--out", type=Path, default=None, help="also write the numbers as JSON")
    args = ap.parse_args()
    profiles = list_profiles() if args.profiles == "all" else args.profiles.split(",")
    report: dict = {"profiles": profiles, "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                      "cpu": platform.processor(), "date": time.strftime("%Y-%m-%d")}}

    run, t_synth = cached_trace(args.cache, f"bert-base-rigl-{args.steps}", model="bert-base", method="rigl",
                                sparsity=0.9, steps=args.steps, update_every=100)
    print(f"synthetic bert-base RigL trace, {args.steps} steps: "
          f"{'cached' if not t_synth else f'generated in {t_synth:.1f} s'} ({run})")
    main_run = timed_simulation(run, profiles)
    print(f"load {main_run['load_s']:.2f} s, plan {main_run['plan_s']:.2f} s, {main_run['epochs']} epochs")
    print(f"{'profile':<22}{'wall s':>9}{'events':>10}{'events/s':>11}{'steps/s':>12}{'speedup':>9}")
    rows = []
    for r in main_run["results"]:
        rate = r.events / r.sim_wall_s if r.sim_wall_s else 0.0
        print(f"{r.hardware:<22}{r.sim_wall_s:>9.2f}{r.events:>10}{rate:>11.3g}{r.steps / r.sim_wall_s:>12.3g}"
              f"{r.speedup:>9.2f}")
        rows.append({"profile": r.hardware, "wall_s": r.sim_wall_s, "events": r.events, "events_per_s": rate,
                     "epochs": r.epochs, "speedup": r.speedup})
    ok = "meets" if main_run["wall_s"] <= 60 else "MISSES"
    print(f"total (load + plan + {len(profiles)} profiles): {main_run['wall_s']:.1f} s -> {ok} the 60 s goal")
    report["main"] = {"steps": args.steps, "wall_s": main_run["wall_s"], "load_s": main_run["load_s"],
                      "plan_s": main_run["plan_s"], "epochs": main_run["epochs"], "per_profile": rows}

    prof = args.scaling_profile or profiles[0]
    print(f"\nscaling on {prof}: vs steps (bert-base RigL, update every 100, 2 epochs)")
    series = []
    for steps in (10_000, 100_000, args.steps):
        r_run, _ = cached_trace(args.cache, f"bert-base-rigl-{steps}", model="bert-base", method="rigl",
                                sparsity=0.9, steps=steps, update_every=100)
        m = timed_simulation(r_run, [prof])
        print(f"  {steps:>9} steps  {m['epochs']:>5} epochs  {m['wall_s']:7.2f} s "
              f"(load {m['load_s']:.2f}, plan {m['plan_s']:.2f}, simulate {m['results'][0].sim_wall_s:.2f})")
        series.append({"steps": steps, "epochs": m["epochs"], "wall_s": m["wall_s"],
                       "sim_s": m["results"][0].sim_wall_s})
    report["vs_steps"] = series

    print(f"scaling on {prof}: vs pattern epochs (bert-mini RigL, 100000 steps, fresh masks at every change)")
    series = []
    for every in (20_000, 5_000, 1_000, 250):
        r_run, _ = cached_trace(args.cache, f"bert-mini-rigl-redraw-{every}", model="bert-mini", method="rigl",
                                sparsity=0.9, steps=100_000, update_every=every, redraw=True)
        m = timed_simulation(r_run, [prof])
        sim_s = m["results"][0].sim_wall_s
        print(f"  update every {every:>6}: {m['epochs']:>5} epochs  simulate {sim_s:7.2f} s "
              f"({1e3 * sim_s / m['epochs']:.1f} ms/epoch)  total {m['wall_s']:.2f} s")
        series.append({"update_every": every, "epochs": m["epochs"], "wall_s": m["wall_s"], "sim_s": sim_s})
    report["vs_epochs"] = series
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
