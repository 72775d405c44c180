"""The report's first sections: the verdict, time and energy per hardware, the BERT-base projection, and
(at the end) the profiles' assumptions, collapsed and deduplicated.

Every number is shown in human units (accelsim.report.units); report.json keeps the exact values.
"""
from __future__ import annotations

import math
import re

from accelsim.report import figures as F
from accelsim.report.data import RunData
from accelsim.report.render import Details, Image, Para, Section, Table, Verdict
from accelsim.report.tables import HwRow, pivot_table
from accelsim.report.units import fmt_energy, fmt_ratio, fmt_share, fmt_time
from accelsim.report.verdict import (ProfileInfo, amdahl_limit, basis_summary, basis_text, best_sparse, dtype_line,
                                     flop_ratio, hardware_by_time, verdict_lines)


def verdict_section(rows: list[HwRow], runs: list[RunData], hw: list[str], info: dict[str, ProfileInfo],
                    proj_rows: list[HwRow], proj_runs: list[RunData], proj_info: dict[str, ProfileInfo]) -> Section:
    if not rows:
        return Section("Verdict", [Para("No stored simulations: run `accelsim simulate RUN --hw all` (or "
                                        "`accelsim run`) first.", warn=True)], "verdict")
    lines = verdict_lines(rows, runs, info)
    if proj_rows:
        model = proj_runs[0].model
        pl = dict(verdict_lines(proj_rows, proj_runs, proj_info))
        buys = pl.get("what sparsity buys")
        if buys:
            lines.append((f"projected to {model}", buys[0].lower() + buys[1:]))
    real, bounds = hardware_by_time(rows, hw, info, runs)
    lines.append(dtype_line(info, real + bounds))
    blocks: list = [Verdict(lines), Para(
        "Real hardware excludes the ideal profile (time = FLOPs / peak), a bound shown apart. Speedups compare a "
        "sparse run with the same steps run dense on the same hardware. " + basis_summary(info, real)
        + " See Hardware profiles.")]
    for h in real:  # a CPU profile is some CPU's figures, not necessarily the reader's
        if info[h].cpu_note:
            text, other = info[h].cpu_note
            blocks.append(Para(text + ".", warn=other))
    blocks.append(Image.of("time-energy", F.absolute_figure(rows, real, bounds, [r.name for r in runs]),
                           "simulated training time and energy per hardware, fastest real hardware first"))
    return Section("Verdict", blocks, "verdict")


def summary_section(rows: list[HwRow], runs: list[RunData], hw: list[str], info: dict[str, ProfileInfo],
                    target) -> Section:
    if not rows:
        return Section("Time and energy per hardware", [Para("No stored simulations.", warn=True)], "summary")
    real, bounds = hardware_by_time(rows, hw, info, runs)
    names = [r.name for r in runs]
    dtype = {h: p.dtype for h, p in info.items()}
    blocks: list = [Para(
        "Simulated net training time and energy of the whole run. In brackets: against the same steps run dense "
        "on the same hardware (time: dense / sparse, above 1 is faster; energy: sparse / dense, below 1 saves "
        "energy). Hardware is sorted by the dense run's time; the bound is listed last.")]
    head, body = pivot_table(rows, real + bounds, names, lambda r: f"{fmt_time(r.time_s)} ({fmt_ratio(r.speedup)})",
                             dtype=dtype, bound=set(bounds))
    blocks.append(Table(head, body, "training time (speedup vs dense)", left=2))
    head, body = pivot_table(rows, real + bounds, names,
                             lambda r: f"{fmt_energy(r.energy_j)} ({fmt_ratio(r.energy_ratio)})", dtype=dtype,
                             bound=set(bounds))
    blocks.append(Table(head, body, "training energy (energy vs dense)", left=2))
    bounds_text = [f"{r.name} needs {fmt_share(ratio)} of the dense FLOPs, so at most {fmt_ratio(1 / ratio)} where "
                   f"time follows FLOPs" for r in runs if not r.is_dense for ratio in [flop_ratio(r)] if ratio]
    if bounds_text:
        blocks.append(Para("Amdahl limit: " + "; ".join(bounds_text) + ". Dense parts (embeddings, attention "
                           "products, the MLM head) cap what any hardware gains from sparse weights; on bert-tiny "
                           "the vocabulary head dominates, which is why the BERT-base projection follows."))
    return Section("Time and energy per hardware", blocks, "summary")


