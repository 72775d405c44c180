"""Issue 20's on-grid check: does the model with the C kernels' structure terms fit a machine's own calibration
grid at least as well as the model it replaced? Refits a bundled CPU profile on its own committed sweep twice,
from the profile as bundled and from the profile with ``row_multiple`` / ``chunk_bytes`` / ``group_bytes`` set
from kernels/cpu/*.c for the sweep machine's ISA (what ``accelsim hw calibrate-local`` does before it fits;
``tail_penalty`` is then fitted where a training point has a partial row tile), and writes both held-out errors
(the sweep's own one-in-five split) with the fitted profiles. ~2.5 min for cpu-zen3 on 2 cores.

    python -P benchmarks/refit_structure_terms.py [--hw cpu-zen3] [--sweep benchmarks/results/zen3/kernels-sweep.json]
        [--out benchmarks/results/zen3/structure-terms]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import yaml

from accelsim.hardware import load_profile, load_profile_text
from accelsim.hardware.profile import profile_to_dict
from accelsim.kernels.calibrate import calibrate
from accelsim.kernels.local import _structure_terms
from accelsim.kernels.records import read_measurements


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hw", default="cpu-zen3")
    ap.add_argument("--sweep", default="benchmarks/results/zen3/kernels-sweep.json")
    ap.add_argument("--out", default="benchmarks/results/zen3/structure-terms")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sweep_machine = read_measurements(args.sweep).machine
    bundled = load_profile(args.hw)
    summary = {"profile": args.hw, "sweep": args.sweep, "sweep_machine": sweep_machine,
               "note": "a fit of committed measurements: deterministic, no timing on the machine that runs it",
               "bundled_heldout_mape": (bundled.fitted or {}).get("heldout_mape"), "variants": {}}
    for variant in ("as_bundled", "structure_terms"):
        d = profile_to_dict(bundled)
        d.pop("fitted", None)
        if variant == "structure_terms":
            d["sources"].update(_structure_terms(d, sweep_machine))
        base = out / f"base-{variant}.yaml"
        base.write_text(yaml.safe_dump(d, sort_keys=False, width=120))
        load_profile_text(base.read_text(), source=str(base))  # checked before the fit spends minutes on it
        t0 = time.perf_counter()
        fitted = calibrate(args.sweep, base, out / f"fitted-{variant}.yaml").fitted
        summary["variants"][variant] = {k: fitted.get(k) for k in ("heldout_mape", "heldout_mape_raw", "n_heldout",
                                                                     "train_mape", "n_points")}
        summary["variants"][variant]["fit_wall_s"] = time.perf_counter() - t0
        v = summary["variants"][variant]
        print(f"{variant}: held-out MAPE {v['heldout_mape']:.2%} over {v['n_heldout']} cases "
              f"(unpaired {v['heldout_mape_raw']:.2%})", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"wrote {out / 'summary.json'}")


if __name__ == "__main__":
    main()
