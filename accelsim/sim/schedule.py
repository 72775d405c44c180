"""From a trace to pattern epochs: groups of steps that cost exactly the same.

A step's cost depends only on its :class:`StepKind` and on the sparsity patterns in force, so the
simulator runs each distinct (patterns, kind) combination once and multiplies. Pattern statistics
are quantised first (see :class:`Quantization`), and the quantised values are what the cost model
sees, so memoisation is exact: simulating every step one by one gives the same totals.

Pattern timing follows the trace format: a ``patterns`` row written at step s describes the masks
after step s, so it is in force from step s + 1; the first rows (step 0) are the initial masks.
FFF models add their routing statistics (``fff`` table): a row written at step s describes the forward
pass of step s itself, so each step sees the latest row of each FFF layer at or before it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accelsim.errors import expect
from accelsim.sim.methods import MethodRule, method_rule
from accelsim.trace import HIST_BINS, Trace, table_dir
from accelsim.workload import StepKind, _block_index


def step_kind_ids(rule: MethodRule, mask_changed: np.ndarray) -> tuple[list[StepKind], np.ndarray]:
    """The four possible kinds of a method's steps and each step's index into them."""
    kinds = [StepKind(dense_grad=dg, mask_update=mu, sparse_compute=rule.sparse_compute, mask_select=rule.mask_select)
             for dg in (False, True) for mu in (False, True)]
    mu = np.asarray(mask_changed, dtype=bool) & rule.sparse_compute
    dg = {"never": np.zeros_like(mu), "always": np.ones_like(mu), "on_update": mu}[rule.dense_grad]
    return kinds, dg.astype(np.int64) * 2 + mu.astype(np.int64)


def version_during(starts: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Index of the pattern version in force during each step (``starts`` ascending, first <= steps)."""
    return np.maximum(np.searchsorted(starts, steps, side="right") - 1, 0)


@dataclass(frozen=True)
class Quantization:
    """Resolution of the pattern statistics the cost model sees (and the memo keys are built from).

    Real traces carry statistics that wobble at every mask change (a row's nnz moves by one weight);
    at these resolutions such wobbles merge into one epoch. Rounding moves a statistic by at most half
    its resolution (density +-5e-5, fractions +-5e-4, row/column statistics +-0.05 %), and a cost by
    about as much; pass a finer Quantization to ``simulate`` to trade speed for fidelity."""

    density: float = 1e-4  # absolute; nnz is re-derived as density x rows x cols
    fraction: float = 1e-3  # absolute, for block/N:M occupancy and input zero fractions
    significant: int = 3  # significant digits of per-row / per-column nnz min/mean/max/std
    hist: float = 1e-3  # histogram bins as fractions of rows (cols), absolute
    # FFF routing statistics change at every step; at these resolutions a stable routing is one epoch.
    fff_fraction: float = 1e-2  # per-level fraction of nodes used, absolute
    fff_significant: int = 2  # significant digits of per-level busiest-node ratio and visit cv


# Columns the cost model does not see: ``step``, and ``pruned``/``grown``, which describe the change
# that produced a pattern, not the work of the steps it is in force for (a mask update scores every
# weight, whatever it ends up moving); keeping them would split every epoch of a cosine drop schedule.
_FRACTIONS = ("input_zero_frac", "block4_frac", "block8_frac", "block16_frac", "block32_frac",
              "nm_2_4_frac", "nm_4_8_frac")
_COUNT_STATS = tuple(f"{a}_nnz_{s}" for a in ("row", "col") for s in ("min", "mean", "max", "std"))


def _round_to(x: np.ndarray, step: float) -> np.ndarray:
    # the second round removes float noise such as 0.13340000000000002
    return np.round(np.round(x / step) * step, 12)


def _round_sig(x: np.ndarray, digits: int) -> np.ndarray:
    mag = np.floor(np.log10(np.where(np.abs(x) > 0, np.abs(x), 1.0)))
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(np.round(x * scale) / scale, 12)