def projection_section(rows: list[HwRow], runs: list[RunData], tiny_rows: list[HwRow],
                       info: dict[str, ProfileInfo], skipped: list[str]) -> Section | None:
    if not runs:
        return None
    model = runs[0].model
    real, bounds = hardware_by_time(rows, list(info), info, runs)
    names = [r.name for r in runs]
    source = {r.name: r.trace.manifest.extra.get("projected_from", r.name) for r in runs}
    blocks: list = [Para(
        f"Each trained run replayed as {model}: a synthetic trace (accelsim.synth) with the run's method, sparsity, "
        "layer distribution, steps, batch, sequence length and mask schedule, and its measured clustering of "
        "nonzeros into tiles; masks are drawn at the larger shapes. The loss curve of a synthetic trace is not a "
        "measurement, so only time and energy are shown.")]
    tiny = {(r.hardware, r.run): r for r in tiny_rows}

    def both(r: HwRow) -> str:
        t = tiny.get((r.hardware, source[r.run]))
        return f"{fmt_ratio(t.speedup) if t else '-'} → {fmt_ratio(r.speedup)}"

    cols = [n for n in names if not next(x for x in runs if x.name == n).is_dense]
    if cols:
        head, body = pivot_table(rows, real + bounds, cols, both, bound=set(bounds))
        head = ["hardware"] + [f"{source[n]} → {model}" for n in cols]
        blocks.append(Table(head, body, f"speedup vs dense: as trained → projected to {model}", left=1))
        limits = [f"{source[r.name]} {fmt_ratio(lim)}" for r in runs if not r.is_dense for lim in [amdahl_limit(r)]
                  if lim]
        if limits:
            blocks.append(Para(f"Amdahl limits at {model}: " + ", ".join(limits) + "."))
    head, body = pivot_table(rows, real + bounds, names,
                             lambda r: f"{fmt_time(r.time_s)} · {fmt_energy(r.energy_j)}", bound=set(bounds))
    blocks.append(Table(head, body, f"{model}: simulated training time · energy", left=1))
    best = best_sparse(rows, runs, set(real))
    if best and best.speedup > (amdahl_limit(next(r for r in runs if r.name == best.run)) or 1e9) * 1.02:
        blocks.append(Para(f"{best.hardware} gains more than the FLOP ratio allows: there the dense {model} run is "
                           "limited by memory (its weights do not fit on chip or its traffic dominates), which "
                           "the sparse weights relieve.", warn=True))
    for s in skipped:
        blocks.append(Para(f"not projected: {s}", warn=True))
    return Section(f"Projected to {model}", blocks, "projection")


def path_checks(runs: list[RunData], profiles: dict[str, object | None]) -> list[Para]:
    """For each sparse path a sparse run ran on, where the path was fitted to published measurements: its own
    held-out error (the profile-wide figure averages strong paths with weak ones: on gpu-a100, 2:4 against
    Triton block 16). Flagged when fewer than half its held-out predictions fall within 1.35x."""
    out = []
    for h, prof in profiles.items():
        fitted = (prof.fitted or {}).get("paths") if prof is not None and isinstance(prof.fitted, dict) else None
        if not isinstance(fitted, dict):
            continue
        used: dict[str, set[str]] = {}
        for r in runs:
            if not r.is_dense and h in r.sims:
                for names in (r.sims[h].doc.get("paths") or {}).values():
                    for path in names:
                        used.setdefault(path, set()).add(r.name)
        for path, names in sorted(used.items()):
            rec = fitted.get(path)
            if isinstance(rec, dict) and rec.get("held_out_n"):
                share, err = rec["held_out_within_1.35x"], rec["held_out_median_abs_log_err"]
                out.append(Para(f"{h} ran {', '.join(sorted(names))} partly on its {path} path. With each "
                                f"publication held out in turn, that path predicted {fmt_share(share)} of "
                                f"{rec['held_out_n']} published speedups within 1.35× (median error "
                                f"{fmt_ratio(math.exp(err))}).", warn=share < 0.5))
    return out


def assumptions_section(profiles: dict[str, object | None], info: dict[str, ProfileInfo],
                        runs: list[RunData] = ()) -> Section:
    """One line per profile, then every assumption once: identical reasons are grouped, fields and profiles
    listed together, all inside a collapsed block. ``runs`` (as trained and projected): the sparse paths
    they ran on, each with its own published-data error (:func:`path_checks`)."""
    blocks: list = [Para("Every hardware figure carries a source (datasheet, paper, measurement) or is an "
                         "assumption; the assumptions are where the estimates are weakest.")]
    body, groups = [], {}
    for h, prof in profiles.items():
        if prof is None:
            blocks.append(Para(f"{h}: profile not found among the bundled ones; its assumptions are unknown.",
                               warn=True))
            continue
        body.append([h, prof.kind, info[h].dtype if h in info else prof.dtype, prof.description, basis_text(prof),
                     str(len(prof.sources)), str(len(prof.assumptions))])
        for field, reason in prof.assumptions.items():
            key = re.sub(r"\s+", " ", (reason or "(no reason given)").strip())
            g = groups.setdefault(key, {"fields": [], "profiles": []})
            if field not in g["fields"]:
                g["fields"].append(field)
            if h not in g["profiles"]:
                g["profiles"].append(h)
    blocks.append(Table(["profile", "kind", "dtype", "what it is", "how its figures were obtained", "sourced figures",
                         "assumptions"], body, "hardware profiles", left=9))
    blocks += path_checks(list(runs), profiles)
    if groups:
        rows = [[", ".join(g["fields"]), ", ".join(g["profiles"]), reason] for reason, g in groups.items()]
        n_fields = sum(len(p.assumptions) for p in profiles.values() if p is not None)
        blocks.append(Details(f"All assumptions: {len(rows)} distinct reasons behind {n_fields} fields (click to "
                              "expand)", [Table(["fields (ASSUMPTION)", "profiles", "reason"], rows,
                                                warn_rows=set(range(len(rows))), left=9)]))
    return Section("Hardware profiles and their assumptions", blocks, "assumptions")
