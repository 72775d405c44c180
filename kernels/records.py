"""The kernel-measurement format: typed records shared by bench, merge, calibrate and validate.

A measurements file (written by ``accelsim kernels bench``, pooled by ``accelsim kernels merge``) is one
JSON document::

    {"schema": SCHEMA, "machine": {...}, "config": {...}, "records": [...], "skipped": [...]}

with one record per (shape, op, pattern, density, threads). :func:`read_measurements` validates a file into
:class:`Measurements` of :class:`Record` (a one-line UserError naming the file and field on any defect);
``to_dict`` writes them back unchanged. Modelled on :mod:`accelsim.trace`: the format has a schema version,
readers refuse versions they do not know, and files written before a field existed still load: the
defaults below say how (``ratios_rounds`` derived from ``times_rounds``, ``families`` from the kernel
registry, ``device`` cpu, no FFF tree shape).

For code written against the plain JSON document, records and documents also answer ``rec["op"]`` and
``rec.get("trees", 0)`` with the JSON field names.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelsim.errors import UserError, expect

#: format name and version; a reader refuses any other
SCHEMA_NAME = "accelsim.kernel-measurements"
SCHEMA_VERSION = 1
SCHEMA = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
#: the baseline every case times beside its sparse paths (registry.pick_fastest always includes it)
DENSE_PATH = "dense_torch"
#: torch dtype name in a record -> profile dtype name
DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
#: the op of FFF records (kernels.fff_bench.OP); matmul ops are kernels.cases.OPS
FFF_OP = "fff"
MATMUL_OPS = ("matmul", "matmul_dx", "matmul_dw")


@dataclass
class Record:
    """One measured case: every path's median time, the winner, and (multi-round files) each round."""

    op: str  # matmul | matmul_dx | matmul_dw | fff
    tokens: int
    d_in: int
    d_out: int
    m: int  # the product's dimensions as timed (depend on op)
    k: int
    n: int
    pattern: str  # unstructured | N:M | block<b> (FFF: its own pattern name)
    density: float  # requested
    density_actual: float  # of the mask drawn
    dtype: str  # torch dtype name (DTYPE_NAMES maps it to a profile dtype)
    threads: int
    path: str  # the fastest path (the bench's pick)
    median_s: float  # its median time
    dense_s: float  # the dense baseline's median time
    times: dict[str, float]  # path -> median seconds over its samples (and rounds)
    layer: str = ""  # ffn_in | ffn_out | attn | fff
    device: str = "cpu"  # files before devices were recorded: cpu
    trees: int = 0  # FFF records only: the layer's K x D tree shape (d_out = neurons)
    depth: int = 0
    # multi-round files: path -> its time in each round that timed it
    times_rounds: dict[str, list[float]] = field(default_factory=dict)
    # path -> its time over the dense baseline's in the same round; None in files written before the bench
    # stored them (then :meth:`ratios` derives them from times_rounds)
    ratios_rounds: dict[str, list[float]] | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # path -> why it was not timed (wrong result, ...)
    layouts: dict[str, str] = field(default_factory=dict)
    # path -> kernel family (dense | unstructured | block | 2:4 | conditional); None in files written before
    # records carried them (then :meth:`kernel_families` asks the registry)
    families: dict[str, str] | None = None
    # derived figures (GFLOP/s, speedups), the quiet gate's readings, anything else: kept and written back
    extra: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- reading
    @classmethod
    def from_dict(cls, rec: Any, src: str = "<measurements>", i: int = 0) -> "Record":
        where = f"records[{i}]"
        expect(isinstance(rec, dict), "expected an object", source=src, field=where)
        for key, typ in _REQUIRED.items():
            expect(key in rec, "missing (every record needs " + ", ".join(_REQUIRED) + ")",
                   source=src, field=f"{where}.{key}")
            ok = isinstance(rec[key], typ) and not isinstance(rec[key], bool)
            expect(ok, f"expected {getattr(typ, '__name__', 'a number')}, got {rec[key]!r}",
                   source=src, field=f"{where}.{key}")
        expect(rec["op"] in (*MATMUL_OPS, FFF_OP),
               f"unknown op '{rec['op']}' (expected {', '.join((*MATMUL_OPS, FFF_OP))})", source=src,
               field=f"{where}.op")
        if rec["op"] == FFF_OP:
            for key in ("trees", "depth"):
                ok = isinstance(rec.get(key), int) and not isinstance(rec.get(key), bool) \
                    and rec[key] >= (key == "trees")
                expect(ok, "expected a non-negative integer (FFF records carry the tree shape)", source=src,
                       field=f"{where}.{key}")
        for key in ("tokens", "d_in", "d_out", "m", "k", "n", "threads"):
            expect(rec[key] > 0, "must be positive", source=src, field=f"{where}.{key}")
        for key in ("density", "density_actual"):
            expect(0.0 < rec[key] <= 1.0, f"must be in (0, 1], got {rec[key]}", source=src, field=f"{where}.{key}")
        for key in ("median_s", "dense_s"):
            expect(math.isfinite(rec[key]) and rec[key] > 0, f"must be a positive time in seconds, got {rec[key]}",
                   source=src, field=f"{where}.{key}")
        expect(rec["path"] in rec["times"], f"winning path '{rec['path']}' has no entry in times",
               source=src, field=f"{where}.path")
        ratios = rec.get("ratios_rounds", {})
        ok = isinstance(ratios, dict) and all(
            isinstance(v, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
                                        and x > 0 for x in v) for v in ratios.values())
        expect(ok, "expected {path: [positive ratios to the dense baseline, one per round]}", source=src,
               field=f"{where}.ratios_rounds")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        values = {k: v for k, v in rec.items() if k in known}
        for key in ("trees", "depth"):  # matmul records of some files carry them as null
            if values.get(key) is None:
                values.pop(key, None)
        return cls(**values, extra={k: v for k, v in rec.items() if k not in known})

    # ----------------------------------------------------------------- writing
    def to_dict(self) -> dict[str, Any]:
        """The JSON object (optional fields a file written before them lacked stay absent)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name != "extra" and not self._absent(f.name)}
        out.update(self.extra)
        return out

    # ----------------------------------------------------------------- what consumers ask of a record
    @property
    def profile_dtype(self) -> str:
        return DTYPE_NAMES.get(self.dtype, self.dtype)

    @property
    def shape_key(self) -> tuple:
        """(op, tokens, d_in, d_out, profile dtype, (trees, depth)): the shape a dense baseline belongs to."""
        return (self.op, self.tokens, self.d_in, self.d_out, self.profile_dtype, (self.trees, self.depth))

    @property
    def case_key(self) -> tuple:
        """What makes two records rounds of one case (merging)."""
        tree = (self.trees, self.depth) if self.op == FFF_OP else (None, None)
        return (self.op, self.tokens, self.d_in, self.d_out, self.pattern, self.density, self.dtype,
                self.threads, *tree)

    def ratios(self) -> dict[str, list[float]]:
        """Each path's per-round time over the dense baseline's timed beside it: ``ratios_rounds`` where the
        bench stored them; for files written before, from ``times_rounds`` for every path whose list is as
        long as the dense baseline's: the dense path is timed in every round and a path at most once per
        round, so equal length means the path was timed in every round, in the same order (merging keeps
        file order)."""
        return _paired(self.ratios_rounds, self.times_rounds, self.times)

    def kernel_families(self) -> dict[str, str]:
        """Kernel path -> family (the registry's, for files written before records carried them)."""
        if self.families:
            return self.families
        from accelsim.kernels.registry import all_paths  # only for old files: the registry imports torch
        return {p.name: p.family for p in all_paths(self.device)}

    # dict-style access for code written against the JSON document: the fields to_dict writes
    def _absent(self, name: str) -> bool:
        v = getattr(self, name)
        return v is None or (name in ("trees", "depth") and self.op != FFF_OP and v == 0) \
            or (name == "times_rounds" and not v)

    def __getitem__(self, key: str) -> Any:
        if key in _FIELD_NAMES:
            if self._absent(key):
                raise KeyError(key)
            return getattr(self, key)
        return self.extra[key]

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: str) -> bool:
        return (key in _FIELD_NAMES and not self._absent(key)) or key in self.extra


