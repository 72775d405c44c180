"""The rules a trace must obey, checked once when it is opened (``accelsim.trace`` calls them).

Two halves: pydantic field types for the manifest (integers that refuse ``true``, finite numbers in
documented ranges, the documented size limits), and the table checks (column types, unique contiguous
steps, finite FLOPs and losses, pattern consistency). Every refusal is a one-line
:class:`~accelsim.errors.UserError` naming the file, the field and what was expected.

Limits: a manifest describes a model the simulator will expand into ops and a run it will schedule, so
sizes far beyond any real model are refused instead of being simulated into hours or gigabytes (a
1e12-layer manifest grew ``simulate`` to 6 GB). The limits are documented in docs/trace-format.md.
"""
from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from accelsim.errors import UserError, expect

#: Documented limits (docs/trace-format.md, "Limits"): ~100x beyond the largest BERT-style model.
LIMITS = {
    "layers": 1024, "hidden": 1 << 16, "heads": 1024, "intermediate": 1 << 20, "vocab": 1 << 24,
    "seq_len": 1 << 20, "params": 10 ** 13, "batch_size": 1 << 20, "steps": 10_000_000,
    "shape": 1 << 20, "trees": 1 << 16, "depth": 20, "seed": 2 ** 32 - 1,
}


def _integer(low: int, high: int):
    """An integer in [low, high]: a JSON ``true`` or ``1.0`` is not an integer (pydantic's lax int takes both)."""
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ValueError(f"expected an integer in [{low}, {high}], got {_show(v)}")
        if not low <= int(v) <= high:
            raise ValueError(f"expected an integer in [{low}, {high}], got {int(v)}")
        return int(v)
    return BeforeValidator(check)


def _number(low: float, high: float, *, low_open: bool = False):
    """A finite real in [low, high] (or (low, high]); refuses bools, strings and NaN/inf."""
    def check(v: Any) -> float:
        left = "(" if low_open else "["
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)) or \
                not (low < float(v) if low_open else low <= float(v)) or not float(v) <= high:
            raise ValueError(f"expected a number in {left}{low}, {high}], got {_show(v)}")
        return float(v)
    return BeforeValidator(check)


def _flag(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_show(v)}")
    return v


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def Int(low: int, high: int) -> Any:  # noqa: N802  (reads as a type in field declarations)
    return Annotated[int, _integer(low, high)]


def Dim(key: str) -> Any:  # noqa: N802
    """A positive integer up to the documented limit of ``key``."""
    return Annotated[int, _integer(1, LIMITS[key])]


Density = Annotated[float, _number(0.0, 1.0, low_open=True)]
Flag = Annotated[bool, BeforeValidator(_flag)]