class QuantizedPatterns:
    """The patterns table as quantised numpy columns, with a class id per row (equal id = equal row).

    Identical raw rows are merged first (hashing is cheap, rounding 540 k histograms is not), so the
    rounding runs once per distinct row: a synthetic trace repeats a few rows thousands of times."""

    _RAW = ("rows", "cols", "density") + _FRACTIONS + _COUNT_STATS

    def __init__(self, table: pa.Table, q: Quantization):
        raw = [table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in self._RAW]
        hists = {a: _hist_matrix(table, a) for a in ("row", "col")}
        raw_id = group_ids(raw + [h[:, i] for h in hists.values() for i in range(HIST_BINS)])
        _, first, self.rep = np.unique(raw_id, return_index=True, return_inverse=True)
        self.rep = self.rep.reshape(-1)

        def col(name):
            return raw[self._RAW.index(name)][first]

        rows, cols = col("rows"), col("cols")
        self.cols: dict[str, np.ndarray] = {"rows": rows, "cols": cols}
        dens = _round_to(col("density"), q.density)
        self.cols["density"] = dens
        self.cols["nnz"] = np.round(dens * rows * cols)
        for name in _FRACTIONS:
            self.cols[name] = _round_to(col(name), q.fraction)  # NaN (not measured) stays NaN
        for name in _COUNT_STATS:
            self.cols[name] = _round_sig(col(name), q.significant)
        for axis, total in (("row", rows), ("col", cols)):
            # bins count rows (cols); quantise them as fractions of all rows (cols)
            frac = hists[axis][first] / np.maximum(total, 1.0)[:, None]
            self.cols[f"{axis}_nnz_hist"] = np.round(_round_to(frac, q.hist) * total[:, None])
        self.class_id = group_ids(list(self._flat_columns()))[self.rep]

    def _flat_columns(self):
        for name, values in self.cols.items():
            if values.ndim == 2:
                yield from values.T
            else:
                yield values

    def row(self, i: int, layer: str) -> dict:
        """The quantised statistics of table row ``i``, as the cost model receives them."""
        r = self.rep[i]
        out: dict = {"layer": layer}
        for name, values in self.cols.items():
            if values.ndim == 2:
                out[name] = values[r].astype(np.int64).tolist()
            elif name in ("rows", "cols", "nnz"):
                out[name] = int(values[r])
            else:
                out[name] = float(values[r])
        return out


def _hist_matrix(table: pa.Table, axis: str) -> np.ndarray:
    flat = pc.list_flatten(table[f"{axis}_nnz_hist"]).to_numpy(zero_copy_only=False)
    return np.asarray(flat, dtype=np.float64).reshape(table.num_rows, HIST_BINS)


def group_ids(columns: list[np.ndarray]) -> np.ndarray:
    """Dense ids such that two positions share an id iff they are equal in every column.

    Arrow's hash-based dictionary encoding keeps this linear in rows (NaN equals NaN here, which
    is what "not measured" needs)."""
    n = len(columns[0]) if columns else 0
    ids = np.zeros(n, dtype=np.int64)
    for c in columns:
        codes = pc.dictionary_encode(pa.array(c)).indices.to_numpy(zero_copy_only=False).astype(np.int64)
        combined = ids * (int(codes.max(initial=0)) + 1) + codes
        ids = pc.dictionary_encode(pa.array(combined)).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    return ids


@dataclass
class Epoch:
    """Steps that cost the same: their kind, the layer densities and pattern rows the cost model sees."""

    kind: StepKind
    densities: dict[str, float]
    patterns: dict[str, dict]
    count: int = 0


@dataclass
class EpochPlan:
    steps: np.ndarray  # step ids, as in the trace
    epoch_of_step: np.ndarray  # index into ``epochs`` for every step
    epochs: list[Epoch] = field(default_factory=list)

    @property
    def counts(self) -> np.ndarray:
        return np.array([e.count for e in self.epochs], dtype=np.int64)


def _steps_and_changes(trace: Trace) -> tuple[np.ndarray, np.ndarray]:
    steps = trace.steps["step"].to_numpy()
    expect(len(steps) > 0, "no step rows to simulate", source=table_dir(trace.path, "steps"))
    return steps, trace.steps["mask_changed"].to_numpy(zero_copy_only=False).astype(bool)


