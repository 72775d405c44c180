"""Score a hardware profile against kernel measurements with the simulator's own cost model.

Three views of the same measurements, each as MAPE overall, per pattern, per op and per kernel:

* ``kernels`` (the headline numbers, top-level keys): every modelled kernel family of every case, its
  fastest measured kernel against the profile path of that family, forced in ``kernel_time``
  (:func:`kernels.points.measurement_points`);
* ``winner``: only the kernel the bench picked for the case (its ``path``), predicted with that
  kernel's profile path: the model of the code that would really run;
* ``fastest``: the case's measured best time against ``op_cost`` choosing the path itself, exactly as
  the simulator does; a wrong choice between paths shows up here.

Measured sparse times are paired with the dense baseline timed beside them in each round
(:func:`kernels.points.paired_time`, a control variate for the shared machine's drift); the same
predictions scored against the plain medians are reported beside them (``raw``).

For the file a profile was fitted to, the held-out cases are scored (and the training cases reported
beside them); for any other file, every case. The scored points are also reported in two parts:
``on_grid`` (shapes the fit saw, other cases of them) and ``off_shape`` (shapes held out whole, or for
another file shapes outside the profile's ``fitted.train_shapes``): only the second tells whether the
model holds off its calibration grid (issue 20). Old profiles and sweeps have no held-out shapes: their
``off_shape`` is None and every other key is as before.
"""
from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from accelsim.errors import expect
from accelsim.hardware import load_profile
from accelsim.kernels.machine import machine_mismatch
from accelsim.kernels.points import (
    dense_medians,
    file_sha256,
    group_mape,
    measurement_points,
    paired_time,
    predict_time,
    record_heldout,
    shape_of,
    ShapeSplit,
)
from accelsim.kernels.records import DENSE_PATH, Measurements, read_measurements