def user_error(err: ValidationError, source: str | Path) -> UserError:
    """The first pydantic error as one line: ``FILE: field 'a.b[0].c': what was expected``."""
    first = err.errors(include_url=False)[0]
    where = ""
    for part in first["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        msg = "required field is missing"
    elif first["type"] == "nested":
        where += first["ctx"]["loc"]
        msg = first["ctx"]["msg"]
    return UserError(msg.splitlines()[0], source=source, field=where or None)


# ------------------------------------------------------------------------------------------------ tables

#: Arrow types a stored column may have and still be read as the documented type without loss.
_WIDENS = {pa.int64(): (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16(), pa.uint32()),
           pa.float64(): (pa.float16(), pa.float32()), pa.string(): (pa.large_string(),)}


def check_columns(t: pa.Table, schema: pa.Schema, source: Path) -> pa.Table:
    """The part's columns with the documented types (lossless widening only), else a refusal."""
    missing = [c for c in schema.names if c not in t.column_names]
    expect(not missing, f"missing columns {missing}", source=source)
    cols = []
    for f in schema:
        col = t[f.name]
        ok = col.type == f.type or col.type in _WIDENS.get(f.type, ()) or (
            pa.types.is_list(f.type) and pa.types.is_list(col.type)
            and (col.type.value_type == f.type.value_type
                 or col.type.value_type in _WIDENS.get(f.type.value_type, ())))
        expect(ok, f"column type is {col.type}, expected {f.type}", source=source, field=f.name)
        expect(col.null_count == 0, "expected no null values", source=source, field=f.name)
        if pa.types.is_list(f.type):
            expect(pc.list_flatten(col).null_count == 0, "expected no null values in the lists",
                   source=source, field=f.name)
        cols.append(col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _np(t: pa.Table, name: str) -> np.ndarray:
    return t[name].to_numpy()


def _finite(t: pa.Table, name: str, source: Path, low: float | None = 0.0, high: float | None = None, *,
            nan_ok: bool = False) -> None:
    v = np.asarray(_np(t, name), dtype=float)
    if nan_ok:  # NaN means "not measured" (e.g. wall time in a synthetic trace)
        v = v[~np.isnan(v)]
    if v.size == 0:
        return
    expect(bool(np.all(np.isfinite(v))), "expected finite values (found NaN or inf)", source=source, field=name)
    if low is not None:
        expect(bool(np.all(v >= low)), f"expected values >= {low}, found {v.min():g}", source=source, field=name)
    if high is not None:
        expect(bool(np.all(v <= high)), f"expected values <= {high}, found {v.max():g}", source=source, field=name)


def check_steps(t: pa.Table, source: Path, phases: tuple[str, ...]) -> None:
    """One row per step 0..n-1 (duplicates or gaps would be simulated as they are), finite values."""
    if t.num_rows == 0:
        return
    steps = _np(t, "step")
    expect(int(steps[0]) == 0, f"first step is {int(steps[0])}, expected 0", source=source, field="step")
    bad = np.nonzero(np.diff(steps) != 1)[0]
    if bad.size:
        a, b = int(steps[bad[0]]), int(steps[bad[0] + 1])
        what = "duplicated" if a == b else f"not contiguous (after step {a} comes {b})"
        raise UserError(f"steps are {what}" if a != b else f"step {a} is {what}", source=source, field="step")
    _finite(t, "loss", source, low=None)
    _finite(t, "lr", source)
    _finite(t, "wall_s", source, nan_ok=True)
    _finite(t, "density", source, high=1.0)
    expect(bool(np.all(_np(t, "tokens") > 0)), "expected a positive token count", source=source, field="tokens")
    for phase in phases:
        for name in (f"flops_{phase}_dense", f"flops_{phase}"):
            _finite(t, name, source)


def check_patterns(t: pa.Table, source: Path, hist_bins: int, block_sizes: tuple[int, ...]) -> None:
    """0 < density <= 1, nnz = density x rows x cols, histograms of ``hist_bins`` bins summing to the rows."""
    if t.num_rows == 0:
        return
    expect(bool(np.all(_np(t, "step") >= 0)), "expected steps >= 0", source=source, field="step")
    rows, cols, nnz = (_np(t, c).astype(np.int64) for c in ("rows", "cols", "nnz"))
    for name, v in (("rows", rows), ("cols", cols)):
        expect(bool(np.all((v > 0) & (v <= LIMITS["shape"]))), f"expected a positive size up to {LIMITS['shape']}",
               source=source, field=name)
    _finite(t, "density", source, high=1.0)
    dens = _np(t, "density")
    expect(bool(np.all(dens > 0)), "expected a density in (0, 1]", source=source, field="density")
    expect(bool(np.all((nnz >= 0) & (nnz <= rows * cols))), "expected 0 <= nnz <= rows x cols",
           source=source, field="nnz")
    expect(bool(np.allclose(nnz / (rows * cols), dens, rtol=0, atol=1e-9)),
           "density does not equal nnz / (rows x cols)", source=source, field="density")
    for name in ("pruned", "grown"):
        v = _np(t, name)
        expect(bool(np.all((v >= 0) & (v <= rows * cols))), "expected a count in [0, rows x cols]",
               source=source, field=name)
    izf = np.asarray(_np(t, "input_zero_frac"), dtype=float)
    expect(bool(np.all(np.isnan(izf) | ((izf >= 0) & (izf <= 1)))), "expected a fraction in [0, 1] or NaN",
           source=source, field="input_zero_frac")
    for axis, length in (("row", cols), ("col", rows)):
        for stat in ("min", "mean", "max", "std"):
            _finite(t, f"{axis}_nnz_{stat}", source)
            expect(bool(np.all(_np(t, f"{axis}_nnz_{stat}") <= length)), f"expected at most the {axis} length",
                   source=source, field=f"{axis}_nnz_{stat}")
        hist = t[f"{axis}_nnz_hist"]
        lengths = pc.list_value_length(hist).to_numpy(zero_copy_only=False)
        expect(bool(np.all(lengths == hist_bins)), f"expected {hist_bins} bins per row",
               source=source, field=f"{axis}_nnz_hist")
        counts = np.asarray(pc.list_flatten(hist).to_numpy(zero_copy_only=False)).reshape(-1, hist_bins)
        expect(bool(np.all(counts >= 0)), "expected non-negative counts", source=source, field=f"{axis}_nnz_hist")
        total = rows if axis == "row" else cols
        expect(bool(np.all(counts.sum(axis=1) == total)), f"expected bins summing to the number of {axis}s",
               source=source, field=f"{axis}_nnz_hist")
    for b in block_sizes:
        _finite(t, f"block{b}_frac", source, high=1.0)
    for name in ("nm_2_4_frac", "nm_4_8_frac"):
        _finite(t, name, source, high=1.0)


def check_eval(t: pa.Table, source: Path) -> None:
    if t.num_rows == 0:
        return
    steps = _np(t, "step")
    expect(bool(np.all(steps >= 0)) and bool(np.all(np.diff(steps) > 0)), "expected unique steps >= 0",
           source=source, field="step")
    _finite(t, "eval_loss", source, low=None)
    _finite(t, "eval_accuracy", source, high=1.0)


def check_fff(t: pa.Table, source: Path) -> None:
    """Row-level sanity of FFF statistics; the manifest cross-checks live in accelsim.trace_check."""
    if t.num_rows == 0:
        return
    expect(bool(np.all(_np(t, "step") >= 0)), "expected steps >= 0", source=source, field="step")
    depth = _np(t, "depth")
    expect(bool(np.all((depth >= 0) & (depth <= LIMITS["depth"]))), f"expected a depth in [0, {LIMITS['depth']}]",
           source=source, field="depth")
    for name in ("neurons_per_token", "flops_cond", "flops_dense_equiv"):
        _finite(t, name, source)
    for name in ("level_nodes_used", "level_max_visits", "level_cv"):
        lengths = pc.list_value_length(t[name]).to_numpy(zero_copy_only=False)
        expect(bool(np.all(lengths == depth + 1)), "expected depth + 1 values per row (one per tree level)",
               source=source, field=name)
        vals = np.asarray(pc.list_flatten(t[name]).to_numpy(zero_copy_only=False), dtype=float)
        expect(bool(np.all(np.isfinite(vals) & (vals >= 0))), "expected finite non-negative values",
               source=source, field=name)


# ------------------------------------------------------------------------------------------------ manifest

#: ``manifest.model["ffn"]["type"]`` values; a manifest without the key has the dense BERT FFN.
FFN_TYPES = ("dense", "fff")
#: How the trainer computed an FFF layer: on the visited path only, or all neurons then masked.
FFF_TRAIN_MODES = ("gather", "masked")
#: ``manifest.dtype`` values (docs/trace-format.md).
DTYPES = ("fp32", "bf16", "fp16")


def _name(v: Any) -> str:
    if not isinstance(v, str) or not 0 < len(v) <= 512:
        raise ValueError(f"expected a non-empty name, got {_show(v)}")
    return v


Name = Annotated[str, BeforeValidator(_name)]
BatchSize = Dim("batch_size")
Steps = Int(0, LIMITS["steps"])
Seed = Int(0, LIMITS["seed"])
ShapeDim = Dim("shape")
Shape = Annotated[list[ShapeDim], Field(min_length=2, max_length=2)]


class _FFN(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal[FFN_TYPES]
    trees: Int(1, LIMITS["trees"]) | None = None
    depth: Int(0, LIMITS["depth"]) | None = None
    train_mode: Literal[FFF_TRAIN_MODES] = "gather"


class _Head(BaseModel):
    """``model.head``: absent means BertForMaskedLM's head; "classifier" is a fine-tuning run's (workload)."""
    model_config = ConfigDict(extra="allow")
    type: Literal["mlm", "classifier"]
    labels: Int(2, 1_000_000) | None = None


class _Teacher(BaseModel):
    """``model.teacher``: the distillation teacher whose forward pass every step also runs (workload)."""
    model_config = ConfigDict(extra="allow")
    layers: Dim("layers")
    hidden: Dim("hidden")
    heads: Dim("heads")
    intermediate: Dim("intermediate")
    kd: Literal["logits", "hidden"] = "logits"


class _ModelDims(BaseModel):
    model_config = ConfigDict(extra="allow")
    layers: Dim("layers")
    hidden: Dim("hidden")
    heads: Dim("heads")
    intermediate: Dim("intermediate")
    vocab: Dim("vocab")
    seq_len: Dim("seq_len")
    params: Dim("params") | None = None  # informational; manifests written by hand may leave it out
    ffn: _FFN | None = None
    head: _Head | None = None
    teacher: _Teacher | None = None


def _nested(err: ValidationError) -> PydanticCustomError:
    """A nested model's first error, carried up with its location (see :func:`user_error`)."""
    first = err.errors(include_url=False)[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
    msg = "required field is missing" if first["type"] == "missing" else first["msg"].removeprefix("Value error, ")
    return PydanticCustomError("nested", "{msg}", {"msg": msg, "loc": loc})


def check_model(v: dict[str, Any]) -> dict[str, Any]:
    """``manifest.model``: kept a plain dict (every reader indexes it), validated as :class:`_ModelDims`."""
    try:
        dims = _ModelDims.model_validate(v)
    except ValidationError as err:
        raise _nested(err) from None
    if dims.head is not None and dims.head.type == "classifier" and dims.head.labels is None:
        raise PydanticCustomError("nested", "{msg}", {"msg": "expected the number of labels", "loc": ".head.labels"})
    if dims.teacher is not None and (dims.head is None or dims.head.type != "classifier"):
        raise PydanticCustomError("nested", "{msg}", {"msg": "a teacher needs a classifier head", "loc": ".teacher"})
    ffn = dims.ffn
    if ffn is not None and ffn.type == "fff" and (ffn.trees is None or ffn.depth is None):
        raise PydanticCustomError("nested", "{msg}", {"msg": "expected trees and depth for an FFF model",
                                                     "loc": ".ffn"})
    return v


def check_method(v: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(v.get("name"), str) or not v["name"]:
        raise PydanticCustomError("nested", "{msg}", {"msg": "expected a method name", "loc": ".name"})
    return v


ModelDict = Annotated[dict[str, Any], AfterValidator(check_model)]
MethodDict = Annotated[dict[str, Any], AfterValidator(check_method)]
