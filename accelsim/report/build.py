"""``build_report``: run directories and their stored simulations -> report.html, report.md, report.json."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from accelsim.report import figures as F
from accelsim.report.curves import energy_figure, loss_time_figure, speedup_figure
from accelsim.report.data import (RunData, expand_inputs, experiment_of, find_validations, hardware_order, load_run,
                                  read_experiment, simulated_profiles, stored_target)
from accelsim.report.lineage import lineage_section
from accelsim.report.render import Image, Para, Pre, Section, Table, render_html, render_markdown
from accelsim.report.summary import assumptions_section, projection_section, summary_section, verdict_section
from accelsim.report.tables import breakdown_table, flops_table, g4, hw_rows, pivot_table, run_table
from accelsim.report.units import fmt_ratio, fmt_time
from accelsim.report.validation import Validation, load_validation, profile_validations
from accelsim.report.verdict import hardware_by_time, profile_info


def build_report(inputs: list[str | Path], out: str | Path, *, hardware: list[str] | None = None,
                 target_loss: float | None = None, validation: list[str | Path] | None = None,
                 title: str | None = None, project: bool = True) -> dict[str, Path]:
    """Write ``out/report.html`` (self-contained), ``out/report.md`` (+ ``out/figures/``) and ``out/report.json``.

    ``project``: also replay every trained run as BERT-base (accelsim.report.projection), simulated on the
    same hardware and stored under ``out/projection/``."""
    paths, experiments = expand_inputs(list(inputs))
    runs = [load_run(p) for p in paths]
    hw = hardware_order(runs, hardware)
    target = target_loss if target_loss is not None else stored_target(runs)
    exp_dirs = experiments or sorted({e for e in (experiment_of(p) for p in paths) if e})
    exp_docs = [read_experiment(d) for d in exp_dirs]
    if target is None and exp_docs:
        target = exp_docs[0].get("target_loss")
    vals = [load_validation(p) for p in find_validations(paths, exp_dirs, [Path(v) for v in validation or []])] \
        or profile_validations(sorted({re.sub(r"-x\d+$", "", h) for h in hw}))
    rows = hw_rows(runs, hw, target)
    info = profile_info(runs, hw)
    title = title or "accelsim report: " + (", ".join(str(d.get("experiment", {}).get("name", "experiment"))
                                                      for d in exp_docs) or ", ".join(r.name for r in runs))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    proj_runs, skipped, proj_rows, proj_info = [], [], [], {}
    if project and rows:
        from accelsim.report.projection import project_runs

        proj_runs, skipped = project_runs(runs, hw, out / "projection")
        proj_hw = hardware_order(proj_runs) if proj_runs else []
        proj_rows, proj_info = hw_rows(proj_runs, proj_hw, None), profile_info(proj_runs, proj_hw)
    profiles = simulated_profiles(runs, hw)
    real, bounds = hardware_by_time(rows, hw, info, runs)
    ordered = real + bounds if rows else hw  # fastest real hardware first, bounds last, in every figure
    sections = [s for s in (
        verdict_section(rows, runs, hw, info, proj_rows, proj_runs, proj_info),
        summary_section(rows, runs, hw, info, target),
        projection_section(proj_rows, proj_runs, rows, proj_info, skipped),
        _runs(runs, exp_docs),
        _training(runs),
        _flops(runs),
        _hardware(rows, runs, ordered),
        _breakdown(runs, ordered),
        _target(rows, runs, ordered, target),
        lineage_section(runs, ordered),
        _validation(vals, hw),
        assumptions_section(profiles, info, runs + proj_runs),
    ) if s is not None]
    verdict = next(b for b in sections[0].blocks if hasattr(b, "lines")) if rows else None
    assumptions = {name: dict(p.assumptions) for name, p in profiles.items() if p is not None}
    data = {"title": title, "target_loss": target, "hardware": hw, "runs": [str(p) for p in paths],
            "verdict": [list(x) for x in verdict.lines] if verdict else [],
            "summary": [r.to_dict() for r in rows], "projection": [r.to_dict() for r in proj_rows],
            "validation": [v.to_dict() for v in vals], "assumptions": assumptions}
    files = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
    files["html"].write_text(render_html(title, sections, data), encoding="utf-8")
    files["md"].write_text(render_markdown(title, sections, out / "figures"), encoding="utf-8")
    files["json"].write_text(json.dumps(data, indent=2), encoding="utf-8")
    return files


def _runs(runs: list[RunData], exp_docs: list[dict]) -> Section:
    head, body = run_table(runs)
    blocks: list = [Table(head, body, "runs")]
    if any(r.trace.manifest.synthetic for r in runs):
        blocks.append(Para("Synthetic traces (accelsim.synth): FLOPs and patterns are exact, the loss curve is a "
                           "documented power law, not a measurement.", warn=True))
    for doc in exp_docs:
        blocks.append(Para("experiment configuration" + (" (--quick)" if doc.get("quick") else "") +
                           f"; target loss used: {g4(doc.get('target_loss'))}"))
        blocks.append(Pre(yaml.safe_dump(doc.get("experiment", {}), sort_keys=False).strip()))
    return Section("Run configuration", blocks, "runs")


def _training(runs: list[RunData]) -> Section:
    blocks: list = [Image.of("loss", F.loss_figure(runs), "training loss (smoothed) and held-out loss per step")]
    dens = F.density_figure(runs)
    if dens is not None:
        blocks.append(Image.of("density", dens, "density of every sparse layer over training (columns: mask changes)"))
    else:
        blocks.append(Para("No sparse run: nothing to show per layer."))
    return Section("Training: loss, eval and per-layer density", blocks, "training")


def _flops(runs: list[RunData]) -> Section:
    head, body = flops_table(runs)
    return Section("FLOPs breakdown", [Table(head, body), Image.of("flops", F.flops_figure(runs),
                                       "FLOPs per phase (bars) against the dense model over the same steps (|)")],
                   "flops")


def _hardware(rows, runs: list[RunData], hw: list[str]) -> Section:
    if not rows:
        return Section("Speedup and energy relative to dense", [Para("No stored simulations.", warn=True)],
                       "hardware")
    names = [r.name for r in runs]
    blocks: list = [Image.of("hardware", F.hardware_figure(rows, hw, names),
                             "speedup and energy of each run relative to the same steps run dense, per hardware")]
    for name, fig, cap in (("speedup-vs-sparsity", speedup_figure(runs, hw),
                            "speedup vs sparsity per hardware; dashed: 1/density, the FLOP-ratio limit"),
                           ("energy-vs-sparsity", energy_figure(runs, hw),
                            "energy relative to dense vs sparsity per hardware; dashed: density")):
        if fig is not None:
            blocks.append(Image.of(name, fig, cap))
    return Section("Speedup and energy relative to dense", blocks, "hardware")


def _breakdown(runs: list[RunData], hw: list[str]) -> Section:
    if not any(h in r.sims for r in runs for h in hw):
        return Section("Where the time goes", [Para("No stored simulations.", warn=True)], "breakdown")
    head, body = breakdown_table(runs, hw)
    return Section("Where the time goes", [
        Table(head, body, "share of simulated time per op kind"),
        Image.of("by-op", F.breakdown_figure(runs, hw), "simulated time per op kind"),
        Image.of("by-layer", F.layer_figure(runs, hw), "simulated time of the most expensive layers")], "breakdown")


def _target(rows, runs: list[RunData], hw: list[str], target) -> Section:
    blocks: list = []
    if target is None:
        blocks.append(Para("No target loss set (accelsim run --target-loss / the experiment's target_loss)."))
    elif rows and all(r.time_to_target_s is None for r in rows):
        blocks.append(Para(f"No run reaches a smoothed loss of {target:g} on any hardware.", warn=True))
    elif rows:
        cell = lambda r: ("not reached" if r.time_to_target_s is None else
                          f"{fmt_time(r.time_to_target_s)} ({fmt_ratio(r.target_speedup)})")
        bound = {h for h in hw if any(h in r.sims and r.sims[h].doc.get("kind") == "ideal" for r in runs)}
        head, body = pivot_table(rows, hw, [r.name for r in runs], cell, bound=bound)
        blocks.append(Table(head, body, f"time to a smoothed loss of {target:g} (the dense run's time to it / "
                                        "this run's)", left=1))
        blocks.append(Image.of("time-to-target", F.target_figure(rows, hw, [r.name for r in runs], target),
                               f"simulated time to a smoothed loss of {target:g}"))
    fig = loss_time_figure(runs, hw, target)
    if fig is not None:
        blocks.append(Image.of("loss-vs-time", fig, "smoothed training loss against simulated training time"))
    return Section("Time to target loss", blocks, "target")


def _validation(vals: list[Validation], hw: list[str]) -> Section:
    if not vals:
        return Section("Cost-model validation", [Para(
            "No validation of the cost model against measured kernels was found (validation.json next to the runs "
            "or the experiment); run `accelsim validate MEASUREMENTS --hw PROFILE --out DIR` and pass "
            "--validation DIR/validation.json. The simulated numbers above are unvalidated estimates.",
            warn=True)], "validation")
    base = {re.sub(r"-x\d+$", "", h) for h in hw}
    body = [[v.profile, str(v.n_points), f"{100 * v.mape:.1f}", g4(v.median_ratio), v.mode, str(v.path)] for v in vals]
    blocks: list = [Table(["profile", "points", "MAPE %", "median predicted/measured", "points used", "file"], body,
                          "kernel time predicted by the cost model vs measured")]
    for v in vals:
        if v.profile not in base:
            blocks.append(Para(f"{v.path}: validates profile '{v.profile}', which this report did not simulate.",
                               warn=True))
        if v.by_pattern:
            blocks.append(Table(["pattern", "points", "MAPE %", "median predicted/measured"],
                                [[k, str(g["n"]), f"{100 * g['mape']:.1f}", g4(g["median_ratio"])]
                                 for k, g in v.by_pattern.items()], f"{v.profile}: error by sparsity pattern"))
        if v.plot is not None:
            blocks.append(Image(f"validation-{re.sub(r'[^A-Za-z0-9_-]', '_', v.profile)}", v.plot.read_bytes(),
                                f"{v.profile}: predicted vs measured kernel times"))
    return Section("Cost-model validation", blocks, "validation")
