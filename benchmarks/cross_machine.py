"""How far a CPU profile carries to another CPU: every committed 2-thread CPU profile scored on every
committed 2-thread kernel sweep, its own machine's and the other's (whole machines held out).

For each (profile, sweep) pair, ``accelsim validate``'s machinery (kernels.validation.validate): the
absolute-time MAPE, and the sparse speedups over dense on the sweep's machine, measured vs predicted
(median |log error|, share within 1.35x: the metric of the published-measurement check). On the sweep a
profile was fitted to, only its held-out points are scored. Only sweeps timed with the same kernel sources
as the profile's own sweep are paired (a kernel rewritten between sweeps would be a different machine
*and* different code). No timing happens here: the inputs are committed files.

    python benchmarks/cross_machine.py   # seconds; writes benchmarks/results/cross-machine/cross-machine.json
"""
from __future__ import annotations

import json
import platform
from datetime import date
from pathlib import Path

from accelsim.hardware import load_profile
from accelsim.kernels.records import read_measurements
from accelsim.kernels.validation import validate

ROOT = Path(__file__).resolve().parent.parent
R = "benchmarks/results"
#: the 2-thread CPU profiles fitted to committed sweeps of the current kernel sources
PROFILES = ("hwconfigs/cpu-zen3.yaml", f"{R}/zen5-f26m2/cpu-zen5-f26m2-full.yaml")
#: committed 2-thread sweeps: the Zen 3's, the Zen 5's wide off-shape grid, and its calibrate-local grid
SWEEPS = (f"{R}/zen3/kernels-sweep.json", f"{R}/zen5-f26m2/offshape/2threads/sweep.json",
          f"{R}/zen5-f26m2/calibrate-2thread/kernels-sweep.json")
THREADS = 2


def _machine(doc_machine: dict) -> str:
    flags = doc_machine.get("isa_flags") or []
    return (f"{doc_machine.get('cpu_model', '?')} family/model {doc_machine.get('cpu_family_model', '?')}"
            + (", AVX-512" if "avx512f" in flags else ", no AVX-512"))


def main() -> None:
    pairs = []
    for prof_path in PROFILES:
        prof = load_profile(str(ROOT / prof_path))
        own = (prof.fitted or {}).get("measurements")
        own_doc = read_measurements(ROOT / own)
        for sweep in SWEEPS:
            doc = read_measurements(ROOT / sweep)
            if doc.machine.get("kernel_sources") != own_doc.machine.get("kernel_sources"):
                print(f"skip {prof_path} on {sweep}: other kernel sources")
                continue
            rep = validate(ROOT / sweep, ROOT / prof_path, threads=THREADS)
            same_machine = doc.machine.get("cpu_family_model") == own_doc.machine.get("cpu_family_model")
            sp = rep["speedup"]
            pairs.append({"profile": prof_path, "profile_machine": _machine(own_doc.machine),
                          "sweep": sweep, "sweep_machine": _machine(doc.machine), "same_machine": same_machine,
                          "mode": rep["mode"], "points": rep["n_points"],
                          "time_mape": round(rep["overall_mape"]["mape"], 4),
                          "speedup": {k: sp[k] for k in ("n", "median_abs_log_err", "within_1.35x", "median_ratio")},
                          "speedup_by_path": sp["by_path"]})
            print(f"{prof_path} on {sweep}: {'same' if same_machine else 'OTHER'} machine, time MAPE "
                  f"{rep['overall_mape']['mape']:.3f}, speedup median |log err| {sp['median_abs_log_err']}, "
                  f"within 1.35x {sp['within_1.35x']} ({sp['n']} points)")
    out = ROOT / R / "cross-machine" / "cross-machine.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": str(date.today()), "machine": platform.node() + " " + platform.machine(),
                               "threads": THREADS, "pairs": pairs}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
