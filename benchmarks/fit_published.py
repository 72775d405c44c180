"""Fit gpu-a100, gpu-h100 and ipu-gc200's sparse paths to benchmarks/published/points.csv (issue 16).

Runs kernels.published_fit per profile (leave-one-source-out and leave-one-author-group-out held-out
error, then the fit to every current-software row), writes the fitted paths and their provenance into
hwconfigs/<name>.yaml (only those lines; ``fitted:`` lists each path's dataset rows), and the results under
benchmarks/results/published/: fit.json (parameters, in-sample and held-out error per profile and path)
and heldout.png (held-out predictions vs published). ~3 min on 2 cores.

    python benchmarks/fit_published.py [--profiles gpu-a100,ipu-gc200] [--no-write]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import subprocess
from datetime import date
from pathlib import Path

from accelsim.hardware import load_profile, load_profile_text
from accelsim.hardware.params import PATH_PARAMS
from accelsim.kernels import published_blocks as blocks
from accelsim.kernels.published import author_group
from accelsim.kernels.published_fit import NARROWED, NEW_PATHS, fit_profile
from accelsim.kernels.published_validate import cluster_interval, error_stats, plot_predictions
from accelsim.kernels.profile_edit import write_profile

ROOT = Path(__file__).resolve().parent.parent
#: every fit starts from the hand-set profiles as committed before the first published fit, so a rerun
#: neither starts from its own previous output nor lets a held-out source leak in through it
HANDSET_COMMIT = "4c00e80"


def handset(name: str):
    text = subprocess.run(["git", "-C", str(ROOT), "show", f"{HANDSET_COMMIT}:hwconfigs/{name}.yaml"],
                          capture_output=True, text=True, check=True).stdout
    return load_profile_text(text, source=f"hwconfigs/{name}.yaml at {HANDSET_COMMIT}")
PROFILES = ("gpu-a100", "gpu-h100", "ipu-gc200")
PARAM_NAMES = {"peak_fraction": "peak fraction", "d_half": "d_half", "exponent": "exponent", "overhead": "per-call overhead"}


def _provenance(name: str, fit, pf) -> dict[str, str]:
    held = fit.held_out_stats()
    text = (f"fitted: benchmarks/fit_published.py to the {len(pf.rows)} rows of benchmarks/published/points.csv "
            f"listed under fitted.paths.{pf.path}.rows; in-sample median |log err| "
            f"{pf.in_sample.get('median_abs_log_err')}, {name} held-out (leave one source out) "
            f"{held.get('median_abs_log_err')}")
    # a parameter fitted to its default ('absent', exponent 1) has no YAML field to cite
    return {key: text for key, value in pf.params.items() if value != PATH_PARAMS[key.split(".")[2]].default}


def _interval(preds, by_group: bool = False) -> dict:
    """The held-out figures' 90 % interval, resampling the units the folds hold out (sources, or author groups)."""
    ci = cluster_interval(preds, (lambda x: author_group(x.source)) if by_group else (lambda x: x.source))
    return {"interval": {"resampling": "author groups" if by_group else "sources", **ci}} if ci else {}


def _path_held_out(held, path: str) -> dict:
    """The leave-one-source-out error of the rows predicted on ``path`` (a prediction's family is
    "pattern @ path"): how far to trust this path, which the profile-wide figure averages away."""
    stats = error_stats([h for h in held if h.family.rsplit(" @ ", 1)[-1] == path])
    return {"held_out_n": stats["n"], "held_out_median_abs_log_err": stats["median_abs_log_err"],
            "held_out_within_1.35x": stats["within_1.35x"]} if stats.get("n") else {}


def as_source_held_out(profile_doc: dict, preds: list) -> list:
    """``preds`` (predictions of some rows) with the predictions fit.json's leave-one-source-out folds made of the
    same rows instead (``profile_doc``: fit.json's entry of their profile); rows it did not predict are left out.
    What the other hold-out scripts (cross_gpu.py, cross_shape.py) score beside their own."""
    own = {r["id"]: r for r in profile_doc["held_out_rows"]}
    return [dataclasses.replace(p, predicted=own[p.id]["predicted"], no_path=own[p.id]["no_path"],
                                log_err=math.log(own[p.id]["predicted"] / p.published))
            for p in preds if own.get(p.id, {}).get("predicted")]


