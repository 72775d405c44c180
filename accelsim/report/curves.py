"""Curves across runs (``accelsim plot speedup`` and the report): speedup and energy versus sparsity per
hardware against the ideal 1/density, and loss versus simulated wall time (time-to-accuracy).

``synthetic_sweep_runs`` makes the runs from synthetic traces (accelsim.synth) for model sizes nobody
trains on a laptop; their loss curves are synthetic, their FLOPs and patterns exact.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from accelsim.errors import expect
from accelsim.report.data import RunData
from accelsim.report.plotting import new_figure, run_colors, save_figure
from accelsim.report.units import time_axis


def _method_groups(runs: list[RunData]) -> dict[str, list[RunData]]:
    groups: dict[str, list[RunData]] = {}
    for r in runs:
        if not r.is_dense:
            groups.setdefault(r.method, []).append(r)
    return groups


def _vs_sparsity(runs: list[RunData], hardware: list[str], key: str, ideal, ylabel: str, title: str) -> Figure | None:
    groups = _method_groups(runs)
    if not groups:
        return None
    from accelsim.report.verdict import profile_info

    fig, axes = new_figure(len(groups), ncols=2, panel=(6.5, 4.2))
    hw_colors = {hw: f"C{i % 10}" for i, hw in enumerate(hardware)}
    # a profile whose sparse paths are assumptions only is drawn dotted and says so: its curve is a what-if
    info = profile_info(runs, hardware)
    assumed = {hw for hw, p in info.items() if p.basis == "assumed" and not p.is_bound}
    for ax, (method, members) in zip(axes, groups.items()):
        members = sorted(members, key=lambda r: r.sparsity)
        s_max = max(r.sparsity for r in members)
        xs = np.linspace(0.0, s_max, 200)
        ax.plot(xs, ideal(1.0 - xs), "k--", lw=1.2,
                label="1/density (FLOP-ratio limit)" if key == "speedup" else "density (FLOP-ratio limit)")
        for hw in hardware:
            # the dense run itself (speedup and energy ratio 1 by definition) anchors each curve at 0
            pts = [(0.0, d.sims[hw].doc.get(key)) for d in runs if d.is_dense and hw in d.sims][:1]
            pts += [(r.sparsity, r.sims[hw].doc.get(key)) for r in members if hw in r.sims]
            pts = [(s, v) for s, v in pts if v is not None]
            if any(s > 0 for s, _ in pts):
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o:" if hw in assumed else "o-", ms=4,
                        color=hw_colors[hw], label=f"{hw} (assumed)" if hw in assumed else hw)
        ax.set(xlabel="sparsity of the sparse layers", ylabel=ylabel, title=f"{method}: {title}")
        if key == "speedup":
            ax.set_yscale("log")
        ax.legend(fontsize=7, ncols=2)
    return fig


def speedup_figure(runs: list[RunData], hardware: list[str]) -> Figure | None:
    return _vs_sparsity(runs, hardware, "speedup", lambda d: 1.0 / d, "speedup vs dense (same hardware, log)",
                        "speedup vs sparsity")


def energy_figure(runs: list[RunData], hardware: list[str]) -> Figure | None:
    return _vs_sparsity(runs, hardware, "energy_ratio", lambda d: d, "energy / dense energy",
                        "energy vs sparsity")


def loss_time_figure(runs: list[RunData], hardware: list[str], target: float | None) -> Figure | None:
    """Per hardware: smoothed training loss against simulated seconds (the simulator's smoothing)."""
    from accelsim.sim.result import smoothed_loss

    panels = [hw for hw in hardware if any(hw in r.sims and "time_s" in r.sims[hw].timeline for r in runs)]
    if not panels:
        return None
    fig, axes = new_figure(len(panels), ncols=2, panel=(6.0, 3.6))
    colors = run_colors([r.name for r in runs])
    for ax, hw in zip(axes, panels):
        for r in runs:
            sim = r.sims.get(hw)
            if sim is None or "time_s" not in sim.timeline:
                continue
            t = np.cumsum(sim.timeline["time_s"])
            loss = smoothed_loss(r.loss())
            n = min(len(t), len(loss))
            ax.plot(t[:n], loss[:n], color=colors[r.name], lw=1.5, label=r.name)
        if target is not None:
            ax.axhline(target, color="black", ls=":", lw=1.0, label=f"target {target:g}")
        ax.set(xlabel="simulated training time", ylabel="smoothed training loss", title=hw)
        time_axis(ax.xaxis)
        ax.legend(fontsize=7)
    return fig


def write_curves(runs: list[RunData], hardware: list[str], out: Path, target: float | None = None,
                 formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """speedup-vs-sparsity, energy-vs-sparsity and loss-vs-time figures as PNG and SVG under ``out``."""
    written: list[Path] = []
    for stem, fig in (("speedup-vs-sparsity", speedup_figure(runs, hardware)),
                      ("energy-vs-sparsity", energy_figure(runs, hardware)),
                      ("loss-vs-time", loss_time_figure(runs, hardware, target))):
        if fig is not None:
            written += save_figure(fig, out / stem, formats)
    expect(bool(written), "nothing to plot: the runs hold no simulated sparse run (simulate them first)",
           field="RUN")
    return written


def synthetic_sweep_runs(model: str, sparsities: list[float], hardware: list[str], out: Path, *,
                         method: str = "rigl", steps: int = 10_000, devices: int = 1, progress=None) -> list[Path]:
    """A dense run and one ``method`` run per sparsity, synthesised under ``out`` and simulated on
    ``hardware``. 10k steps with updates every 100 gives the schedule RigL's cost depends on (update
    steps with dense gradients amortised 1:100) without writing a million trace rows."""
    from accelsim.sim.api import simulate_many
    from accelsim.synth import synth_sweep, synth_trace

    expect(len(sparsities) > 0, "expected at least one sparsity", field="--sparsities")
    for s in sparsities:
        expect(0.0 < s < 1.0, f"expected sparsities in (0, 1), got {s}", field="--sparsities")
    out = Path(out)
    runs = [synth_trace(model=model, method="dense", sparsity=0.0, steps=steps, out=out / f"{model}-dense",
                        overwrite=True)]
    runs += synth_sweep(model, sparsities, method=method, out=out, overwrite=True, steps=steps)
    for i, run in enumerate(runs):
        for r in simulate_many(run, hardware, devices):
            r.save(run)
        if progress is not None:
            progress(i + 1, len(runs), run.name)
    return runs
