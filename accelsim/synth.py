"""Synthetic traces: a valid run directory for any BERT size, method and length, without training.

Real traces come from ``trainer/``; synthetic ones let the simulator answer "what would a 1 M-step
BERT-base RigL run cost" in seconds. Everything here is marked ``synthetic`` in the manifest:

* layer list and densities are exact (BERT presets, ERK or uniform distribution);
* FLOP columns come from :func:`accelsim.workload.step_ops`, like the trainer's;
* mask changes follow the trainer's conventions (trainer/sparsity/schedules.py): after step s when
  (s + 1) % update_every == 0 and s + 1 < end_fraction x steps; GMP prunes on Zhu & Gupta's cubic
  schedule between 10 % and 75 % of training (in GMP_GRID increments); N:M recomputes its masks
  every ``update_every`` steps all along;
* pattern statistics come from masks drawn with the method's structure (random, N:M, blocks) and
  run through :func:`accelsim.patterns.pattern_stats`. To keep a 1 M-step trace fast, one mask is
  drawn per distinct (shape, nnz) and its statistics repeat at every mask change (``redraw`` draws
  afresh each time); ``pruned``/``grown`` follow RigL's cosine drop fraction (GMP: the nnz drop;
  N:M flips and SNFS's drifting per-layer densities are not modelled: 0 and constant);
* the loss curve is NOT measured: it is a documented power law (:func:`synthetic_loss`) so that
  time-to-target-loss can be exercised; ``wall_s`` is NaN because nothing ran, and
  ``input_zero_frac`` is 0 (BERT's linears read LayerNorm, attention-context and GELU outputs).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from accelsim import __version__
from accelsim.bert import PRESETS, bert_linears, bert_params, cosine_drop_fraction, erk, uniform
from accelsim.errors import expect
from accelsim.patterns import pattern_stats
from accelsim.sim.methods import known_methods, method_rule
from accelsim.trace import LayerInfo, Manifest, append_columns, append_rows, write_manifest
from accelsim.workload import phase_flops, step_ops


#: the size presets, their encoder Linears and the layer distributions are accelsim.bert's (shared with the trainer)
BERT_PRESETS = PRESETS


def uniform_densities(shapes: dict[str, list[int]], sparsity: float) -> dict[str, float]:
    return uniform(shapes, 1.0 - sparsity)


def erk_densities(shapes: dict[str, list[int]], sparsity: float) -> dict[str, float]:
    """ERK (accelsim.bert.erk) at 1 - ``sparsity``, the trainer's distribution."""
    expect(sparsity < 1.0, f"sparsity {sparsity} leaves no weights", field="sparsity")
    return erk(shapes, 1.0 - sparsity)


DISTRIBUTIONS = {"erk": erk_densities, "uniform": uniform_densities}


# --- schedules and loss -------------------------------------------------------------------------

def synthetic_loss(steps: np.ndarray, effective_params: float, vocab: int, seed: int = 0) -> np.ndarray:
    """A synthetic (not measured) MLM loss curve: L(t) = L_inf + (ln V - L_inf)(1 + t/2000)^-0.5,
    with L_inf = 1.0 + 0.9 (N_eff / 1.1e8)^-0.15 (fewer effective weights -> higher floor, as in
    parameter-count scaling laws) and N(0, 0.03) batch noise. Only shape and ordering are meant."""
    l_inf = 1.0 + 0.9 * (effective_params / 1.1e8) ** -0.15
    curve = l_inf + (math.log(vocab) - l_inf) * (1.0 + steps / 2000.0) ** -0.5
    return curve + np.random.default_rng(seed).normal(0.0, 0.03, size=len(steps))


