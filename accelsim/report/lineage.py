"""The report's fine-tuning table: each finetune run with its task metrics and the simulated time of its whole
lineage (pretraining, a distillation teacher's fine-tuning, and the run itself) per hardware profile.

Like the rest of the report it simulates nothing: it sums the ``sim/<hw>.json`` results stored in every run of
the lineage (``accelsim simulate`` writes them); a profile missing from any of them shows "-".
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from accelsim.report.data import RunData
from accelsim.report.render import Section, Table
from accelsim.sim.lineage import linked_runs


def _stored_time(run: Path, hw: str) -> float | None:
    path = run / "sim" / f"{hw}.json"
    try:
        value = json.loads(path.read_text()).get("time_s")
    except (OSError, ValueError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


def _metric(run: RunData, column: str) -> str:
    ev = run.trace.eval
    if not ev.num_rows:
        return "-"
    v = ev[column][-1].as_py()
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def lineage_section(runs: list[RunData], hw: list[str]) -> Section | None:
    """None when no run is a fine-tuning run (the report then has no such section)."""
    head, body = lineage_rows(runs, hw)
    if not body:
        return None
    caption = ("final evaluation of each fine-tuning run; 'total': simulated seconds of every run of its lineage "
               "(all steps), summed from their stored simulations; time to a target accuracy: accelsim simulate "
               "RUN --target-metric accuracy=X")
    return Section("Fine-tuning: task metrics and lineage time", [Table(head, body, caption, left=3)], "finetune")


def lineage_rows(runs: list[RunData], hw: list[str]) -> tuple[list[str], list[list[str]]]:
    head = ["run", "task / method", "lineage", "accuracy", "F1", "MCC", *(f"{h} total" for h in hw)]
    body = []
    for r in runs:
        man = r.trace.manifest
        if man.phase != "finetune":
            continue
        chain = linked_runs(r.path)
        times = []
        for h in hw:
            parts = [_stored_time(p, h) for p in chain]
            times.append("-" if any(t is None for t in parts) else f"{sum(parts):.4g} s")
        teacher = " + KD" if man.model.get("teacher") else ""
        body.append([r.name, f"{man.task.get('name', '?')} / {r.method}{teacher}", " + ".join(p.name for p in chain),
                     _metric(r, "eval_accuracy"), _metric(r, "eval_f1"), _metric(r, "eval_mcc"), *times])
    return head, body