_REQUIRED = {"op": str, "tokens": int, "d_in": int, "d_out": int, "m": int, "k": int, "n": int,
             "pattern": str, "density": (int, float),
             "density_actual": (int, float), "dtype": str, "threads": int, "path": str,
             "median_s": (int, float), "dense_s": (int, float), "times": dict}
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Record)) - {"extra"}


@dataclass
class Measurements:
    """A measurements file: the machine it ran on, the sweep's config, the records, the skipped cases."""

    machine: dict[str, Any]  # kernels.machine.machine_info (+ merged_from, kernel_sources)
    records: list[Record]
    config: dict[str, Any] = field(default_factory=dict)  # the BenchConfig (asdict)
    skipped: list[dict] = field(default_factory=list)  # cases not run, each with its reason
    schema: str = SCHEMA

    @classmethod
    def from_dict(cls, doc: Any, src: str = "<measurements>") -> "Measurements":
        expect(isinstance(doc, dict), "expected a JSON object with schema, machine and records", source=src)
        expect(doc.get("schema") == SCHEMA, f"expected '{SCHEMA}', got {doc.get('schema')!r}", source=src,
               field="schema")
        expect(isinstance(doc.get("machine"), dict), "expected an object describing the machine", source=src,
               field="machine")
        recs = doc.get("records")
        expect(isinstance(recs, list) and len(recs) > 0, "expected a non-empty list of measurements", source=src,
               field="records")
        return cls(machine=doc["machine"], records=[Record.from_dict(r, src, i) for i, r in enumerate(recs)],
                   config=doc.get("config") or {}, skipped=list(doc.get("skipped") or []))

    @classmethod
    def coerce(cls, doc: "Measurements | dict", src: str = "<measurements>") -> "Measurements":
        """A document as Measurements (callers may still hand in the plain JSON mapping)."""
        return doc if isinstance(doc, Measurements) else cls.from_dict(doc, src)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "machine": self.machine, "config": self.config,
                "records": [r.to_dict() for r in self.records], "skipped": self.skipped}

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def rounds(self) -> int:
        return int(self.config.get("rounds", 1))

    # dict-style access for code written against the JSON document
    def __getitem__(self, key: str) -> Any:
        if key in ("machine", "records", "config", "skipped", "schema"):
            return getattr(self, key)
        raise KeyError(key)

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default


def _paired(ratios_rounds, times_rounds, times) -> dict[str, list[float]]:
    if ratios_rounds is not None:
        return ratios_rounds
    rounds = times_rounds or {p: [t] for p, t in times.items()}
    dense = rounds.get(DENSE_PATH)
    if not dense:
        return {}
    return {p: [t / d for t, d in zip(ts, dense)] for p, ts in rounds.items()
            if p != DENSE_PATH and len(ts) == len(dense)}


def record_ratios(rec: "Record | dict") -> dict[str, list[float]]:
    """:meth:`Record.ratios` of a record or of (the timing fields of) its JSON object."""
    if isinstance(rec, Record):
        return rec.ratios()
    return _paired(rec.get("ratios_rounds"), rec.get("times_rounds"), rec["times"])


def read_measurements(path: str | Path) -> Measurements:
    """Read and validate a measurements JSON (written by ``accelsim kernels bench`` or ``kernels merge``)."""
    p = Path(path)
    expect(p.is_file(), "no such measurements file", source=p)
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"not valid JSON ({err})", source=p) from None
    return Measurements.from_dict(doc, str(p))