def _bert_lr(steps: np.ndarray, total: int, peak: float = 1e-4) -> np.ndarray:
    """BERT's schedule: linear warm-up over the first 1 % of steps, then linear decay to 0."""
    warm = max(1, total // 100)
    return np.where(steps < warm, peak * (steps + 1) / warm,
                    peak * np.maximum(total - steps, 0) / max(total - warm, 1))


class MaskSource:
    """Masks of one shape and structure, drawn from fixed random priorities so that masks of
    decreasing nnz are nested (as magnitude pruning makes them) and equal nnz gives equal masks."""

    def __init__(self, structure: str, shape: list[int], seed: int, *, n: int = 2, m: int = 4, block: int = 16):
        self.structure, self.shape = structure, tuple(shape)
        self.n, self.m, self.block = n, m, block
        self.rng = np.random.default_rng(seed)
        self._ranks: np.ndarray | None = None

    def redraw(self) -> None:
        self._ranks = None

    def _priorities(self, size: int) -> np.ndarray:
        if self._ranks is None or self._ranks.size != size:
            self._ranks = self.rng.permutation(size)
        return self._ranks

    def mask(self, nnz: int) -> np.ndarray:
        return STRUCTURES[self.structure](self, nnz)


def _random_mask(src: MaskSource, nnz: int) -> np.ndarray:
    rows, cols = src.shape
    return (src._priorities(rows * cols) < nnz).reshape(rows, cols)


def _nm_mask(src: MaskSource, nnz: int) -> np.ndarray:
    """The n highest-priority weights of every group of m consecutive inputs (nnz is implied)."""
    rows, cols = src.shape
    expect(cols % src.m == 0, f"{cols} input features do not split into groups of {src.m}", field="method.m")
    keys = src._priorities(rows * cols).reshape(rows, cols // src.m, src.m)
    kth = np.sort(keys, axis=2)[:, :, src.m - src.n][:, :, None]
    return (keys >= kth).reshape(rows, cols)


def _block_mask(src: MaskSource, nnz: int) -> np.ndarray:
    """Whole b x b tiles, as many as nnz / b^2 rounds to (at least one)."""
    rows, cols = src.shape
    b = src.block
    br, bc = -(-rows // b), -(-cols // b)
    tiles = src._priorities(br * bc) < max(1, round(nnz / b ** 2))
    return np.repeat(np.repeat(tiles.reshape(br, bc), b, axis=0), b, axis=1)[:rows, :cols]


#: mask structure of a method (accelsim.sim.methods.MethodRule.structure) -> drawer
STRUCTURES = {"random": _random_mask, "nm": _nm_mask, "block": _block_mask}


def _change_steps(rule, steps: int, update_every: int, t_end: float) -> np.ndarray:
    """Steps after which masks change, with the trainer's convention (trainer/sparsity/schedules.py):
    after step s when (s + 1) % update_every == 0 and s + 1 < T_end; N:M recomputes masks all along."""
    if rule.schedule == "none":
        return np.zeros(0, dtype=np.int64)
    stop = steps + 1 if rule.schedule == "recompute" else min(math.ceil(t_end), steps + 1)
    return np.arange(update_every, stop, update_every, dtype=np.int64) - 1


#: Synthetic GMP prunes in increments of this fraction of the dense-to-final gap, so a 1 M-step run
#: holds ~200 distinct densities (each needs a drawn mask); a mask change is recorded only at the
#: scheduled pruning steps where the rounded density moves.
GMP_GRID = 0.005


def _gmp_changes(steps: int, update_every: int, start_fraction: float, end_fraction: float):
    """Zhu & Gupta's cubic schedule as the trainer runs it: updates at t = t0 + k dT (k = 1..n),
    remaining gap (1 - (t - t0)/(n dT))^3, rounded to GMP_GRID. Returns (steps, remaining gap)."""
    t0, t_end = round(start_fraction * steps), round(end_fraction * steps)
    n = (t_end - t0) // update_every
    expect(n >= 1, "the pruning window is shorter than update_every", field="update_every")
    t = t0 + update_every * np.arange(1, n + 1, dtype=np.int64)
    gap = np.round((1.0 - (t - t0) / (n * update_every)) ** 3 / GMP_GRID) * GMP_GRID
    keep = gap != np.concatenate([[1.0], gap[:-1]])  # monotone, so equal grid points are consecutive
    return t[keep] - 1, gap[keep]


def synth_trace(model: str = "bert-base", method: str = "rigl", sparsity: float = 0.9, steps: int = 1_000_000,
                update_every: int = 100, batch_size: int = 256, seq_len: int = 128, distribution: str = "erk",
                out: Path | str = Path("runs/synth"), *, drop_fraction: float = 0.3, end_fraction: float = 0.75,
                nm_m: int = 4, block_size: int = 16, gmp_start_fraction: float = 0.1, dtype: str = "fp32", seed: int = 0,
                redraw: bool = False, overwrite: bool = False) -> Path:
    """Write a synthetic run directory and return its path.

    ``batch_size`` 256 x ``seq_len`` 128 is BERT's phase-1 pre-training batch (Devlin et al. 2019).
    Defaults follow the trainer's SparsityConfig (drop 0.3 with cosine decay, masks frozen after 75 %,
    GMP pruning from 10 % to 75 % of training). ``redraw`` draws fresh masks at every mask change (slow on big models; gives every pattern epoch
    distinct statistics, as a real trace has) instead of repeating one draw per shape.
    """
    out = Path(out)
    expect(model in BERT_PRESETS, f"unknown model; expected one of {sorted(BERT_PRESETS)}", field="model")
    expect(method in known_methods(), f"unknown method; expected one of {known_methods()}", field="method")
    expect(distribution in DISTRIBUTIONS, f"expected one of {sorted(DISTRIBUTIONS)}", field="distribution")
    expect(steps > 0 and update_every > 0 and batch_size > 0 and seq_len > 0,
           "steps, update_every, batch_size and seq_len must be positive", field="steps")
    expect(0.0 <= sparsity < 1.0, "expected a sparsity in [0, 1)", field="sparsity")
    from accelsim.trace_rules import LIMITS  # the manifest's documented limits: refuse before allocating

    for name, value in (("steps", steps), ("batch_size", batch_size), ("seed", seed)):
        expect(value <= LIMITS[name], f"expected at most {LIMITS[name]}, got {value}", field=name)
    expect(seed >= 0, f"expected a non-negative seed, got {seed}", field="seed")
    expect(0.0 <= drop_fraction <= 1.0 and 0.0 < end_fraction <= 1.0,
           "expected drop_fraction in [0, 1] and end_fraction in (0, 1]", field="drop_fraction")
    _prepare_out(out, overwrite)
    rule = method_rule(method)
    dims = BERT_PRESETS[model]
    expect(seq_len <= dims.max_position, f"BERT positions stop at {dims.max_position}", field="seq_len")
    linears = bert_linears(dims)
    shapes = {name: shape for name, _, shape in linears}
    spec: dict = {"name": method, "total_steps": steps, "sparsity": sparsity, "update_every": update_every,
                  "distribution": distribution, "drop_fraction": drop_fraction, "end_fraction": end_fraction,
                  "sim_rule": rule.to_manifest()}
    if rule.schedule == "prune":
        spec["gmp_start_fraction"] = gmp_start_fraction
    if not rule.sparse_compute:
        targets = {n: 1.0 for n in shapes}
        spec.update(sparsity=0.0, update_every=None)
    elif rule.structure == "nm":
        n = round((1.0 - sparsity) * nm_m)
        expect(1 <= n < nm_m, f"N:M with M={nm_m} needs (1 - sparsity) x M to round to 1..{nm_m - 1}; "
               f"use e.g. --sparsity 0.5 for 2:4", field="sparsity")
        targets = {name: n / nm_m for name in shapes}
        spec.update(n=n, m=nm_m, sparsity=1.0 - n / nm_m, nm_update_every=update_every)
    else:
        targets = DISTRIBUTIONS[distribution](shapes, sparsity)
        if rule.structure == "block":
            spec["block"] = block_size
    layers = [LayerInfo(name, role, list(shape), float(targets[name]), sparse=rule.sparse_compute)
              for name, role, shape in linears]
    manifest = Manifest(
        model={"layers": dims.layers, "hidden": dims.hidden, "heads": dims.heads, "vocab": dims.vocab,
               "intermediate": dims.intermediate, "seq_len": seq_len, "params": bert_params(dims)},
        batch_size=batch_size, dtype=dtype, method=spec, layers=layers, seed=seed, steps=steps,
        synthetic=True, versions={"accelsim": __version__},
        extra={"model_name": model, "generator": "accelsim.synth", "loss": "synthetic power law, see accelsim.synth.synthetic_loss",
               "pattern_draws": "per change" if redraw else "one per (shape, nnz)"})
    versions, nnz = _nnz_schedule(rule, layers, targets, steps, update_every, spec)
    write_manifest(out, manifest)
    if rule.sparse_compute:
        nnz = _write_patterns(out, rule, spec, layers, versions, nnz, end_fraction * steps, seed, redraw)
    _write_steps(out, manifest, rule, versions, nnz, seed)
    return out


def _prepare_out(out: Path, overwrite: bool) -> None:
    import shutil

    if out.exists() and any(out.iterdir()):
        expect(overwrite, "directory is not empty; choose a new --out or pass --overwrite", source=out)
        expect((out / "manifest.json").is_file(), "refusing to overwrite a directory that is not a run",
               source=out)
        for child in ("steps.parquet", "patterns.parquet", "eval.parquet", "masks", "sim"):
            shutil.rmtree(out / child, ignore_errors=True)


def _nnz_schedule(rule, layers, targets, steps, update_every, spec):
    """Pattern steps (0 = initial masks, then each change) and each layer's nnz, [version, layer]."""
    numel = np.array([i.shape[0] * i.shape[1] for i in layers], dtype=np.float64)
    final = np.array([targets[i.name] for i in layers])
    if rule.schedule == "prune":
        change, gap = _gmp_changes(steps, update_every, spec["gmp_start_fraction"], spec["end_fraction"])
        gaps = np.concatenate([[1.0], gap])  # GMP starts dense
    else:
        change = _change_steps(rule, steps, update_every, spec["end_fraction"] * steps)
        gaps = np.zeros(len(change) + 1)
    versions = np.concatenate([[0], change]).astype(np.int64)
    dens = final[None, :] + (1.0 - final[None, :]) * gaps[:, None]
    return versions, np.round(dens * numel[None, :]).astype(np.int64)


#: Rows per Parquet part: big enough that writing is a handful of appends, small enough to bound memory.
_PART_ROWS = 200_000


def _write_patterns(out, rule, spec, layers, versions, nnz, t_end, seed, redraw) -> np.ndarray:
    """Write one pattern row per sparse layer and version; return the drawn masks' nnz."""
    sources: dict[tuple, MaskSource] = {}
    cache: dict[tuple, dict] = {}
    actual = np.zeros_like(nnz)
    drop = cosine_drop_fraction(versions + 1.0, spec["drop_fraction"], t_end)  # t = completed steps
    rows: list[dict] = []
    for v, step in enumerate(versions):
        if redraw:
            for src in sources.values():
                src.redraw()
        for j, info in enumerate(layers):
            shape = tuple(info.shape)
            src = sources.get(shape)
            if src is None:
                src = sources[shape] = MaskSource(rule.structure, info.shape, seed + len(sources),
                                                  n=spec.get("n", 2), m=spec.get("m", 4),
                                                  block=spec.get("block", 16))
            key = (shape, int(nnz[v, j]), v if redraw else -1)
            stats = cache.get(key)
            if stats is None:
                stats = cache[key] = pattern_stats(src.mask(int(nnz[v, j])))
            actual[v, j] = stats["nnz"]
            pruned = grown = 0
            if v > 0 and rule.schedule == "regrow":
                pruned = grown = int(round(drop[v] * actual[v, j]))
            elif v > 0 and rule.schedule == "prune":
                pruned = int(actual[v - 1, j] - actual[v, j])
            rows.append({**stats, "step": int(step), "layer": info.name, "pruned": pruned, "grown": grown,
                         # BERT's linears read LayerNorm / softmax-context / GELU outputs: no exact zeros
                         "input_zero_frac": 0.0})
        if len(rows) >= _PART_ROWS:
            append_rows(out, "patterns", rows)
            rows = []
    append_rows(out, "patterns", rows)
    return actual


def _write_steps(out, manifest, rule, versions, nnz, seed) -> None:
    from accelsim.sim.schedule import step_kind_ids, version_during

    steps = np.arange(manifest.steps, dtype=np.int64)
    mask_changed = np.zeros(len(steps), dtype=bool)
    mask_changed[versions[1:]] = True
    kinds, kind_ids = step_kind_ids(rule, mask_changed)
    starts = np.concatenate([[0], versions[1:] + 1])  # a pattern written after step s holds from s + 1
    during = version_during(starts, steps)
    numel = np.array([i.shape[0] * i.shape[1] for i in manifest.layers], dtype=np.float64)
    # versions with equal nnz everywhere (all of RigL's) need their FLOPs counted once
    distinct, klass = np.unique(nnz, axis=0, return_inverse=True)
    dens = distinct / numel[None, :]
    combo = klass.reshape(-1)[during] * len(kinds) + kind_ids
    uniq, inverse = np.unique(combo, return_inverse=True)
    flops = {}
    for u_idx, u in enumerate(uniq):
        v, k = divmod(int(u), len(kinds))
        densities = {info.name: float(dens[v, j]) for j, info in enumerate(manifest.layers)}
        for col, val in phase_flops(step_ops(manifest, densities, kinds[k])).items():
            flops.setdefault(col, np.zeros(len(uniq)))[u_idx] = val
    after = version_during(starts, steps + 1)  # pattern holding after each step
    overall = nnz.sum(axis=1) / numel.sum() if len(numel) else np.ones(len(versions))
    eff = manifest.model["params"] - numel.sum() + nnz[-1].sum()  # weights left after the final masks
    cols = {"step": steps, "loss": synthetic_loss(steps, eff, manifest.model["vocab"], seed),
            "lr": _bert_lr(steps, manifest.steps), "tokens": np.full(len(steps), manifest.batch_size *
                                                                     manifest.model["seq_len"]),
            "wall_s": np.full(len(steps), np.nan), "mask_changed": mask_changed, "density": overall[after]}
    cols.update({c: v[inverse] for c, v in flops.items()})
    for lo in range(0, len(steps), _PART_ROWS):
        append_columns(out, "steps", {c: v[lo:lo + _PART_ROWS] for c, v in cols.items()})


def synth_sweep(model: str = "bert-base", sparsities=(0.5, 0.7, 0.8, 0.9, 0.95), *, method: str = "rigl",
                out: Path | str = Path("runs/synth-sweep"), overwrite: bool = False, **kwargs) -> list[Path]:
    """One synthetic run per sparsity (plus nothing else), under ``out/<model>-<method>-s<sparsity>``."""
    out = Path(out)
    return [synth_trace(model=model, method=method, sparsity=s, out=out / f"{model}-{method}-s{s:g}",
                        overwrite=overwrite, **kwargs) for s in sparsities]