def _headline(stats: dict) -> dict:
    """The figures a profile's ``fitted:`` record keeps (its interval stays in fit.json)."""
    return {k: v for k, v in stats.items() if k != "interval"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profiles", default=",".join(PROFILES))
    ap.add_argument("--no-write", action="store_true", help="report only; leave hwconfigs/ alone")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/published"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"date": str(date.today()), "machine": platform.node() + " " + platform.machine(),
              "data": "benchmarks/published/points.csv", "profiles": {}}
    held_all, group_all, super_all, in_all = [], [], [], []
    for name in args.profiles.split(","):
        fit = fit_profile(name, base=handset(name), by_group=True)
        held_all += fit.held_out
        group_all += fit.held_out_by_group
        super_all += fit.superseded
        in_all += fit.in_sample
        rep = {"sources": fit.sources, "held_out": {**fit.held_out_stats(), **_interval(fit.held_out)},
               "author_groups": sorted({author_group(s) for s in fit.sources}),
               "held_out_by_group": {**error_stats(fit.held_out_by_group), **_interval(fit.held_out_by_group, True)},
               "in_sample": error_stats(fit.in_sample),
               "superseded": error_stats(fit.superseded),
               "paths": {pf.path: {"rows": pf.rows, "params": pf.params, "in_sample": pf.in_sample,
                                   "derived": {k: v for k, (v, _) in pf.derived.items()}} for pf in fit.paths},
               "held_out_rows": [{"id": h.id, "source": h.source, "family": h.family, "published": h.published,
                                  "predicted": h.predicted, "no_path": h.no_path} for h in fit.held_out]}
        report["profiles"][name] = rep
        print(name, "held-out", rep["held_out"], "| by author group", rep["held_out_by_group"], "| in-sample",
              rep["in_sample"], "| superseded", rep["superseded"])
        for pf in fit.paths:
            print(f"  {pf.path}: {len(pf.rows)} rows, in-sample {pf.in_sample}, params "
                  + ", ".join(f"{k.split('.', 2)[2]}={v:.4g}" for k, v in pf.params.items())
                  + "".join(f", derived {k.split('.', 2)[2]}={v:.4g}" for k, (v, _) in pf.derived.items()))
        if args.no_write:
            continue
        sources = {f"paths.{p}": why for p, (_, _, why) in NEW_PATHS.get(name, {}).items()
                   if p in {pf.path for pf in fit.paths}}
        for _, prov in NARROWED.get(name, {}).values():
            sources.update(prov)
        for pf in fit.paths:
            sources.update(_provenance(name, fit, pf))
            if pf.path in blocks.family(name):  # a block-law fraction the rows cannot tell apart keeps its start
                sources.update({f"paths.{pf.path}.peak_fraction.{dt}": blocks.WHY_START
                                for dt in fit.profile.paths[pf.path].peak_fraction
                                if f"paths.{pf.path}.peak_fraction.{dt}" not in pf.params})
            sources.update({key: f"derived: benchmarks/fit_published.py (kernels/published_fit.share_dtype_ratios), {how}"
                            for key, (_, how) in pf.derived.items()})
        # a previous fit's provenance of a parameter this fit leaves alone goes with it
        stale = {k for k, v in load_profile(name).sources.items()
                 if v.startswith(("fitted: benchmarks/fit_published.py", "derived: benchmarks/fit_published.py"))}
        fitted = {"method": "kernels/published_fit.py (benchmarks/fit_published.py): scipy least_squares, soft-L1 on "
                            "log(predicted / published speedup), each sparse path on the rows naming it; dense path kept",
                  "data": "benchmarks/published/points.csv", "date": report["date"],
                  "held_out": {"method": "leave one source out", **_headline(rep["held_out"]),
                               "sources": len(fit.sources)},
                  "held_out_by_group": {"method": "leave one author group out (kernels/published.py AUTHOR_GROUPS)",
                                        **_headline(rep["held_out_by_group"]), "groups": len(rep["author_groups"])},
                  "paths": {pf.path: {"rows": pf.rows, "in_sample_median_abs_log_err": pf.in_sample.get("median_abs_log_err"),
                                      **_path_held_out(fit.held_out, pf.path)} for pf in fit.paths}}
        write_profile(ROOT / "hwconfigs" / f"{name}.yaml", fit.profile, [pf.path for pf in fit.paths],
                      {p: base for p, (base, _, _) in NEW_PATHS.get(name, {}).items()}, set(sources) | stale, sources, fitted)
        print(f"  wrote hwconfigs/{name}.yaml")
    report["held_out"] = {**error_stats(held_all), **_interval(held_all)}
    report["held_out_by_group"] = {**error_stats(group_all), **_interval(group_all, True)}
    report["superseded"] = error_stats(super_all)
    report["in_sample"] = error_stats(in_all)
    print("all profiles held-out", report["held_out"], "| by author group", report["held_out_by_group"],
          "| in-sample", report["in_sample"])
    (out / "fit.json").write_text(json.dumps(report, indent=1) + "\n")
    plot_predictions(held_all, out / "heldout.png", title="held-out sources: predicted vs published speedup")
    print(f"wrote {out / 'fit.json'}, {out / 'heldout.png'}")


if __name__ == "__main__":
    main()