def dense_plan(trace: Trace) -> EpochPlan:
    """The same steps as the dense baseline: one epoch, dense products, no mask work, and FFF layers
    replaced by the dense FF of equal width (K * (2^(D+1) - 1) neurons)."""
    steps, _ = _steps_and_changes(trace)
    dens = {i.name: 1.0 for i in trace.manifest.layers}
    kind = StepKind(dense_grad=False, mask_update=False, sparse_compute=False, conditional=False)
    epoch = Epoch(kind, dens, {}, len(steps))
    return EpochPlan(steps, np.zeros(len(steps), dtype=np.int64), [epoch])


def plan_epochs(trace: Trace, quant: Quantization = Quantization()) -> EpochPlan:
    """Group the steps into pattern epochs (equal quantised patterns and equal step kind)."""
    return _plan(trace, quant, group=True)


def plan_per_step(trace: Trace, quant: Quantization = Quantization()) -> EpochPlan:
    """Every step its own epoch: the brute-force reference for the memoised plan."""
    return _plan(trace, quant, group=False)


def _plan(trace: Trace, quant: Quantization, group: bool) -> EpochPlan:
    man = trace.manifest
    rule = method_rule(man.method, source=str(trace.path / "manifest.json"))
    steps, changed = _steps_and_changes(trace)
    kinds, kind_ids = step_kind_ids(rule, changed)
    sparse = [i for i in man.layers if i.sparse]
    pat = trace.patterns
    if sparse and pat.num_rows and rule.sparse_compute:
        versions = _Versions(pat, sparse, quant, trace)
        during = versions.during(steps)
        vclass = versions.class_id[during]
    else:
        versions, vclass = None, np.zeros(len(steps), dtype=np.int64)
    fff = FFFVersions(trace, quant) if (man.model.get("ffn") or {}).get("type") == "fff" and \
        trace.fff is not None and trace.fff.num_rows else None
    fclass = fff.during(steps) if fff is not None else np.zeros(len(steps), dtype=np.int64)
    if group:
        combo = group_ids([vclass, fclass, kind_ids])
        _, first, inverse, counts = np.unique(combo, return_index=True, return_inverse=True, return_counts=True)
    else:
        first = np.arange(len(steps))
        inverse, counts = first, np.ones(len(steps), dtype=np.int64)
    epochs = []
    for f, c in zip(first, counts):
        kind = kinds[int(kind_ids[f])]
        dens = {i.name: i.target_density for i in sparse}
        pats: dict[str, dict] = {}
        if versions is not None:
            dens, pats = versions.state(int(during[f]), dens)
        if fff is not None:
            pats.update(fff.state(int(steps[f])))
        epochs.append(Epoch(kind, dens, pats, int(c)))
    return EpochPlan(steps, inverse.reshape(-1).astype(np.int64), epochs)


class _Versions:
    """Pattern versions: version 0 = initial masks (from step 0), version k = masks after the k-th
    distinct pattern step u_k, in force from u_k + 1. A layer without a row at some change keeps its
    previous row."""

    def __init__(self, pat: pa.Table, sparse, quant: Quantization, trace: Trace):
        names = [i.name for i in sparse]
        index = {n: j for j, n in enumerate(names)}
        layer_col = pat["layer"].to_pylist()
        unknown = sorted(set(layer_col) - set(index))
        expect(not unknown, f"layers {unknown[:3]} are not sparse layers of the manifest",
               source=table_dir(trace.path, "patterns"), field="layer")
        self.names = names
        self.q = QuantizedPatterns(pat, quant)
        pstep = pat["step"].to_numpy()
        lidx = np.fromiter((index[n] for n in layer_col), dtype=np.int64, count=len(layer_col))
        uniq = np.unique(pstep)
        self.starts = np.concatenate([[np.iinfo(np.int64).min], uniq + 1])
        self.row_at = np.full((len(uniq) + 1, len(names)), -1, dtype=np.int64)
        for j in range(len(names)):
            rows = np.nonzero(lidx == j)[0]  # ascending step (the table is sorted by step, stably)
            if rows.size == 0:
                continue
            self.row_at[0, j] = rows[0]
            pos = np.searchsorted(pstep[rows], uniq, side="right") - 1
            self.row_at[1:, j] = np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)
        row_class = np.concatenate([self.q.class_id, [-1]])  # -1 row -> "no pattern" class
        self.class_id = group_ids([row_class[self.row_at[:, j]] for j in range(len(names))])

    def during(self, steps: np.ndarray) -> np.ndarray:
        return version_during(self.starts, steps)

    def state(self, version: int, dens: dict[str, float]) -> tuple[dict[str, float], dict[str, dict]]:
        dens, pats = dict(dens), {}
        for j, name in enumerate(self.names):
            r = int(self.row_at[version, j])
            if r >= 0:
                pats[name] = self.q.row(r, name)
                dens[name] = pats[name]["density"]
        return dens, pats


