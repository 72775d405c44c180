"""Validation of a run directory (``accelsim trace check``): schema, continuity and consistency."""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from accelsim import trace as tr
from accelsim.errors import UserError, expect
from accelsim.workload import _block_index, fff_neurons, fff_path_neurons


@dataclass
class TraceSummary:
    path: str
    model: str
    method: str
    synthetic: bool
    steps: int
    planned_steps: int
    first_loss: float
    last_loss: float
    first_eval_loss: float | None
    last_eval_loss: float | None
    final_density: float
    mask_changes: int
    pattern_rows: int
    mask_files: int
    flops_dense: float
    flops_actual: float
    warnings: list[str] = field(default_factory=list)
    extra_rows: list[tuple[str, str]] = field(default_factory=list)  # e.g. FFF routing statistics

    def rows(self) -> list[tuple[str, str]]:
        ev = ("-" if self.first_eval_loss is None
              else f"{self.first_eval_loss:.3f} -> {self.last_eval_loss:.3f}")
        return [
            ("run", self.path), ("model", self.model), ("method", self.method),
            ("synthetic", str(self.synthetic)), ("steps", f"{self.steps} of {self.planned_steps}"),
            ("train loss", f"{self.first_loss:.3f} -> {self.last_loss:.3f}"), ("eval loss", ev),
            ("final density", f"{self.final_density:.4f}"), ("mask changes", str(self.mask_changes)),
            ("pattern rows", str(self.pattern_rows)), ("mask files", str(self.mask_files)),
            ("FLOPs dense-equivalent", f"{self.flops_dense:.4g}"), ("FLOPs needed", f"{self.flops_actual:.4g}"),
            ("FLOP ratio", f"{self.flops_actual / self.flops_dense:.3f}" if self.flops_dense else "-"),
        ] + self.extra_rows


def open_trace(run: str | Path) -> tr.Trace:
    """The one way readers open a trace: :func:`accelsim.trace.load_trace` (manifest, tables, their
    consistency) plus the FFF statistics against the manifest. ``simulate``, ``report``, ``compare`` and
    ``trace check`` all call it, so they accept and refuse the same directories."""
    t = tr.load_trace(run)
    _check_fff(Path(run), t, t.steps["step"].to_numpy())
    return t


def check_trace(run: str | Path, *, check_masks: bool = True) -> TraceSummary:
    """Validate a run directory; raise UserError naming the first problem, else summarise it."""
    run = Path(run)
    t = open_trace(run)
    man = t.manifest
    steps = t.steps
    pat = t.patterns
    warnings = [] if pat.num_rows else ["no pattern rows"]
    ffn = man.model.get("ffn") or {}
    if ffn.get("type") == "fff" and (t.fff is None or t.fff.num_rows == 0):
        warnings.append("no fff rows (FFF layers simulated with balanced visits)")
    changed = steps.filter(steps["mask_changed"])["step"].to_pylist()
    mask_files = sorted((run / "masks").glob("step-*.npz")) if (run / "masks").is_dir() else []
    if check_masks and mask_files and pat.num_rows:
        _check_mask_file(mask_files[-1], pat)
    losses = steps["loss"].to_numpy()
    ev = t.eval
    dens = sum(steps[f"flops_{p}_dense"].to_numpy().sum() for p in tr.PHASES)
    act = sum(steps[f"flops_{p}"].to_numpy().sum() for p in tr.PHASES)
    return TraceSummary(
        path=str(run), model=str(man.extra.get("model_name", f"{man.model['layers']}L/{man.model['hidden']}H")),
        method=str(man.method.get("name")), synthetic=man.synthetic, steps=int(steps.num_rows),
        planned_steps=int(man.steps or steps.num_rows), first_loss=float(losses[0]), last_loss=float(losses[-1]),
        first_eval_loss=float(ev["eval_loss"][0].as_py()) if ev.num_rows else None,
        last_eval_loss=float(ev["eval_loss"][-1].as_py()) if ev.num_rows else None,
        final_density=float(steps["density"][-1].as_py()), mask_changes=len(changed),
        pattern_rows=int(pat.num_rows), mask_files=len(mask_files), flops_dense=float(dens),
        flops_actual=float(act), warnings=warnings, extra_rows=_fff_rows(t))


