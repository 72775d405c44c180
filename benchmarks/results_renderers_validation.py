"""Validation result kinds for make_results_doc.py: the published-measurement fit of the accelerator profiles,
the profiles against the published rows, and profiles carried to another machine (CPU and GPU).

A sibling module for the same reason as results_renderers_extra.py (make_results_doc.py loads both, this one
second, so within a folder these sections follow the others)."""
from __future__ import annotations

import math
from pathlib import Path

from make_results_doc import pct, renders, sig, table, times


def _factor(log_err: float) -> str:
    return times(math.exp(log_err)) if log_err is not None else "–"


def _err_row(name: str, s: dict) -> list[str]:
    if not s.get("n"):
        return [name, "0", "–", "–", "–", "–"]
    return [name, str(s["n"]), sig(s["median_abs_log_err"], 2), _factor(s["median_abs_log_err"]),
            pct(s["within_1.35x"], 0), str(s.get("no_path", 0))]


_ERR_HEADER = ["", "points", "median \\|log err\\|", "as a factor", "within 1.35×", "no path (dense fallback)"]


@renders("fit.json", "Accelerator profiles fitted to published speedups (`fit_published.py`)")
def published_fit(path: Path, d: dict) -> list[str]:
    lines = [f"Data `{d['data']}`. Held-out error, leaving one source out at a time (the profile refitted "
             "without it), and one author group at a time (publications by the same people leave together: "
             "`kernels/published.py` AUTHOR_GROUPS); superseded rows (not fitted) scored apart. Published speedups, "
             "not measurements of ours."]
    rows = []
    for name, p in d["profiles"].items():
        rows.append(_err_row(f"{name} held-out ({len(p['sources'])} sources)", p["held_out"]))
        if p.get("held_out_by_group", {}).get("n"):
            groups = len(p["author_groups"])
            rows.append(_err_row(f"{name} held-out by author group ({groups} group{'s' if groups > 1 else ''})",
                                 p["held_out_by_group"]))
        if p.get("in_sample", {}).get("n"):
            rows.append(_err_row(f"{name} in-sample (fit to every source)", p["in_sample"]))
        if p.get("superseded", {}).get("n"):
            rows.append(_err_row(f"{name} superseded", p["superseded"]))
    rows.append(_err_row("**all profiles, held-out**", d["held_out"]))
    if d.get("held_out_by_group", {}).get("n"):
        rows.append(_err_row("all profiles, held-out by author group", d["held_out_by_group"]))
    if d.get("in_sample", {}).get("n"):
        rows.append(_err_row("all profiles, in-sample", d["in_sample"]))
    if d.get("superseded", {}).get("n"):
        rows.append(_err_row("all profiles, superseded", d["superseded"]))
    return lines + [""] + table(_ERR_HEADER, rows) + _held_out_intervals(d) + _held_out_by_family(d) \
        + _held_out_by_source(d)


def _held_out_groups(p: dict, key: str) -> dict[str, list]:
    """A profile's predicted held-out rows (fit.json) grouped by ``key`` ("source", "family"), each row with
    its log error as published_validate.error_stats reads it."""
    from types import SimpleNamespace

    groups: dict[str, list] = {}
    for r in p.get("held_out_rows", []):
        if r.get("predicted") and r.get(key):
            groups.setdefault(r[key], []).append(SimpleNamespace(
                log_err=math.log(r["predicted"] / r["published"]), no_path=r.get("no_path", False), source=r["source"]))
    return dict(sorted(groups.items()))


def _held_out_by_family(d: dict) -> list[str]:
    """The held-out error per kernel family (pattern @ path): which predictions to trust more."""
    from accelsim.kernels.published_validate import error_stats

    rows = []
    for name, p in d["profiles"].items():
        for fam, xs in _held_out_groups(p, "family").items():
            n_src = len({x.source for x in xs})
            rows.append(_err_row(f"{name}: {fam} ({n_src} source{'s' if n_src > 1 else ''})", error_stats(xs))[:5])
    if not rows:
        return []
    return ["", "Held out one source at a time, per kernel family (pattern @ profile path); a family one source "
            "alone measured is predicted, held out, from its siblings or its starting values."] + [""] + table(
        ["held-out family", "points", "median \\|log err\\|", "as a factor", "within 1.35×"], rows)


