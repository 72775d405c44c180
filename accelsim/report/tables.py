"""Tables of a report (and of ``accelsim compare``): plain rows of numbers first, formatting second.

A row's numbers are the simulator's JSON values unchanged; only the text renderers round them (to 4
significant digits), so a table can always be checked against ``sim/<hw>.json``.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass

import numpy as np

from accelsim import trace as tr
from accelsim.report.data import RunData, dense_baseline, time_to_target
from accelsim.report.units import fmt_energy, fmt_flops, fmt_ratio, fmt_time


@dataclass
class HwRow:
    hardware: str
    run: str
    method: str
    sparsity: float
    time_s: float
    energy_j: float
    speedup: float  # the simulator's: the same steps run dense / this run, same hardware
    energy_ratio: float  # this run / the same steps run dense
    edp_js: float  # energy-delay product, J*s
    target_loss: float | None
    time_to_target_s: float | None
    # the dense run of this experiment (same shape) to the target / this run to the target
    target_speedup: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def hw_rows(runs: list[RunData], hardware: list[str], target: float | None) -> list[HwRow]:
    """One row per (hardware, run) that has a stored simulation, hardware-major."""
    rows = []
    for hw in hardware:
        for run in runs:
            sim = run.sims.get(hw)
            if sim is None:
                continue
            d = sim.doc
            ttt, _ = time_to_target(run, sim, target)
            base = dense_baseline(run, runs)
            base_ttt = time_to_target(base, base.sims[hw], target)[0] if base and hw in base.sims else None
            rows.append(HwRow(
                hardware=hw, run=run.name, method=run.method, sparsity=run.sparsity, time_s=d["time_s"],
                energy_j=d["energy_j"], speedup=_num(d.get("speedup")), energy_ratio=_num(d.get("energy_ratio")),
                edp_js=d["time_s"] * d["energy_j"], target_loss=target, time_to_target_s=ttt,
                target_speedup=base_ttt / ttt if (base_ttt and ttt) else None))
    return rows


def _num(x) -> float:
    return float("nan") if x is None else float(x)


def g4(x: float | None, suffix: str = "") -> str:
    """4 significant digits (what tests parse back), '-' for missing."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.4g}{suffix}"


SUMMARY_COLUMNS = ("hardware", "run", "time", "energy", "speedup vs dense", "energy vs dense",
                   "EDP (J·s)", "time to target", "vs dense run")


def summary_table(rows: list[HwRow]) -> tuple[list[str], list[list[str]]]:
    """One line per (hardware, run), in human units (``accelsim run`` / ``compare`` on the console)."""
    body = [[r.hardware, r.run, fmt_time(r.time_s), fmt_energy(r.energy_j), fmt_ratio(r.speedup),
             fmt_ratio(r.energy_ratio), g4(r.edp_js), (fmt_time(r.time_to_target_s) if r.time_to_target_s is not None
                                                       else ("not reached" if r.target_loss is not None else "-")),
             fmt_ratio(r.target_speedup)] for r in rows]
    return list(SUMMARY_COLUMNS), body


def pivot_table(rows: list[HwRow], hardware: list[str], runs: list[str], cell, *, dtype: dict[str, str] | None = None,
                bound: set[str] = frozenset()) -> tuple[list[str], list[list[str]]]:
    """Hardware down, runs across; ``cell(row)`` formats one (hardware, run). Rows follow ``hardware``'s
    order (the caller sorts it); a bound such as ``ideal`` is labelled as one so it is never read as a machine."""
    by = {(r.hardware, r.run): r for r in rows}
    head = ["hardware"] + (["dtype"] if dtype else []) + list(runs)
    body = []
    for h in hardware:
        name = f"{h} (bound, not hardware)" if h in bound else h
        body.append([name] + ([dtype.get(h, "?")] if dtype else [])
                    + [cell(by[(h, n)]) if (h, n) in by else "-" for n in runs])
    return head, body


def run_table(runs: list[RunData]) -> tuple[list[str], list[list[str]]]:
    """Each run's training configuration and outcome."""
    head = ["run", "model", "method", "sparsity", "steps", "batch x seq", "lr", "first -> last loss",
            "final eval loss", "final density", "mask changes", "trace"]
    body = []
    for r in runs:
        m = r.trace.manifest
        cfg = m.extra.get("train_config", {})
        loss = r.loss()
        ev = r.trace.eval["eval_loss"].to_numpy(zero_copy_only=False) if r.trace.eval.num_rows else []
        dens = r.trace.steps["density"].to_numpy(zero_copy_only=False)
        changes = int(np.sum(r.trace.steps["mask_changed"].to_numpy(zero_copy_only=False)))
        body.append([r.name, r.model, r.method, f"{r.sparsity:.0%}", str(r.trace.steps.num_rows),
                     f"{m.batch_size} x {m.model['seq_len']}", g4(cfg.get("lr")),
                     f"{loss[0]:.3f} -> {loss[-1]:.3f}" if len(loss) else "-",
                     f"{ev[-1]:.3f}" if len(ev) else "-", f"{dens[-1]:.3f}" if len(dens) else "-", str(changes),
                     "synthetic" if m.synthetic else "trained"])
    return head, body


def flops_table(runs: list[RunData]) -> tuple[list[str], list[list[str]]]:
    """FLOPs per phase over the whole run: needed by the method vs the dense model (RigL accounting)."""
    head = ["run"] + [f"{p} (needed / dense)" for p in tr.PHASES] + ["total needed", "total dense", "ratio"]
    body = []
    for r in runs:
        s = r.trace.steps
        need = {p: float(np.sum(s[f"flops_{p}"].to_numpy())) for p in tr.PHASES}
        dense = {p: float(np.sum(s[f"flops_{p}_dense"].to_numpy())) for p in tr.PHASES}
        tn, td = sum(need.values()), sum(dense.values())
        body.append([r.name] + [f"{fmt_flops(need[p])} / {fmt_flops(dense[p])}" for p in tr.PHASES] +
                    [fmt_flops(tn), fmt_flops(td), g4(tn / td if td else None)])
    return head, body


def breakdown_table(runs: list[RunData], hardware: list[str], attr: str = "by_kind") -> tuple[list[str], list[list[str]]]:
    """Share of simulated time per op kind (``by_kind``) for every (hardware, run)."""
    keys: list[str] = []
    for r in runs:
        for hw in hardware:
            if hw in r.sims:
                keys += [k for k in r.sims[hw].doc.get(attr, {}) if k not in keys]
    head = ["hardware", "run"] + [f"{k} %" for k in keys]
    body = []
    for hw in hardware:
        for r in runs:
            if hw not in r.sims:
                continue
            parts = r.sims[hw].doc.get(attr, {})
            total = sum(v["time_s"] for v in parts.values()) or 1.0
            body.append([hw, r.name] + [f"{100 * parts[k]['time_s'] / total:.1f}" if k in parts else "-" for k in keys])
    return head, body


# --- text renderers ------------------------------------------------------------------------------

def to_markdown(head: list[str], body: list[list[str]]) -> str:
    esc = [[c.replace("|", "\\|") for c in row] for row in [head] + body]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in esc[1:]]
    return "\n".join(lines)


def to_csv(rows: list[HwRow]) -> str:
    buf = io.StringIO()
    fields = list(HwRow.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.to_dict().items()})
    return buf.getvalue()


def rich_table(head: list[str], body: list[list[str]], title: str | None = None):
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(head):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in body:
        table.add_row(*row)
    return table