def _fff_rows(t: tr.Trace) -> list[tuple[str, str]]:
    """What a user of an FFF run wants at a glance: the routing's sparsity and its load balance, at the
    first and last recorded step (means over layers)."""
    ffn = t.manifest.model.get("ffn") or {}
    if ffn.get("type") != "fff" or t.fff is None or t.fff.num_rows == 0:
        return []
    steps = t.fff["step"].to_numpy()
    used = t.fff["nodes_used"].to_numpy() / fff_neurons(ffn)
    tokens = t.fff["tokens"].to_numpy()
    deepest = np.array([v[-1] for v in t.fff["level_max_visits"].to_pylist()], float)
    leaves = ffn["trees"] * 2 ** ffn["depth"]
    hot = deepest / (tokens * ffn["trees"] / leaves)  # busiest leaf over the mean leaf
    first, last = steps == steps.min(), steps == steps.max()
    return [("FFN", f"UltraSparseBERT-{ffn['trees']}x{ffn['depth']}: {fff_path_neurons(ffn)} of "
                    f"{fff_neurons(ffn)} neurons per token"),
            ("FFF neurons visited", f"{used[first].mean():.0%} -> {used[last].mean():.0%}"),
            ("FFF busiest leaf / mean", f"{hot[first].mean():.1f}x -> {hot[last].mean():.1f}x")]


def _check_fff(run: Path, t: tr.Trace, step_ids: np.ndarray) -> list[str]:
    """The fff table against the manifest: FFF layers of known blocks, steps of this run, the tree shape,
    hard routing (K*(D+1) neurons per token) and counts that can exist. Returns warnings."""
    src = tr.table_dir(run, "fff")
    ffn = t.manifest.model.get("ffn") or {"type": "dense"}
    fff = t.fff
    if ffn["type"] != "fff":
        expect(fff is None or fff.num_rows == 0, "the model has no FFF layers (manifest model.ffn) but the trace "
               "has fff rows", source=src, field="layer")
        return []
    if fff is None or fff.num_rows == 0:
        return ["no fff rows (FFF layers simulated with balanced visits)"]
    K, D = int(ffn["trees"]), int(ffn["depth"])
    for name in set(fff["layer"].to_pylist()):
        expect(0 <= _block_index(name) < t.manifest.model["layers"],
               f"layer {name!r} is not in an encoder block of the model", source=src, field="layer")
    fstep = fff["step"].to_numpy()
    outside = fstep[~np.isin(fstep, step_ids)]
    expect(outside.size == 0, f"step {outside[:1].tolist()} is not a step of steps.parquet", source=src, field="step")
    for col, want in (("trees", K), ("depth", D), ("neurons", fff_neurons(ffn))):
        got = fff[col].to_numpy()
        expect(bool(np.all(got == want)), f"expected {want} (manifest model.ffn) in every row, got "
               f"{sorted(set(got.tolist()))[:3]}", source=src, field=col)
    npt = fff["neurons_per_token"].to_numpy()
    tokens = fff["tokens"].to_numpy()
    expect(bool(np.all(tokens > 0)), "expected a positive token count", source=src, field="tokens")
    expect(bool(np.allclose(npt, fff_path_neurons(ffn), rtol=0, atol=1e-9)),
           f"expected {fff_path_neurons(ffn)} = K*(D+1) under hard routing, got {sorted(set(npt.tolist()))[:3]}",
           source=src, field="neurons_per_token")
    nodes = fff["nodes_used"].to_numpy()
    expect(bool(np.all((nodes >= fff_path_neurons(ffn)) & (nodes <= fff_neurons(ffn)))),
           "expected between K*(D+1) and the neuron count", source=src, field="nodes_used")
    level_cap = K * 2.0 ** np.arange(D + 1)
    for col, cap in (("level_nodes_used", level_cap), ("level_max_visits", None), ("level_cv", None)):
        lengths = pc.list_value_length(fff[col]).to_numpy(zero_copy_only=False)
        expect(bool(np.all(lengths == D + 1)), f"expected {D + 1} values per row (one per tree level)",
               source=src, field=col)
        vals = np.asarray(pc.list_flatten(fff[col]).to_numpy(zero_copy_only=False), dtype=float).reshape(-1, D + 1)
        expect(bool(np.all(vals >= 0)), "expected non-negative values", source=src, field=col)
        limit = cap if cap is not None else (tokens[:, None] if col == "level_max_visits" else None)
        if limit is not None:
            expect(bool(np.all(vals <= limit)), "a level has more than it can (K*2^level nodes, tokens visits)",
                   source=src, field=col)
    return []


def _check_mask_file(path: Path, pat) -> None:
    step = int(path.stem.split("-")[1])
    try:
        masks = tr.read_masks(path)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(f"unreadable mask file ({err})", source=path) from None
    rows = pat.filter(pc.equal(pat["step"], step))
    recorded = dict(zip(rows["layer"].to_pylist(), rows["nnz"].to_pylist()))
    for name, m in masks.items():
        if name in recorded:
            expect(int(m.sum()) == int(recorded[name]),
                   f"mask of {name} has {int(m.sum())} nonzeros but patterns.parquet records {recorded[name]}",
                   source=path)
