"""Measurement points: what calibration fits and validation scores, from typed measurement records.

A record (:class:`kernels.records.Record`) becomes up to one *point* per profile path: the dense baseline
(``dense_torch`` -> the profile's ``dense`` path, one point per shape: the median over records) and, for a
sparse case, the fastest timed kernel of each family the profile models (CSR kernels -> its
``unstructured`` path, block kernels -> its ``block`` path, N:M kernels -> its ``2:4`` path), with that
profile path forced. A profile may split a family into per-phase paths (forward CSR SpMM, transposed
SpMM, SDDMM are different kernels); the first path whose ``phases`` admit the op is used. A sparse
kernel's time is paired with the dense baseline timed beside it in each round (:func:`paired_time`),
which cancels most of the shared machine's drift; the plain medians are kept (``Point.raw_s``).
Cases are split deterministically (a hash of the case, not file order) into train and held-out sets;
on top of that, whole shapes may be held out (:class:`ShapeSplit`: every case of a (tokens, hidden) pair
the fit never sees, ``Point.off_shape``), which is what tells whether the model holds off its grid.

Shared by ``kernels.calibrate`` (fits on the training points) and ``kernels.validation`` (scores the
held-out ones), which therefore no longer import each other.
"""
from __future__ import annotations

import hashlib
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from accelsim.hardware import kernel_time
from accelsim.hardware.profile import HardwareProfile
from accelsim.kernels.records import DENSE_PATH, DTYPE_NAMES, FFF_OP, Measurements, Record

__all__ = ["DTYPE_NAMES", "HOLDOUT_EVERY", "PHASES", "Point", "ShapeSplit", "dense_medians", "file_sha256",
           "group_mape", "hw_path", "is_heldout", "measurement_points", "paired_time", "predict_time",
           "record_heldout", "shape_of"]

HOLDOUT_EVERY = 5  # one case in five is held out
PHASES = {"matmul": "fwd", "matmul_dx": "bwd_input", "matmul_dw": "bwd_weight", FFF_OP: "fwd"}


@dataclass(frozen=True)
class Point:
    kind: str  # matmul | matmul_dx | matmul_dw
    tokens: int
    d_in: int
    d_out: int
    density: float
    pattern: str  # measurement pattern; "dense" for dense-baseline points
    dtype: str  # profile dtype name
    threads: int
    hw_path: str  # profile path forced in kernel_time
    kernel: str  # measured kernel (fastest of its family)
    measured_s: float  # paired with the dense baseline (see measurement_points), else the plain median
    heldout: bool
    winner: bool = False  # the bench picked this kernel for its case (dense points: never)
    trees: int = 0  # FFF points (kind "fff"): the layer's tree shape; d_out = its neurons
    depth: int = 0
    raw_s: float = 0.0  # the kernel's plain median over its rounds (validation reports the error on it too)
    off_shape: bool = False  # its (tokens, hidden) shape is held out whole (ShapeSplit); then heldout too

    def predict(self, profile: HardwareProfile) -> float:
        return predict_time(profile, self.kind, self.tokens, self.d_in, self.d_out, self.density, self.pattern,
                            self.dtype, path=self.hw_path, trees=self.trees, depth=self.depth)


def predict_time(profile: HardwareProfile, kind: str, tokens: int, d_in: int, d_out: int, density: float,
                 pattern: str, dtype: str, *, path: str | None = None, trees: int = 0, depth: int = 0) -> float:
    """kernel_time for a measurement: a sparse-matmul case, its dense baseline (pattern "dense"), an FFF
    layer's conditional forward (kind "fff") or the dense FF of equal width it is compared with."""
    if kind == FFF_OP:
        if pattern == "dense":
            return kernel_time(profile, "ff", tokens, d_in, d_out, dtype=dtype, path=path)
        return kernel_time(profile, "fff", tokens, d_in, d_out, dtype=dtype, path=path, trees=trees, depth=depth)
    pattern = "unstructured" if pattern == "dense" else pattern
    return kernel_time(profile, kind, tokens, d_in, d_out, density, pattern, dtype, path=path)


def shape_of(op: str, tokens: int, d_in: int, d_out: int) -> tuple[int, int]:
    """The (tokens, hidden) shape a case belongs to: the layer's model width (ffn_in h -> 4h, ffn_out 4h -> h
    and attention h -> h all have min(d_in, d_out) = h; an FFF layer's is its input width, d_out being its
    neuron count). Holding out a shape holds out every layer, op, pattern and FFF tree of that width."""
    return (tokens, d_in if op == FFF_OP else min(d_in, d_out))


@dataclass(frozen=True)
class ShapeSplit:
    """Shapes held out whole: no case of a listed (tokens, hidden) pair is ever a training point. The other
    shapes keep the 1-in-HOLDOUT_EVERY case split (the "on-grid" held-out cases)."""

    heldout_shapes: frozenset = frozenset()  # of (tokens, hidden) tuples

    @classmethod
    def of(cls, shapes) -> "ShapeSplit":
        """From [[tokens, hidden], ...] (a measurements file's config.heldout_shapes, a profile's fitted.split)."""
        return cls(frozenset((int(t), int(h)) for t, h in (shapes or ())))

    def off_shape(self, op: str, tokens: int, d_in: int, d_out: int) -> bool:
        return shape_of(op, tokens, d_in, d_out) in self.heldout_shapes

    def to_list(self) -> list[list[int]]:
        return [list(s) for s in sorted(self.heldout_shapes)]


