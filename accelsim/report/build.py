"""``build_report``: run directories and their stored simulations -> report.html, report.md, report.json."""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from accelsim.report import figures as F
from accelsim.report.curves import energy_figure, loss_time_figure, speedup_figure
from accelsim.report.data import (RunData, expand_inputs, experiment_of, find_validations, hardware_order, load_run,
                                  read_experiment, stored_target)
from accelsim.report.render import Image, Para, Pre, Section, Table, render_html, render_markdown
from accelsim.report.tables import (breakdown_table, flops_table, g4, hw_rows, run_table, summary_table)
from accelsim.report.validation import Validation, load_validation, profile_validations


def build_report(inputs: list[str | Path], out: str | Path, *, hardware: list[str] | None = None,
                 target_loss: float | None = None, validation: list[str | Path] | None = None,
                 title: str | None = None) -> dict[str, Path]:
    """Write ``out/report.html`` (self-contained), ``out/report.md`` (+ ``out/figures/``) and ``out/report.json``."""
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
    title = title or "accelsim report: " + (", ".join(str(d.get("experiment", {}).get("name", "experiment"))
                                                      for d in exp_docs) or ", ".join(r.name for r in runs))
    sections = [
        _summary(rows, runs, hw, target),
        _runs(runs, exp_docs),
        _training(runs),
        _flops(runs),
        _hardware(rows, runs, hw),
        _breakdown(runs, hw),
        _target(rows, runs, hw, target),
        _validation(vals, hw),
        _assumptions(runs, hw),
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assumptions = {name: dict(a) for name, a in _profile_assumptions(runs, hw).items() if a is not None}
    data = {"title": title, "target_loss": target, "hardware": hw, "runs": [str(p) for p in paths],
            "summary": [r.to_dict() for r in rows], "validation": [v.to_dict() for v in vals],
            "assumptions": assumptions}
    files = {"html": out / "report.html", "md": out / "report.md", "json": out / "report.json"}
    files["html"].write_text(render_html(title, sections, data), encoding="utf-8")
    files["md"].write_text(render_markdown(title, sections, out / "figures"), encoding="utf-8")
    files["json"].write_text(json.dumps(data, indent=2), encoding="utf-8")
    return files


def _summary(rows, runs: list[RunData], hw: list[str], target) -> Section:
    blocks: list = []
    if not rows:
        blocks.append(Para("No stored simulations: run `accelsim simulate RUN --hw all` (or `accelsim run`) first.",
                           warn=True))
        return Section("Summary", blocks, "summary")
    head, body = summary_table(rows)
    blocks.append(Table(head, body))
    blocks.append(Para(
        "time and energy: simulated net training time and energy of the whole run. speedup vs dense: the same "
        "steps run dense on the same hardware / this run (> 1 is faster); energy vs dense: this run's energy / "
        "that of the same steps run dense (< 1 saves energy); EDP: energy x time. "
        + (f"time to target: simulated seconds until the smoothed training loss first reaches {target:g}; vs "
           f"dense run: the dense run's time to that loss / this run's." if target is not None else
           "No target loss was set, so no time-to-target is reported.")))
    bounds = [f"{r.name} needs {ratio:.1%} of the dense FLOPs (at most {1 / ratio:.2f}x faster where time "
              f"follows FLOPs)" for r in runs if not r.is_dense for ratio in [_flop_ratio(r)] if ratio]
    if bounds:
        blocks.append(Para("Amdahl bound: " + "; ".join(bounds) + ". Dense parts (embeddings, attention products, "
                           "the MLM head) cap what any hardware can gain from sparse weights."))
    return Section("Summary", blocks, "summary")


def _flop_ratio(run: RunData) -> float | None:
    import numpy as np

    from accelsim.trace import PHASES

    s = run.trace.steps
    need = sum(float(np.sum(s[f"flops_{p}"].to_numpy())) for p in PHASES)
    dense = sum(float(np.sum(s[f"flops_{p}_dense"].to_numpy())) for p in PHASES)
    return need / dense if dense and need else None


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
        return Section("Hardware: time and energy", [Para("No stored simulations.", warn=True)], "hardware")
    names = [r.name for r in runs]
    blocks: list = [Image.of("hardware", F.hardware_figure(rows, hw, names),
                             "speedup and energy of each run relative to the same steps run dense, per hardware")]
    for name, fig, cap in (("speedup-vs-sparsity", speedup_figure(runs, hw),
                            "speedup vs sparsity per hardware; dashed: the ideal 1/density"),
                           ("energy-vs-sparsity", energy_figure(runs, hw),
                            "energy relative to dense vs sparsity per hardware; dashed: density")):
        if fig is not None:
            blocks.append(Image.of(name, fig, cap))
    return Section("Hardware: time and energy", blocks, "hardware")


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


def _profile_assumptions(runs: list[RunData], hw: list[str]) -> dict[str, dict[str, str] | None]:
    from accelsim.errors import UserError
    from accelsim.hardware import load_profile

    out: dict[str, dict[str, str] | None] = {}
    for h in hw:
        name = next((r.sims[h].hardware for r in runs if h in r.sims), re.sub(r"-x\d+$", "", h))
        try:
            out[h] = dict(load_profile(name).assumptions)
        except UserError:
            out[h] = None
    return out


def _assumptions(runs: list[RunData], hw: list[str]) -> Section:
    from accelsim.hardware import load_profile

    blocks: list = [Para("Every hardware figure carries a source (datasheet, paper, measurement) or is an "
                         "assumption; the assumptions below are where the estimates are weakest.")]
    for h, asm in _profile_assumptions(runs, hw).items():
        if asm is None:
            blocks.append(Para(f"{h}: profile not found among the bundled ones; its assumptions are unknown.",
                               warn=True))
            continue
        prof = load_profile(next((r.sims[h].hardware for r in runs if h in r.sims), h))
        fitted = " Efficiency parameters fitted to measurements (accelsim calibrate)." if prof.fitted else ""
        blocks.append(Para(f"{h} ({prof.kind}): {prof.description}. {len(prof.sources)} sourced entries, "
                           f"{len(asm)} assumptions.{fitted}", warn=bool(asm)))
        if asm:
            body = [[k, v or "(no reason given)"] for k, v in asm.items()]
            blocks.append(Table(["field (ASSUMPTION)", "reason"], body, f"{h}: assumptions",
                                warn_rows=set(range(len(body)))))
    return Section("Hardware profiles and their assumptions", blocks, "assumptions")