def _held_out_intervals(d: dict) -> list[str]:
    """How far the held-out figures could move with other publications: 90 % cluster-bootstrap intervals."""
    from accelsim.kernels.published_validate import MIN_CLUSTERS

    rows, level = [], None
    named = [(n, p.get("held_out", {}), p.get("held_out_by_group", {})) for n, p in d["profiles"].items()]
    for name, held, group in named + [("**all profiles**", d.get("held_out", {}), d.get("held_out_by_group", {}))]:
        for what, s in (("held-out", held), ("by author group", group)):
            ci = s.get("interval")
            if ci:
                level = ci["level"]
                rows.append([f"{name} {what}", f"{ci['resampled']} {ci['resampling']}",
                             f"{sig(s['median_abs_log_err'], 2)} ({sig(ci['median_abs_log_err'][0], 2)}–"
                             f"{sig(ci['median_abs_log_err'][1], 2)})",
                             f"{pct(s['within_1.35x'], 0)} ({pct(ci['within_1.35x'][0], 0)}–"
                             f"{pct(ci['within_1.35x'][1], 0)})"])
    if not rows:
        return []
    return ["", f"Uncertainty: {pct(level, 0)} percentile-bootstrap intervals, resampling whole sources (author "
            "groups for the by-group rows) with replacement: how far the figures could move with another set of "
            f"publications like these; fewer than {MIN_CLUSTERS} sources or groups give none."] + [""] + table(
        ["", "resampled", "median \\|log err\\| (interval)", "within 1.35× (interval)"], rows)


def _held_out_by_source(d: dict) -> list[str]:
    """Each source as the held-out one: which publications the others predict, and in which direction."""
    from accelsim.kernels.published_validate import error_stats

    rows = []
    for name, p in d["profiles"].items():
        for source, xs in _held_out_groups(p, "source").items():
            mean = sum(x.log_err for x in xs) / len(xs)
            rows.append(_err_row(f"{name}: {source}", error_stats(xs))[:5] + [_factor(mean)])
    if not rows:
        return []
    return ["", "Held out one at a time: each source predicted by the profile fitted to the others (mean "
            "predicted / published above 1× = the others over-predict it)."] + [""] + table(
        ["held-out source", "points", "median \\|log err\\|", "as a factor", "within 1.35×",
         "mean predicted / published"], rows)


@renders("cross-machine.json", "CPU profiles on another CPU's kernels (`cross_machine.py`)")
def cross_machine(path: Path, d: dict) -> list[str]:
    lines = [f"Each {d['threads']}-thread CPU profile scored on each committed {d['threads']}-thread sweep timed with "
             "the same kernel sources (no timing here; `accelsim validate`'s machinery). On the sweep a profile was "
             "fitted to, only its held-out points. Speedup = sparse kernel over the dense baseline of its shape on "
             "the sweep's machine, measured vs predicted; time MAPE = error of the absolute sparse and dense times."]
    rows = []
    for p in d["pairs"]:
        sp = p["speedup"]
        rows.append([f"`{Path(p['profile']).name}` ({p['profile_machine']})", f"`{p['sweep']}` ({p['sweep_machine']})",
                     "yes" if p["same_machine"] else "**no**", str(sp["n"]), pct(p["time_mape"]),
                     times(math.exp(sp["median_abs_log_err"])), pct(sp["within_1.35x"], 0), times(sp["median_ratio"])])
    out = lines + [""] + table(["profile", "sweep", "same CPU", "sparse points", "time MAPE",
                                "speedup error (median factor)", "speedup within 1.35×",
                                "median predicted / measured speedup"], rows)
    other = [p for p in d["pairs"] if not p["same_machine"]]
    if other:
        paths = sorted({k for p in other for k in p["speedup_by_path"]})
        head = [f"`{Path(p['profile']).name}` on `{Path(p['sweep']).parent.name}/{Path(p['sweep']).name}`"
                for p in other]
        body = [[f"`{k}`"] + [times(p["speedup_by_path"][k]["median_ratio"]) if k in p["speedup_by_path"] else "–"
                              for p in other] for k in paths]
        out += ["", "Another CPU's sweep, per profile path: median predicted / measured speedup (below 1× = the "
                "profile under-predicts what sparsity buys there)."] + [""] + table(["path"] + head, body)
    return out