def fff_key(block: int) -> str:
    """Key of an FFF layer's routing statistics in an epoch's pattern dict (cond_matmul ops have no layer)."""
    return f"fff:block{block}"


class FFFVersions:
    """The fff table as quantised per-level statistics (what the cost model receives for cond_matmul ops)
    and, per step, the class of the rows in force (latest row of each FFF layer at or before the step).

    Rows are normalised before rounding: ``level_used_frac`` = nodes used / (K * 2^l), ``level_max_ratio``
    = busiest node's visits / the mean (tokens / 2^l), ``level_cv``; so they do not depend on the token
    count and apply unchanged to a data-parallel device's share of the batch."""

    def __init__(self, trace: Trace, q: Quantization):
        table, ffn, src = trace.fff, trace.manifest.model["ffn"], table_dir(trace.path, "fff")
        K, L = int(ffn["trees"]), int(ffn["depth"]) + 1
        names = table["layer"].to_pylist()
        blocks = np.array([_block_index(n) for n in names], dtype=np.int64)
        bad = [n for n, b in zip(names, blocks) if not 0 <= b < trace.manifest.model["layers"]]
        expect(not bad, f"layers {sorted(set(bad))[:3]} are not encoder blocks of the model", source=src,
               field="layer")
        mats = {c: _list_matrix(table, c, L, src) for c in ("level_nodes_used", "level_max_visits", "level_cv")}
        tokens = table["tokens"].to_numpy().astype(np.float64)[:, None]
        per_node = tokens / 2.0 ** np.arange(L)  # mean visits of a level-l node of one tree
        self.cols = {
            "level_used_frac": _round_to(mats["level_nodes_used"] / (K * 2.0 ** np.arange(L)), q.fff_fraction),
            "level_max_ratio": _round_sig(np.maximum(mats["level_max_visits"] / np.maximum(per_node, 1e-300), 1.0),
                                          q.fff_significant),
            "level_cv": _round_sig(np.maximum(mats["level_cv"], 0.0), q.fff_significant)}
        self.row_class = group_ids([m[:, i] for m in self.cols.values() for i in range(L)])
        self.blocks = sorted(set(blocks.tolist()))
        self.rows = {b: np.nonzero(blocks == b)[0] for b in self.blocks}  # ascending step (table sorted)
        self.row_step = table["step"].to_numpy()
        self.trees, self.depth = K, L - 1

    def _in_force(self, block: int, steps: np.ndarray) -> np.ndarray:
        rows = self.rows[block]
        pos = np.searchsorted(self.row_step[rows], steps, side="right") - 1
        return np.where(pos >= 0, rows[np.maximum(pos, 0)], -1)

    def during(self, steps: np.ndarray) -> np.ndarray:
        """Class id per step of the quantised rows in force (-1 rows: balanced, no statistics yet)."""
        cls = np.concatenate([self.row_class, [-1]])
        return group_ids([cls[self._in_force(b, steps)] for b in self.blocks])

    def state(self, step: int) -> dict[str, dict]:
        out = {}
        for b in self.blocks:
            r = int(self._in_force(b, np.array([step]))[0])
            if r >= 0:
                out[fff_key(b)] = {"layer": fff_key(b), "trees": self.trees, "depth": self.depth,
                                   **{c: m[r].tolist() for c, m in self.cols.items()}}
        return out


def _list_matrix(table: pa.Table, column: str, levels: int, src) -> np.ndarray:
    lengths = pc.list_value_length(table[column]).to_numpy(zero_copy_only=False)
    expect(bool(np.all(lengths == levels)), f"expected {levels} values per row (depth + 1 levels)", source=src,
           field=column)
    return np.asarray(pc.list_flatten(table[column]).to_numpy(zero_copy_only=False), dtype=np.float64).reshape(
        table.num_rows, levels)
