"""The trace: the one contract between the trainer (writer) and the simulator (reader).

Every column, unit and file of a run directory is defined here and nowhere else;
``docs/trace-format.md`` documents the same names (a test keeps the two in step).

A run directory holds::

    manifest.json            run description (model dims, method, per-layer list, versions)
    steps.parquet/           one row per optimizer step, as append-only part files
    patterns.parquet/        one row per sparse layer at step 0 and at every mask change
    eval.parquet/            held-out metrics at intervals
    fff.parquet/             fast-feedforward routing statistics (FFF models only)
    masks/step-XXXXXXXX.npz  bit-packed full masks at mask changes (optional)
    checkpoint.pt            latest resumable state (trainer only)

Tables are directories of Parquet parts so that writing is append-only: a part is written to a
temporary name and renamed, so a kill leaves every finished part readable and none half-written.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ConfigDict, ValidationError
from pydantic.dataclasses import dataclass as validated

from accelsim import trace_rules as rules
from accelsim.errors import UserError, expect
from accelsim.trace_rules import (DTYPES, FFF_TRAIN_MODES, FFN_TYPES, BatchSize, Density, Flag,  # noqa: F401
                                  MethodDict, ModelDict, Name, Seed, Shape, Steps)

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = (1,)

#: Roles of the layers a manifest lists; the simulator maps each role to a place in the op graph.
ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out", "mlm_transform", "other")

#: FLOP phases of one training step (RigL paper's accounting, see docs/trace-format.md).
PHASES = ("fwd", "bwd_input", "bwd_weight", "optimizer", "mask_update")

#: Column -> (arrow type, unit, meaning).
STEP_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "step": (pa.int64(), "count", "optimizer step index, 0-based"),
    "loss": (pa.float64(), "nats", "training MLM loss of this step's batch"),
    "lr": (pa.float64(), "1", "learning rate used for this step"),
    "tokens": (pa.int64(), "tokens", "input tokens processed this step (batch x sequence, padding included)"),
    "wall_s": (pa.float64(), "s", "measured wall time of this step on the training host"),
    "mask_changed": (pa.bool_(), "bool", "masks were updated at the end of this step"),
    "density": (pa.float64(), "1", "overall density of the sparse layers after this step"),
}
for _phase in PHASES:
    STEP_COLUMNS[f"flops_{_phase}_dense"] = (
        pa.float64(), "FLOP", f"{_phase} FLOPs of the same step on the dense model")
    STEP_COLUMNS[f"flops_{_phase}"] = (
        pa.float64(), "FLOP", f"{_phase} FLOPs the method actually needs (nonzeros only where sparse)")

#: Bins of the per-row / per-column nnz histograms: counts of rows whose nnz/len falls in
#: [i/HIST_BINS, (i+1)/HIST_BINS), the last bin closed at 1.
HIST_BINS = 16
BLOCK_SIZES = (4, 8, 16, 32)

PATTERN_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "step": (pa.int64(), "count", "step after which this pattern holds (0 = initial masks)"),
    "layer": (pa.string(), "name", "module name, as in the manifest's layer list"),
    "rows": (pa.int64(), "count", "weight rows (output features)"),
    "cols": (pa.int64(), "count", "weight columns (input features)"),
    "density": (pa.float64(), "1", "nnz / (rows x cols)"),
    "nnz": (pa.int64(), "count", "nonzero (unmasked) weights"),
    "pruned": (pa.int64(), "count", "weights removed by this mask change"),
    "grown": (pa.int64(), "count", "weights added by this mask change"),
    "input_zero_frac": (pa.float64(), "1", "fraction of exact zeros in the layer's input activations (last batch)"),
}
for _axis in ("row", "col"):
    for _stat in ("min", "mean", "max", "std"):
        PATTERN_COLUMNS[f"{_axis}_nnz_{_stat}"] = (
            pa.float64(), "count", f"{_stat} of nonzeros per weight {_axis}")
    PATTERN_COLUMNS[f"{_axis}_nnz_hist"] = (
        pa.list_(pa.int64()), "count", f"histogram of nnz/len per {_axis}, {HIST_BINS} equal bins on [0, 1]")
for _b in BLOCK_SIZES:
    PATTERN_COLUMNS[f"block{_b}_frac"] = (
        pa.float64(), "1", f"fraction of {_b}x{_b} blocks holding at least one nonzero")
PATTERN_COLUMNS["nm_2_4_frac"] = (pa.float64(), "1", "fraction of row groups of 4 with <= 2 nonzeros")
PATTERN_COLUMNS["nm_4_8_frac"] = (pa.float64(), "1", "fraction of row groups of 8 with <= 4 nonzeros")

EVAL_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "step": (pa.int64(), "count", "step after which the evaluation ran"),
    "eval_loss": (pa.float64(), "nats", "held-out loss: MLM (phase pretrain) or task cross-entropy (finetune)"),
    "eval_accuracy": (pa.float64(), "1", "held-out accuracy: masked tokens (pretrain) or task examples (finetune)"),
    "eval_f1": (pa.float64(), "1", "held-out F1 of the positive class (binary finetune tasks; NaN otherwise)"),
    "eval_mcc": (pa.float64(), "1", "held-out Matthews correlation (finetune tasks; NaN otherwise)"),
}

#: Columns added after schema version 1 first shipped: parts written before them read as NaN.
OPTIONAL_COLUMNS = {"eval": ("eval_f1", "eval_mcc")}
#: ``manifest.phase``: what the run trained for; a finetune run names its pretrained run in ``parent``.
RUN_PHASES = ("pretrain", "finetune")

#: Fast feedforward (UltraSparseBERT) layers: one row per FFF layer per recorded training step.
#: Load balance is summarised per tree level (lists of length depth + 1, root first) rather than stored
#: as per-node counts: those are K*(2^(D+1)-1) numbers per row (4095 at depth 11).
FFF_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "step": (pa.int64(), "count", "training step whose forward pass these statistics describe"),
    "layer": (pa.string(), "name", "module name of the FFF layer (replaces the block's intermediate)"),
    "tokens": (pa.int64(), "tokens", "tokens routed through the layer in this step (padding included)"),
    "trees": (pa.int64(), "count", "parallel trees K"),
    "depth": (pa.int64(), "count", "tree depth D (D + 1 levels)"),
    "neurons": (pa.int64(), "count", "neurons of the layer, K x (2^(D+1) - 1)"),
    "neurons_per_token": (pa.float64(), "count",
                          "mean distinct neurons evaluated per token (K x (D+1) under hard routing)"),
    "nodes_used": (pa.int64(), "count", "distinct neurons visited by at least one token"),
    "level_nodes_used": (pa.list_(pa.int64()), "count", "per level: distinct nodes visited (of K x 2^level)"),
    "level_max_visits": (pa.list_(pa.int64()), "tokens",
                         "per level: visits of the most-loaded node (the mean node gets tokens / 2^level)"),
    "level_cv": (pa.list_(pa.float64()), "1",
                 "per level: std / mean of the visits of its K x 2^level nodes (0 = perfectly balanced)"),
    "flops_cond": (pa.float64(), "FLOP",
                   "forward matmul FLOPs of the conditional path: 4 x tokens x hidden x neurons_per_token"),
    "flops_dense_equiv": (pa.float64(), "FLOP",
                          "forward matmul FLOPs of the dense FF of equal width: 4 x tokens x hidden x neurons"),
}

#: Data-parallel runs (world_size > 1): one row per rank per step, so measured per-rank step and
#: all-reduce times can be set against the simulator's; single-process traces have no such table.
RANK_COLUMNS: dict[str, tuple[pa.DataType, str, str]] = {
    "step": (pa.int64(), "count", "optimizer step index, 0-based"),
    "rank": (pa.int64(), "count", "torch.distributed rank of the process"),
    "loss": (pa.float64(), "nats", "this rank's share of the step's loss (the steps table's loss is their sum)"),
    "wall_s": (pa.float64(), "s", "measured wall time of this step on this rank"),
    "allreduce_s": (pa.float64(), "s",
                    "first gradient bucket's all-reduce launch to the last one's completion (overlaps backward)"),
    "mask_digest": (pa.string(), "hex", "hash of this rank's masks after a mask change ('' on other steps)"),
    "masks_adopted": (pa.int64(), "count", "layers whose new mask this rank took from rank 0 at this change"),
}

TABLES = {"steps": STEP_COLUMNS, "patterns": PATTERN_COLUMNS, "eval": EVAL_COLUMNS, "fff": FFF_COLUMNS,
          "ranks": RANK_COLUMNS}
#: Tables whose rows are per layer: sorted by (step, layer) when read.
_PER_LAYER_TABLES = ("patterns", "fff")



def arrow_schema(table: str) -> pa.Schema:
    cols = TABLES[table]
    return pa.schema([pa.field(name, typ, metadata={"unit": unit, "doc": doc})
                      for name, (typ, unit, doc) in cols.items()])


#: Manifest and layer records are pydantic dataclasses: every field is validated when a manifest is read
#: or built (types, ranges, documented limits in accelsim.trace_rules), and adding a field stays one line.
_RECORD = ConfigDict(extra="ignore")


@validated(config=_RECORD)
class LayerInfo:
    name: Name
    role: Literal[ROLES]
    shape: Shape  # [out_features, in_features], as torch.nn.Linear.weight
    target_density: Density
    sparse: Flag = True


@validated(config=_RECORD)
class Manifest:
    """Run description. ``model`` keys: layers, hidden, heads, intermediate, vocab, seq_len, params."""

    model: ModelDict
    batch_size: BatchSize
    dtype: Literal[DTYPES]
    method: MethodDict
    layers: list[LayerInfo]
    seed: Seed = 0
    steps: Steps = 0
    synthetic: Flag = False
    versions: dict[str, str] = field(default_factory=dict)
    host: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    phase: Literal[RUN_PHASES] = "pretrain"  # manifests without it are pretraining runs
    parent: str | None = None  # run directory this run started from (relative to this run's directory)
    task: dict[str, Any] = field(default_factory=dict)  # finetune: name, labels, metric, data source
    # how the sparse layers' products ran: "masked" (dense on zeroed weights; traces before the field) or
    # "sparse" (the CPU sparse kernels, accelsim.trainer.execution)
    execution: str = "masked"
    world_size: BatchSize = 1  # data-parallel processes that trained it; batch_size is then the global batch
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Any, source: str | Path = "manifest.json") -> "Manifest":
        expect(isinstance(data, dict), "expected a JSON object", source=source)
        version = data.get("schema_version")
        expect(type(version) is int and version in SUPPORTED_VERSIONS,  # 1.0 and true are not version 1
               f"unknown trace schema version {version!r}; this accelsim reads {list(SUPPORTED_VERSIONS)}",
               source=source, field="schema_version")
        try:
            man = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        except ValidationError as err:
            raise rules.user_error(err, source) from None
        names = [i.name for i in man.layers]
        expect(len(set(names)) == len(names), "expected unique layer names", source=source, field="layers")
        return man


def manifest_path(run: Path) -> Path:
    return Path(run) / "manifest.json"


def write_manifest(run: Path, manifest: Manifest) -> None:
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    _atomic_write_bytes(manifest_path(run), manifest.to_json().encode())


def read_manifest(run: Path) -> Manifest:
    path = manifest_path(run)
    expect(Path(run).is_dir(), "not a run directory", source=run)
    expect(path.is_file(), "missing manifest.json", source=run)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"not valid JSON ({err.msg} at line {err.lineno})", source=path) from None
    except UnicodeDecodeError:
        raise UserError("not valid JSON (expected UTF-8 text)", source=path) from None
    except RecursionError:
        raise UserError("not a loadable manifest (nested too deeply)", source=path) from None
    return Manifest.from_dict(data, source=path)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


_PART = re.compile(r"part-(\d{8})-(\d{8})\.parquet$")


def table_dir(run: Path, table: str) -> Path:
    return Path(run) / f"{table}.parquet"


def append_rows(run: Path, table: str, rows: list[dict[str, Any]]) -> None:
    """Append rows (dicts) as one new Parquet part named by its step range (atomic rename)."""
    if not rows:
        return
    missing = [c for c in TABLES[table] if c not in rows[0]]
    if missing:
        raise ValueError(f"{table} rows lack columns {missing}")
    append_columns(run, table, {c: [r[c] for r in rows] for c in TABLES[table]})


def append_columns(run: Path, table: str, columns: dict[str, Any]) -> None:
    """Append whole columns (lists or numpy arrays, steps ascending) as one new Parquet part.

    The columnar form is what generators of long traces want: a million-row part costs one
    pyarrow conversion per column instead of a million dicts.
    """
    schema = arrow_schema(table)
    missing = [c for c in schema.names if c not in columns]
    if missing:
        raise ValueError(f"{table} columns missing: {missing}")
    tbl = pa.Table.from_arrays([pa.array(columns[c], type=schema.field(c).type) for c in schema.names],
                               schema=schema)
    if tbl.num_rows == 0:
        return
    d = table_dir(run, table)
    d.mkdir(parents=True, exist_ok=True)
    steps = tbl["step"]
    first, last = int(steps[0].as_py()), int(steps[-1].as_py())
    name = f"part-{first:08d}-{last:08d}.parquet"
    tmp = d / f".{name}.tmp"
    pq.write_table(tbl, tmp, compression="zstd")
    os.replace(tmp, d / name)


def _parts(run: Path, table: str) -> list[Path]:
    d = table_dir(run, table)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if _PART.match(p.name))


def read_table(run: Path, table: str) -> pa.Table:
    """Read a trace table (empty table with the schema when absent), rows sorted by step."""
    schema = arrow_schema(table)
    parts = _parts(run, table)
    if not parts:
        return schema.empty_table()
    tables = []
    for p in parts:
        try:
            t = pq.read_table(p)
        except (pa.ArrowInvalid, OSError) as err:
            raise UserError(f"unreadable Parquet part ({err})", source=p) from None
        for c in OPTIONAL_COLUMNS.get(table, ()):
            if c not in t.column_names:
                t = t.append_column(c, pa.nulls(t.num_rows, schema.field(c).type).fill_null(float("nan")))
        tables.append(rules.check_columns(t, schema, p))
    tbl = pa.concat_tables(tables)
    tbl = tbl.sort_by([("step", "ascending"), ("layer", "ascending")] if table in _PER_LAYER_TABLES else "step")
    _CHECKS[table](tbl, table_dir(run, table))
    return tbl


#: Row checks per table, run on every read (so simulate, report and trace check see the same refusals).
_CHECKS = {"steps": lambda t, src: rules.check_steps(t, src, PHASES),
           "patterns": lambda t, src: rules.check_patterns(t, src, HIST_BINS, BLOCK_SIZES),
           "eval": rules.check_eval, "fff": rules.check_fff,
           "ranks": lambda t, src: None}  # measurements only; nothing the simulator relies on


def truncate_after(run: Path, table: str, step: int) -> None:
    """Drop rows with ``step > step`` (used by --resume so no row is duplicated)."""
    for p in _parts(run, table):
        first, last = (int(x) for x in _PART.match(p.name).groups())
        if first > step:
            p.unlink()
        elif last > step:
            t = pq.read_table(p)
            keep = t.filter(pa.compute.less_equal(t["step"], step))
            new = p.with_name(f"part-{first:08d}-{step:08d}.parquet")
            tmp = p.with_name(f".{new.name}.tmp")
            pq.write_table(keep, tmp, compression="zstd")
            os.replace(tmp, new)
            if new != p:
                p.unlink()
    masks = Path(run) / "masks"
    if masks.is_dir():
        for f in masks.glob("step-*.npz"):
            if int(f.stem.split("-")[1]) > step:
                f.unlink()


def write_masks(run: Path, step: int, masks: dict[str, np.ndarray]) -> Path:
    """Store boolean masks bit-packed and compressed; shapes kept so they unpack exactly."""
    d = Path(run) / "masks"
    d.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, (name, m) in enumerate(masks.items()):
        m = np.asarray(m, dtype=bool)
        arrays[f"bits_{i}"] = np.packbits(m.ravel())
        arrays[f"shape_{i}"] = np.asarray(m.shape, dtype=np.int64)
    arrays["names"] = np.asarray(list(masks), dtype=np.str_)
    path = d / f"step-{step:08d}.npz"
    tmp = d / f".step-{step:08d}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_masks(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        names = [str(n) for n in z["names"]]
        out = {}
        for i, name in enumerate(names):
            shape = tuple(int(s) for s in z[f"shape_{i}"])
            out[name] = np.unpackbits(z[f"bits_{i}"], count=int(np.prod(shape))).astype(bool).reshape(shape)
    return out


@dataclass
class Trace:
    """A loaded run directory."""

    path: Path
    manifest: Manifest
    steps: pa.Table
    patterns: pa.Table
    eval: pa.Table
    fff: pa.Table | None = None  # FFF load statistics; empty for traces without FFF layers
    ranks: pa.Table | None = None  # per-rank rows of data-parallel runs; empty for single-process traces


def load_trace(run: str | Path) -> Trace:
    """Open a run directory, validated: manifest, every table, and the tables against the manifest."""
    run = Path(run)
    manifest = read_manifest(run)
    t = Trace(run, manifest, read_table(run, "steps"), read_table(run, "patterns"), read_table(run, "eval"),
              read_table(run, "fff"), read_table(run, "ranks"))
    src = table_dir(run, "steps")
    expect(t.steps.num_rows > 0, "no step rows", source=src)
    pat = t.patterns
    if pat.num_rows:
        src = table_dir(run, "patterns")
        unknown = set(pat["layer"].to_pylist()) - {i.name for i in manifest.layers}
        expect(not unknown, f"layers {sorted(unknown)[:3]} are not in the manifest", source=src, field="layer")
        first = pat["step"][0].as_py()
        expect(first == 0, f"first pattern row is at step {first}, expected 0", source=src, field="step")
        changed = t.steps.filter(t.steps["mask_changed"])["step"].to_pylist()
        missing = sorted(set(changed) - set(pat["step"].to_pylist()))
        expect(not missing, f"mask changes at steps {missing[:3]} have no pattern rows", source=src, field="step")
        shapes = {i.name: tuple(i.shape) for i in manifest.layers}
        bad = [n for n, r, c in zip(pat["layer"].to_pylist(), pat["rows"].to_pylist(), pat["cols"].to_pylist())
               if shapes[n] != (r, c)]
        expect(not bad, f"rows x cols of {bad[0]} differ from its manifest shape" if bad else "", source=src,
               field="rows")
    return t