@renders("cross-gpu.json", "A GPU profile copied from the other GPU (`cross_gpu.py`)")
def cross_gpu(path: Path, d: dict) -> list[str]:
    lines = ["The donor GPU's sparse paths, refitted without every author group that also published rows for "
             "the target, put into the target's profile (its datasheet kept) and scored on the target's published "
             "rows of the families the donor has a fitted path for; beside them, the target's own "
             "leave-one-source-out predictions of the same rows."]
    rows = []
    for p in d["pairs"]:
        for fam, c in p["copied"]["by_family"].items():
            o = p["target_own_held_out"]["by_family"].get(fam, {})
            rows.append([f"`{p['donor']}` → `{p['target']}`", f"{p['donor_rows_fitted']} ({len(p['excluded_author_groups'])})",
                         fam, str(c["n"]), times(math.exp(c["median_abs_log_err"])), pct(c["within_1.35x"], 0),
                         times(math.exp(o["median_abs_log_err"])) if o.get("n") else "–",
                         pct(o["within_1.35x"], 0) if o.get("n") else "–"])
    return lines + [""] + table(["copied", "donor rows fitted (author groups left out)", "family", "target points",
                                 "copied: median error", "copied: within 1.35×", "target's own held-out: median error",
                                 "target's own: within 1.35×"], rows)


@renders("cross-shape.json", "Accelerator profiles at product sizes they were not fitted to (`cross_shape.py`)")
def cross_shape(path: Path, d: dict) -> list[str]:
    lines = ["Each profile's single-product rows cut into three bins of m·k·n (terciles of the distinct sizes); each "
             "bin predicted by the profile refitted to the other two alone (all sources kept; whole-model and "
             "best-over-batch rows left out). Beside it, the same rows held out by source (fit.json)."]
    rows = []
    for name, bins in d["profiles"].items():
        for b in bins:
            s, o = b["shape_held_out"], b["source_held_out"]
            rows.append([f"`{name}`", b["bin"], f"{b['product_size'][0]:.2g}–{b['product_size'][1]:.2g}",
                         f"{b['tokens'][0]}–{b['tokens'][1]}", str(s["n"]), _factor(s.get("median_abs_log_err")),
                         pct(s["within_1.35x"], 0) if s.get("n") else "–", _factor(o.get("median_abs_log_err")),
                         pct(o["within_1.35x"], 0) if o.get("n") else "–"])
    s, o = d["all"]["shape_held_out"], d["all"]["source_held_out"]
    rows.append(["**all**", "", "", "", str(s["n"]), _factor(s["median_abs_log_err"]), pct(s["within_1.35x"], 0),
                 _factor(o["median_abs_log_err"]), pct(o["within_1.35x"], 0)])
    return lines + [""] + table(["profile", "size bin held out", "m·k·n", "tokens", "points",
                                 "by size: median error", "by size: within 1.35×", "by source: median error",
                                 "by source: within 1.35×"], rows)


@renders("*/published_validation.json", "Profiles vs published speedups (`accelsim validate --published`)")
def published_validation(path: Path, d: dict) -> list[str]:
    lines = [f"`{path.parent.name}` profiles scored against every row of `{d['points']}` (within = predicted "
             f"within {d['within_factor']}× of published). For profiles fitted to these rows this is in-sample; "
             "their held-out error is the fit's, above."]
    rows = [_err_row("**all profiles**", d["overall"])]
    for name, p in d["profiles"].items():
        rows.append(_err_row(name, p))
        if p.get("not_predicted"):
            rows[-1][0] += f" ({len(p['not_predicted'])} rows not predicted)"
    if d.get("superseded", {}).get("n"):
        rows.append(_err_row("superseded rows", d["superseded"]))
    return lines + [""] + table(_ERR_HEADER, rows)
