"""The report's figures of training and of simulated hardware cost; each returns a Figure, or None when
the runs hold nothing to draw (e.g. no eval rows, no sparse run)."""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from accelsim import trace as tr
from accelsim.report.data import RunData
from accelsim.report.plotting import new_figure, run_colors, short_layer
from accelsim.report.tables import HwRow
from accelsim.report.units import time_axis


def loss_figure(runs: list[RunData]) -> Figure | None:
    from accelsim.sim.result import smoothed_loss

    has_eval = any(r.trace.eval.num_rows for r in runs)
    fig, axes = new_figure(2 if has_eval else 1)
    colors = run_colors([r.name for r in runs])
    ax = axes[0]
    for r in runs:
        steps, loss = r.steps(), r.loss()
        ax.plot(steps, loss, color=colors[r.name], alpha=0.25, lw=0.8)
        ax.plot(steps, smoothed_loss(loss, max(1, len(loss) // 20)), color=colors[r.name], lw=1.6, label=r.name)
    ax.set(xlabel="step", ylabel="training MLM loss (nats)", title="training loss (faint: per step)")
    ax.legend(fontsize=8)
    if has_eval:
        ax = axes[1]
        for r in runs:
            if r.trace.eval.num_rows:
                ev = r.trace.eval
                ax.plot(ev["step"].to_numpy(), ev["eval_loss"].to_numpy(), "o-", ms=3, color=colors[r.name],
                        label=r.name)
        ax.set(xlabel="step", ylabel="held-out MLM loss (nats)", title="eval loss")
        ax.legend(fontsize=8)
    return fig


def _density_matrix(run: RunData) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    pat = run.trace.patterns
    if not pat.num_rows:
        return None
    layers = [i.name for i in run.trace.manifest.layers if i.sparse]
    steps = sorted(set(pat["step"].to_pylist()))
    col = {s: j for j, s in enumerate(steps)}
    row = {n: i for i, n in enumerate(layers)}
    m = np.full((len(layers), len(steps)), np.nan)
    for s, layer, d in zip(pat["step"].to_pylist(), pat["layer"].to_pylist(), pat["density"].to_pylist()):
        if layer in row:
            m[row[layer], col[s]] = d
    for j in range(1, len(steps)):  # a layer without a row at a change kept its previous pattern
        m[:, j] = np.where(np.isnan(m[:, j]), m[:, j - 1], m[:, j])
    last = int(run.steps()[-1]) + 1 if run.trace.steps.num_rows else steps[-1] + 1
    edges = np.array(steps + [max(last, steps[-1] + 1)], dtype=float)
    return layers, edges, m


def density_figure(runs: list[RunData]) -> Figure | None:
    mats = [(r, _density_matrix(r)) for r in runs if not r.is_dense]
    mats = [(r, m) for r, m in mats if m is not None and np.nanmin(m[2]) < 1.0]
    if not mats:
        return None
    fig, axes = new_figure(len(mats), ncols=2, panel=(6.0, 0.9 + 0.22 * max(len(m[0]) for _, m in mats)))
    # the colour scale spans the densities present (ERK at 90 % gives 0.05-0.2): on 0-1 every layer looks alike
    lo = min(float(np.nanmin(m[2])) for _, m in mats)
    hi = max(float(np.nanmax(m[2])) for _, m in mats)
    pad = max(0.005, 0.02 * (hi - lo)) if hi - lo < 1e-3 else 0.0
    mesh = None
    for ax, (r, (layers, edges, m)) in zip(axes, mats):
        mesh = ax.pcolormesh(edges, np.arange(len(layers) + 1), m, vmin=lo - pad, vmax=hi + pad, cmap="viridis",
                             shading="flat")
        ax.set_yticks(np.arange(len(layers)) + 0.5, [short_layer(n) for n in layers], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="step (a column holds from one mask change to the next)", title=f"{r.name}: density per layer")
    fig.colorbar(mesh, ax=axes, label=f"density (nnz / size), scale {lo:.3g}-{hi:.3g}", shrink=0.9)
    return fig


def flops_figure(runs: list[RunData]) -> Figure:
    fig, (ax,) = new_figure(1, panel=(9.0, 0.8 + 0.45 * len(runs)))
    y = np.arange(len(runs))
    left = np.zeros(len(runs))
    for i, ph in enumerate(tr.PHASES):
        vals = np.array([float(np.sum(r.trace.steps[f"flops_{ph}"].to_numpy())) for r in runs])
        ax.barh(y, vals, left=left, color=f"C{i}", label=ph)
        left += vals
    dense = [sum(float(np.sum(r.trace.steps[f"flops_{ph}_dense"].to_numpy())) for ph in tr.PHASES) for r in runs]
    ax.scatter(dense, y, marker="|", s=400, color="black", label="dense model, same steps", zorder=3)
    ax.set_yticks(y, [r.name for r in runs])
    ax.invert_yaxis()
    ax.set(xlabel="FLOPs over the whole run", title="FLOPs the method needs, by phase")
    fig.legend(fontsize=8, ncols=6, loc="outside lower center")
    return fig


def _grouped_bars(ax, hardware: list[str], runs: list[str], value, colors, *, log: bool = False) -> None:
    width = 0.8 / max(len(runs), 1)
    x = np.arange(len(hardware))
    for j, name in enumerate(runs):
        vals = [value(hw, name) for hw in hardware]
        heights = [np.nan if v is None else v for v in vals]
        ax.bar(x + (j - (len(runs) - 1) / 2) * width, heights, width, color=colors[name], label=name)
        for xi, v in zip(x, vals):
            if v is None:
                ax.text(xi + (j - (len(runs) - 1) / 2) * width, 0.0, "×", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, hardware, rotation=30, ha="right", fontsize=8)
    if log and any(v is not None and v > 0 for hw in hardware for name in runs for v in [value(hw, name)]):
        ax.set_yscale("log")


def hardware_figure(rows: list[HwRow], hardware: list[str], runs: list[str]) -> Figure:
    """Speedup and energy relative to the same steps run dense, per hardware."""
    by = {(r.hardware, r.run): r for r in rows}
    colors = run_colors(runs)
    fig, axes = new_figure(2, ncols=2, panel=(6.5, 3.8))
    _grouped_bars(axes[0], hardware, runs, lambda h, n: by[(h, n)].speedup if (h, n) in by else None, colors)
    axes[0].axhline(1.0, color="black", lw=0.8)
    axes[0].set(ylabel="speedup vs dense (same hardware)", title="net training time: dense / sparse")
    _grouped_bars(axes[1], hardware, runs, lambda h, n: by[(h, n)].energy_ratio if (h, n) in by else None, colors)
    axes[1].axhline(1.0, color="black", lw=0.8)
    axes[1].set(ylabel="energy / dense energy", title="training energy relative to dense")
    axes[0].legend(fontsize=7)
    return fig


def target_figure(rows: list[HwRow], hardware: list[str], runs: list[str], target: float) -> Figure:
    by = {(r.hardware, r.run): r for r in rows}
    fig, (ax,) = new_figure(1, panel=(10.0, 4.0))
    _grouped_bars(ax, hardware, runs, lambda h, n: by[(h, n)].time_to_target_s if (h, n) in by else None,
                  run_colors(runs), log=True)
    ax.set(ylabel="simulated time (log)", title=f"time until the smoothed loss reaches {target:g} (× = never)")
    time_axis(ax.yaxis)
    ax.legend(fontsize=7)
    return fig


def breakdown_figure(runs: list[RunData], hardware: list[str]) -> Figure:
    """Per hardware: each run's simulated time stacked by op kind."""
    kinds: list[str] = []
    for r in runs:
        for hw in hardware:
            kinds += [k for k in r.sims.get(hw).doc.get("by_kind", {}) if k not in kinds] if hw in r.sims else []
    fig, axes = new_figure(len(hardware), ncols=2, panel=(6.0, 0.9 + 0.4 * len(runs)))
    names = [r.name for r in runs]
    for ax, hw in zip(axes, hardware):
        left = np.zeros(len(runs))
        for i, k in enumerate(kinds):
            vals = np.array([r.sims[hw].doc.get("by_kind", {}).get(k, {}).get("time_s", 0.0) if hw in r.sims else 0.0
                             for r in runs])
            ax.barh(np.arange(len(runs)), vals, left=left, color=f"C{i}", label=k)
            left += vals
        ax.set_yticks(np.arange(len(runs)), names, fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="simulated time", title=hw)
        time_axis(ax.xaxis)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, ncols=len(kinds), loc="outside lower center")
    return fig


def layer_figure(runs: list[RunData], hardware: list[str], top: int = 10) -> Figure:
    """Per hardware: simulated time of the ``top`` most expensive layers (by the slowest run), per run."""
    fig, axes = new_figure(len(hardware), ncols=2, panel=(6.0, 0.8 + 0.32 * top))
    colors = run_colors([r.name for r in runs])
    for ax, hw in zip(axes, hardware):
        sims = [(r, r.sims[hw].doc.get("by_layer", {})) for r in runs if hw in r.sims]
        keys = sorted({k for _, d in sims for k in d}, key=lambda k: -max(d.get(k, {}).get("time_s", 0.0) for _, d in sims))
        keys = keys[:top]
        width = 0.8 / max(len(sims), 1)
        for j, (r, d) in enumerate(sims):
            vals = [d.get(k, {}).get("time_s", 0.0) for k in keys]
            ax.barh(np.arange(len(keys)) + (j - (len(sims) - 1) / 2) * width, vals, width, color=colors[r.name],
                    label=r.name)
        ax.set_yticks(np.arange(len(keys)), [short_layer(k) for k in keys], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="simulated time", title=f"{hw}: most expensive layers")
        time_axis(ax.xaxis)
    axes[0].legend(fontsize=7)
    return fig


def absolute_figure(rows: list[HwRow], real: list[str], bounds: list[str], runs: list[str]) -> Figure:
    """Simulated training time and energy of every run on every hardware (log scales, human units); real
    hardware fastest first, bounds (``ideal``) below a rule and hatched so they are never read as machines."""
    from matplotlib.ticker import FuncFormatter

    from accelsim.report.units import fmt_energy, fmt_time

    by = {(r.hardware, r.run): r for r in rows}
    order = real + bounds
    colors = run_colors(runs)
    fig, axes = new_figure(2, ncols=2, panel=(5.6, 0.9 + 0.42 * len(order) * max(1.0, len(runs) / 3)))
    width = 0.8 / max(len(runs), 1)
    y = np.arange(len(order))
    for ax, attr, fmt, title in ((axes[0], "time_s", fmt_time, "simulated training time"),
                                 (axes[1], "energy_j", fmt_energy, "simulated training energy")):
        for j, name in enumerate(runs):
            vals = [getattr(by[(h, name)], attr) if (h, name) in by else np.nan for h in order]
            hatch = ["//" if h in bounds else "" for h in order]
            bars = ax.barh(y + (j - (len(runs) - 1) / 2) * width, vals, width, color=colors[name], label=name)
            for bar, hch in zip(bars, hatch):
                if hch:
                    bar.set_hatch(hch)
                    bar.set_alpha(0.55)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos, f=fmt: f(v)))
        ax.set_yticks(y, [f"{h} (bound)" if h in bounds else h for h in order], fontsize=8)
        ax.invert_yaxis()
        if bounds and real:
            ax.axhline(len(real) - 0.5, color="black", lw=0.8, ls="--")
        ax.set(title=f"{title} (log scale; shorter is better)")
        ax.grid(axis="x", which="major", alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    return fig