def summary(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    return {"overall": group_mape(rows, lambda r: "all")["all"],
            "by_pattern": group_mape(rows, lambda r: r["pattern"]),
            "by_op": group_mape(rows, lambda r: r["kind"])}


def round_noise(doc: Measurements | dict, paired: bool = False) -> dict[str, dict]:
    """How far a case's timing moves between rounds: per kernel and op, |median of the first half of the
    rounds / median of the second half - 1| over the cases (files with >= 2 rounds per case). A model
    cannot predict a median closer than about half this spread, so it bounds the reachable MAPE.
    ``paired``: the same for each sparse kernel's per-round ratio to the dense baseline timed beside it
    (what paired times are made of, kernels.points.paired_time)."""
    spread: dict[str, list[float]] = defaultdict(list)
    for rec in Measurements.coerce(doc).records:
        for kernel, ts in (rec.ratios() if paired else rec.times_rounds).items():
            if len(ts) >= 2:
                h = len(ts) // 2
                spread[f"{rec.op} {kernel}"].append(abs(float(np.median(ts[:h]) / np.median(ts[h:])) - 1.0))
    every = [v for vs in spread.values() for v in vs]
    out = {k: {"n": len(v), "mean": float(np.mean(v)), "median": float(np.median(v))} for k, v in sorted(spread.items())}
    if every:
        out["all"] = {"n": len(every), "mean": float(np.mean(every)), "median": float(np.median(every))}
    return out


def _row(base: dict, predicted: float, measured: float) -> dict:
    return dict(base, predicted_s=predicted, measured_s=measured, ratio=predicted / measured,
                ape=abs(predicted / measured - 1.0))


def speedup_summary(rows: list[dict], scored: list[dict]) -> dict:
    """The scored sparse points as speedups over the dense baseline of their shape, measured (paired times)
    vs predicted (the profile's dense path over the family's path): the quantity a user compares hardware by,
    scored as the published measurements are (|log(predicted / measured)|, share within
    published_validate.WITHIN). Absolute times also carry the dense path's error; the ratio isolates the
    sparse paths, which is what a profile fitted to published speedups (gpu-a100, gpu-h100) claims to get
    right on a machine it never saw."""
    from types import SimpleNamespace

    from accelsim.kernels.published_validate import error_stats

    def shape(r):
        return r["kind"], r["tokens"], r["d_in"], r["d_out"], r["trees"], r["depth"]

    dense = {shape(r): r for r in rows if r["pattern"] == "dense"}
    out = []
    for r in scored:
        d = dense.get(shape(r))
        if r["pattern"] == "dense" or d is None:
            continue
        measured, predicted = d["measured_s"] / r["measured_s"], d["predicted_s"] / r["predicted_s"]
        out.append(SimpleNamespace(**{k: r[k] for k in ("kind", "tokens", "d_in", "d_out", "density", "pattern",
                                                        "hw_path", "kernel")},
                                   measured=measured, predicted=predicted, log_err=float(np.log(predicted / measured)),
                                   no_path=False))
    if not out:
        return {"n": 0}
    def stats(xs):  # with the median predicted / measured speedup: which way the profile errs
        return {**error_stats(xs), "median_ratio": round(float(np.exp(np.median([x.log_err for x in xs]))), 4)}

    worst = sorted(out, key=lambda x: -abs(x.log_err))[:5]
    return {**stats(out),
            "by_path": {p: stats([x for x in out if x.hw_path == p]) for p in sorted({x.hw_path for x in out})},
            "worst": [{k: getattr(x, k) for k in ("kind", "tokens", "d_in", "d_out", "density", "pattern", "kernel",
                                                  "measured", "predicted")} for x in worst]}


def _fastest_rows(doc: Measurements, profile, threads: int, heldout_of, paired: bool = True) -> list[dict]:
    """Per record: the measured best time (paired with the dense baseline, as the kernel points are) vs
    the simulator's own choice of path (no path forced)."""
    dense = dense_medians(doc, threads)
    rows = []
    for rec in doc.records:
        if rec.threads != threads or rec.density_actual >= 1.0:
            continue
        pred = predict_time(profile, rec.op, rec.tokens, rec.d_in, rec.d_out, rec.density_actual, rec.pattern,
                            rec.profile_dtype, trees=rec.trees, depth=rec.depth)
        d = dense.get(rec.shape_key)
        ratios = rec.ratios()
        best = min([d] + [paired_time(ratios.get(k), d) or t for k, t in rec.times.items() if k != DENSE_PATH]
                   if d and paired else [rec.median_s])
        rows.append(_row({"kind": rec.op, "tokens": rec.tokens, "d_in": rec.d_in, "d_out": rec.d_out,
                          "density": rec.density_actual, "pattern": rec.pattern, "kernel": rec.path,
                          "heldout": heldout_of(rec), "raw_s": rec.median_s}, pred, best))
    return rows


def raw_mape(rows: list[dict]) -> dict:
    """The same predictions scored against the plain medians (no pairing with the dense baseline)."""
    raw = [dict(r, ape=abs(r["predicted_s"] / r["raw_s"] - 1.0), ratio=r["predicted_s"] / r["raw_s"])
           for r in rows if r.get("raw_s")]
    return {"overall": group_mape(raw, lambda r: "all")["all"] if raw else {"n": 0},
            "by_pattern": group_mape(raw, lambda r: r["pattern"])}


def validate(measurements: str | Path, hw: str | Path, out_dir: str | Path | None = None,
             *, threads: int | None = None) -> dict:
    """Predict the measurements with profile ``hw``; MAPE per kernel / pattern / op and overall."""
    doc = read_measurements(measurements)
    profile = load_profile(hw)
    fitted = profile.fitted or {}
    threads = threads or fitted.get("threads") or profile.compute.count
    # a profile fitted before paired times (no fitted.timing) is scored as it was fitted: on plain medians
    paired = bool(fitted.get("timing")) or not fitted.get("measurements_sha256")
    same_file = fitted.get("measurements_sha256") == file_sha256(measurements)
    split = ShapeSplit.of(fitted.get("heldout_shapes") if same_file else None)
    points, skipped = measurement_points(doc, profile, threads, paired=paired, split=split)
    seen = {tuple(s) for s in fitted.get("train_shapes") or ()}

    def off_shape(kind, tokens, d_in, d_out) -> bool:  # a shape the fit never saw
        if same_file:
            return split.off_shape(kind, tokens, d_in, d_out)
        return bool(seen) and shape_of(kind, tokens, d_in, d_out) not in seen
    mode = "held-out points of the file the profile was fitted to" if same_file else \
        "all points (the profile was not fitted to this file)"
    rows = [_row(dataclasses.asdict(p) | {"off_shape": off_shape(p.kind, p.tokens, p.d_in, p.d_out)},
                 p.predict(profile), p.measured_s) for p in points]
    scored = [r for r in rows if r["heldout"]] if same_file else rows
    expect(len(scored) > 0, f"no measurement points to validate (skipped: {skipped or 'none'})", source=measurements)
    winners = [r for r in scored if r["winner"]]
    fastest_all = [dict(r, off_shape=off_shape(r["kind"], r["tokens"], r["d_in"], r["d_out"]))
                   for r in _fastest_rows(doc, profile, threads, record_heldout, paired)]
    fastest_all = [dict(r, heldout=r["heldout"] or r["off_shape"]) if same_file else r for r in fastest_all]
    fastest = [r for r in fastest_all if r["heldout"]] if same_file else fastest_all
    report = {"profile": profile.name, "profile_file": str(hw), "measurements": str(measurements), "mode": mode,
              "threads": threads, "n_points": len(scored), "skipped": skipped,
              "timing": "sparse kernels paired with the dense baseline timed beside them" if paired else
              "plain medians (the profile was fitted before paired times)",
              # a profile fitted on one machine says little about another's timings
              "machine_mismatch": machine_mismatch(fitted.get("machine"), doc.machine),
              "overall_mape": group_mape(scored, lambda r: "all")["all"],
              "mape_by_pattern": group_mape(scored, lambda r: r["pattern"]),
              "mape_by_op": group_mape(scored, lambda r: r["kind"]),
              "mape_by_kernel": group_mape(scored, lambda r: f"{r['kind']} {r['hw_path']} ({r['kernel']})"),
              # measured times are paired with the dense baseline (kernels.points.paired_time); against
              # the plain medians the same predictions score:
              "raw": raw_mape(scored),
              "winner": summary(winners), "fastest": summary(fastest),
              # shapes the fit saw (other cases of them) vs shapes it never saw (module docstring)
              "on_grid": summary([r for r in scored if not r["off_shape"]]),
              "off_shape": summary([r for r in scored if r["off_shape"]]) if any(r["off_shape"] for r in scored)
              else None,
              "off_shape_fastest": summary([r for r in fastest if r["off_shape"]])
              if any(r["off_shape"] for r in fastest) else None,
              # sparse over dense on this machine, measured vs predicted (the published check's metric)
              "speedup": speedup_summary(rows, scored),
              "round_noise": round_noise(doc), "round_noise_paired": round_noise(doc, paired=True),
              "train": ({"kernels": summary([r for r in rows if not r["heldout"]]),
                         "fastest": summary([r for r in fastest_all if not r["heldout"]])} if same_file else None),
              "points": scored, "fastest_points": fastest}
    if out_dir is not None:
        from accelsim.kernels.plots import scatter_png, write_rows_csv
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "validation.json").write_text(json.dumps(report, indent=1))
        write_rows_csv(scored, out / "validation.csv")
        name = Path(measurements).name
        scatter_png(scored, out / "validation.png", title=f"{profile.name} vs {name}: each kernel family ({mode})")
        scatter_png(fastest, out / "validation-fastest.png",
                    title=f"{profile.name} vs {name}: fastest path, chosen by the model ({mode})")
        report["files"] = [str(out / n) for n in ("validation.json", "validation.csv", "validation.png",
                                                   "validation-fastest.png")]
    return report