def is_heldout(*key) -> bool:
    digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % HOLDOUT_EVERY == 0


def record_heldout(rec: Record | dict) -> bool:
    rec = rec if isinstance(rec, Record) else Record.from_dict(rec)
    return is_heldout(rec.op, rec.tokens, rec.d_in, rec.d_out, rec.profile_dtype, rec.pattern, rec.density)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def hw_path(profile: HardwareProfile, family: str, kind: str, dtype: str, pattern: str = "") -> str | None:
    """The profile path modelling ``family`` for this op: the first path of that pattern kind whose
    phases and dtypes admit it (a profile may split a kernel family into per-phase paths) and, for a
    block pattern, whose block sizes include the pattern's (b=16 and b=32 kernels tile differently)."""
    usable = [name for name, spec in profile.paths.items()
              if spec.pattern == family and PHASES[kind] in spec.phases and (not spec.dtypes or dtype in spec.dtypes)]
    b = int(pattern[5:]) if pattern.startswith("block") and pattern[5:].isdigit() else None
    sized = [name for name in usable if b in profile.paths[name].block_sizes]
    return (sized or usable or [None])[0]


def dense_medians(doc: Measurements | dict, threads: int) -> dict[tuple, float]:
    """The dense baseline's median time per shape (:attr:`Record.shape_key`), over every record of that
    shape (each case of a shape times it again, beside its own sparse paths)."""
    times: dict[tuple, list[float]] = defaultdict(list)
    for rec in Measurements.coerce(doc).records:
        if rec.threads == threads and DENSE_PATH in rec.times:
            times[rec.shape_key].append(rec.times[DENSE_PATH])
    return {k: statistics.median(v) for k, v in times.items()}


def paired_time(ratios: list[float] | None, dense: float | None) -> float | None:
    """A sparse kernel's time paired with the dense baseline: the median over rounds of its ``ratios`` to
    the dense time measured beside it (:meth:`Record.ratios`), times the shape's dense median ``dense``.
    A control variate: the shared machine's slow spells (10-40 % for seconds to minutes) hit both kernels
    of a round and cancel in the ratio (validation.json: ``round_noise`` of the plain times against
    ``round_noise_paired`` of the ratios; docs/kernels.md). None where no round was paired."""
    return statistics.median(ratios) * dense if ratios and dense else None


def measurement_points(doc: Measurements | dict, profile: HardwareProfile, threads: int | None = None, *,
                       paired: bool = True, split: ShapeSplit | None = None) -> tuple[list[Point], dict[str, int]]:
    """Points the profile can model, and counts of what was left out and why. ``paired``: a sparse
    kernel's time is :func:`paired_time` where its rounds were paired, else its plain median. ``split``:
    shapes held out whole (default: none)."""
    doc = Measurements.coerce(doc)
    split = split or ShapeSplit()
    threads = threads or profile.compute.count
    skipped: dict[str, int] = defaultdict(int)
    dense = dense_medians(doc, threads)
    points: list[Point] = []
    for rec in doc.records:
        if rec.threads != threads:
            skipped[f"threads != {threads}"] += 1
            continue
        families = rec.kernel_families()
        ratios = rec.ratios() if paired else {}
        best: dict[str, tuple[str, float, float]] = {}
        for kernel, raw in rec.times.items():
            fam = families.get(kernel)
            if fam in (None, "dense"):
                continue
            t = paired_time(ratios.get(kernel), dense.get(rec.shape_key)) or raw
            if fam not in best or t < best[fam][1]:
                best[fam] = (kernel, t, raw)
        for fam, (kernel, t, raw) in best.items():
            path = hw_path(profile, fam, rec.op, rec.profile_dtype, rec.pattern)
            if path is None:
                skipped[f"no '{fam}' path for {rec.op} in the profile"] += 1
            elif rec.density_actual >= 1.0:
                skipped["sparse kernel at density 1 (the model runs dense)"] += 1
            else:
                off = split.off_shape(rec.op, rec.tokens, rec.d_in, rec.d_out)
                points.append(Point(rec.op, rec.tokens, rec.d_in, rec.d_out, rec.density_actual, rec.pattern,
                                    rec.profile_dtype, threads, path, kernel, t, off or record_heldout(rec),
                                    winner=kernel == rec.path, trees=rec.trees, depth=rec.depth, raw_s=raw,
                                    off_shape=off))
    for (op, tokens, d_in, d_out, dtype, tree), t in dense.items():
        path = hw_path(profile, "dense", op, dtype)
        if path is None:
            skipped[f"no 'dense' path for {op} in the profile"] += 1
            continue
        off = split.off_shape(op, tokens, d_in, d_out)
        points.append(Point(op, tokens, d_in, d_out, 1.0, "dense", dtype, threads, path, DENSE_PATH,
                            t, off or is_heldout(op, tokens, d_in, d_out, dtype, "dense"),
                            trees=tree[0], depth=tree[1], raw_s=t, off_shape=off))
    return points, dict(skipped)


def group_mape(rows: list[dict], key) -> dict[str, dict]:
    """MAPE and median predicted/measured ratio of ``rows`` (each with "ape" and "ratio") per ``key(row)``."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: {"n": len(v), "mape": float(np.mean([r["ape"] for r in v])),
                "median_ratio": float(np.median([r["ratio"] for r in v]))} for k, v in sorted(groups.items())}
