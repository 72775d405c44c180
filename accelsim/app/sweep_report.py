"""The sweep's outputs: ``results.parquet`` (one schema for every engine) and ``report.md`` + ``pareto.png``.

Pareto front, per hardware: trials no other trial beats on both simulated time (or energy) and final
loss. Best per hardware: with an ``objective``, the least simulated time (energy) until the eval loss
first reaches the target; without one, the least whole-run simulated time among trials whose final loss
is within 1 % of the sweep's best (so a fast run that learned nothing never wins).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from accelsim.app.sweep import COLUMNS

#: without an objective, "as good as the best" means a final loss within this factor of the best one
LOSS_TOLERANCE = 1.01

SCHEMA = pa.schema([
    ("trial", pa.string()), ("status", pa.string()), ("error", pa.string()), ("params", pa.string()),
    ("method", pa.string()), ("sparsity", pa.float64()), ("hw", pa.string()), ("devices", pa.int64()),
    ("steps", pa.int64()), ("final_loss", pa.float64()), ("loss_source", pa.string()),
    ("sim_time_s", pa.float64()), ("sim_energy_j", pa.float64()), ("speedup", pa.float64()),
    ("time_to_target_s", pa.float64()), ("energy_to_target_j", pa.float64()), ("trial_wall_s", pa.float64()),
    ("run", pa.string()),
])
assert tuple(SCHEMA.names) == COLUMNS


def write_table(results: list[dict[str, Any]], path: Path) -> pa.Table:
    rows = []
    for res in results:
        common = {k: res.get(k) for k in ("trial", "status", "error", "params", "method", "sparsity", "run",
                                          "trial_wall_s")}
        for row in res.get("rows") or [{}]:  # a failed trial still has its row, without hardware figures
            rows.append({**{c: None for c in COLUMNS}, **common, **row})
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return table


def pareto(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points (minimise both coordinates), by increasing first coordinate."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], points[i][1]))
    front, best = [], math.inf
    for i in order:
        if points[i][1] < best:
            front.append(i)
            best = points[i][1]
    return front


def best_per_hw(rows: list[dict], objective) -> dict[str, dict]:
    ok = [r for r in rows if r["status"] == "ok" and r["hw"]]
    out: dict[str, dict] = {}
    if objective is not None:
        key = "time_to_target_s" if objective.minimise == "time" else "energy_to_target_j"
        cands = [r for r in ok if r[key] is not None]
    else:
        key = "sim_time_s"
        best_loss = min((r["final_loss"] for r in ok), default=math.inf)
        cands = [r for r in ok if r["final_loss"] <= best_loss * LOSS_TOLERANCE]
    for r in sorted(cands, key=lambda r: r[key]):
        out.setdefault(r["hw"], r)
    return out


def _label(r: dict, varied: tuple[str, ...] = ("sparsity",)) -> str:
    params = json.loads(r["params"])
    return " ".join([r["method"]] + [f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                                     for k in varied if k in params and k != "method"])


def varied_keys(rows: list[dict]) -> tuple[str, ...]:
    """The settings that differ between trials: what a label needs to tell them apart."""
    values: dict[str, set] = {}
    for r in rows:
        for k, v in json.loads(r["params"]).items():
            values.setdefault(k, set()).add(json.dumps(v))
    return tuple(sorted(k for k, v in values.items() if len(v) > 1))


def write_figure(rows: list[dict], path: Path) -> Path | None:
    from accelsim.report.plotting import new_figure

    ok = [r for r in rows if r["status"] == "ok" and r["hw"]]
    hws = sorted({r["hw"] for r in ok})
    varied = varied_keys(rows)
    if not hws:
        return None
    fig, axes = new_figure(2 * len(hws), ncols=2, panel=(5.2, 3.4))
    for h, hw in enumerate(hws):
        mine = [r for r in ok if r["hw"] == hw]
        for j, (col, unit) in enumerate((("sim_time_s", "simulated time (s)"), ("sim_energy_j", "energy (J)"))):
            ax = axes[2 * h + j]
            pts = [(r["final_loss"], r[col]) for r in mine]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color="0.55", zorder=2)
            front = pareto(pts)
            ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "o-", color="C3", ms=5, zorder=3,
                    label="Pareto front")
            for i in front:
                ax.annotate(_label(mine[i], varied), pts[i], fontsize=6, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel(f"final {mine[0]['loss_source']} loss (nats)")
            ax.set_ylabel(unit)
            ax.set_title(f"{hw}: {unit.split(' (')[0]} vs loss", fontsize=9)
            ax.legend(fontsize=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def write_report(out: Path, cfg, table: pa.Table) -> Path:
    rows = table.to_pylist()
    fig = write_figure(rows, out / "pareto.png")
    obj = cfg.objective
    lines = [f"# Sweep {out.name}", "",
             f"{len({r['trial'] for r in rows})} trials ({cfg.search}, mode {cfg.mode}) on "
             f"{', '.join(cfg.profiles)}, {cfg.devices} device(s) each. Table: `results.parquet`.", ""]
    if any(r["loss_source"] == "synthetic" for r in rows):
        lines += ["Losses of synthetic trials are the generator's power law (accelsim.synth), not measured.", ""]
    if obj is not None:
        lines += [f"Objective: least simulated {obj.minimise} until the eval loss first reaches "
                  f"{obj.target_loss:g}, on {obj.profile}.", ""]
    else:
        lines += [f"Best: least whole-run simulated time among trials whose final loss is within "
                  f"{(LOSS_TOLERANCE - 1) * 100:.0f} % of the best.", ""]
    best = best_per_hw(rows, obj)
    varied = varied_keys(rows)
    lines += ["| hardware | best trial | method | final loss | simulated time | energy | to target |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for hw in sorted({r["hw"] for r in rows if r["hw"]}):
        b = best.get(hw)
        if b is None:
            lines.append(f"| {hw} | none reached the target | | | | | |")
            continue
        tgt = "-" if b["time_to_target_s"] is None else f"{b['time_to_target_s']:.3g} s"
        mark = " (objective)" if obj and hw == obj.profile else ""
        lines.append(f"| {hw}{mark} | {b['trial']} | {_label(b, varied)} | {b['final_loss']:.3f} | "
                     f"{b['sim_time_s']:.3g} s | {b['sim_energy_j']:.3g} J | {tgt} |")
    if fig is not None:
        lines += ["", "![Pareto fronts](pareto.png)"]
    bad = {r["trial"]: r for r in rows if r["status"] != "ok"}
    if bad:
        lines += ["", "## Trials that did not finish", "", "| trial | status | settings | error |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {t} | {r['status']} | {_label(r, varied)} | {r['error'].replace('|', '/')} |"
                  for t, r in sorted(bad.items())]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
