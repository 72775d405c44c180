"""The published-measurement dataset (benchmarks/published/points.csv): loading and schema validation.

One row is one sparse-vs-dense measurement someone published (paper figure or table, notebook output,
issue thread); the schema, the meaning of every column and how figure values were read are documented in
benchmarks/published/README.md. Rows are validated with pydantic (one-line :class:`UserError` naming the
file, the row id and the column on a bad row) so the dataset cannot drift silently.

The dataset is the ground truth the non-CPU profiles are checked and fitted against
(:mod:`kernels.published_fit`, ``accelsim validate --published``); it holds no predictions.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from accelsim.errors import UserError
from accelsim.kernels.published_models import MODELS

#: where the bundled dataset lives (repository checkout; the package-dir mapping keeps kernels/ at the root)
DEFAULT_POINTS = Path(__file__).resolve().parent.parent / "benchmarks" / "published" / "points.csv"

#: what was timed; kernel ops compare one product, the others a block, a model or a training step
OPS = ("kernel_fwd", "linear_fwdbwd", "mlp_fwdbwd", "mlp_fwd", "model_inference", "train_step")
#: ops costed as products with kernel_time (mlp_fwd: the two forward products of an in -> out -> in MLP)
KERNEL_OPS = ("kernel_fwd", "linear_fwdbwd", "mlp_fwdbwd", "mlp_fwd")
#: how the number was read (README: "How values were read")
READS = ("table", "text", "text-crossover", "figure", "figure-colour", "notebook-output", "issue-text",
         "issue-text-range", "issue-comment", "pr-comment", "pr-table", "pr-output", "pr-text", "results-log",
         "results-file")
#: "bank-balanced": equal non-zeros in every bank of a row (Bank-Balanced Sparsity and its variants), a pattern
#: published FPGA accelerators build their PE arrays around; no bundled profile has a path for it
PATTERNS = ("unstructured", "2:4", "block", "bank-balanced")
#: int8 rows are recorded (a published int8 sparse-vs-int8 dense ratio) but no bundled profile has an int8
#: peak, so the validator lists them as not predicted
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8")
#: batch sizes the PopSparse notebook maximises over when a row says tokens = "best" (README)
BEST_TOKENS = (4, 16, 64, 256, 1024, 4096, 16384)
#: software state: "superseded" rows are kernels or builds their own source reports replaced (a prototype,
#: a per-call set-up later cached, a misconfigured build); validated and shown, not fitted
SOFTWARE = ("current", "superseded")
#: how each sparse call was issued (README "Columns"): "eager" = from eager PyTorch through a Python tensor
#: subclass / autograd function (host time per call, kernel_time(..., eager=True)); "compiled" = inside a
#: torch.compile graph; "relayout" = a framework op fed a dense operand in the framework's layout, not the sparse
#: op's own (the op rearranges it every call: kernel_time(..., relayout=True)); "fastest" = the library timed
#: the sparse and the dense GEMM of each shape beforehand and runs the faster (FasterTransformer's gemm test);
#: "" = a direct library call, device-side timing, or not stated
DISPATCH = ("", "eager", "compiled", "relayout", "fastest")
#: publications by the same people, held out together for the stricter "new author group" error
#: (benchmarks/published/README.md, "Coverage"); a source not listed is a group of its own. The PyTorch sparsity
#: team and Quansight are one group: the ViT block-sparsity blog is by both (Cai, Puhrsch; James, Peterson,
#: Vedeneev), and Andrew James wrote Quansight's BSR post
AUTHOR_GROUPS: dict[str, tuple[str, ...]] = {
    "graphcore": ("popsparse-paper", "popsparse-notebook"),
    "pytorch-sparsity-quansight": (
        "pytorch-2to4-tutorial", "pytorch-issue-111339", "torchao-sparse-training", "torchao-sparsity-readme",
        "superblock-pr-9", "torchao-superblock-results", "torchao-pr-1734", "torchao-pr-2012",
        "pytorch-blog-2to4-training", "pytorch-blog-vit-block-sparsity", "quansight-bsr-blog"),
}


def author_group(source: str) -> str:
    """The author group a source's publication belongs to (its own key when no group lists it)."""
    return next((g for g, members in AUTHOR_GROUPS.items() if source in members), source)


COLUMNS = ("id", "source", "hardware", "profile", "library", "software", "path", "op", "dtype", "tokens", "in_features",
           "out_features", "model", "batch", "seq_len", "pattern", "block", "density", "dense_s", "sparse_s", "speedup", "read", "where", "note",
           "dispatch")


class Point(BaseModel):
    """One published measurement; ``speedup`` = dense time / sparse time on the same hardware and dtype."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    source: str = Field(min_length=1)  # short key: whole sources are held out together
    hardware: str = Field(min_length=1)
    profile: str = ""  # bundled profile that stands for the hardware ("" = none bundled)
    library: str = Field(min_length=1)
    software: Literal[SOFTWARE] = "current"
    path: str = ""  # the profile path the point's family runs on ("" = none)
    op: Literal[OPS]
    dtype: Literal[DTYPES]
    tokens: int | Literal["best"] | None = None  # rows of X; "best" = best over BEST_TOKENS
    in_features: int | None = None
    out_features: int | None = None
    model: str = ""  # whole-model rows: a model the validator can build (kernels.published_models.MODELS), else ""
    batch: int | None = None
    seq_len: int | None = None
    pattern: Literal[PATTERNS]
    block: int | None = None
    density: float = Field(gt=0.0, le=1.0)
    dense_s: float | None = Field(default=None, gt=0.0)
    sparse_s: float | None = Field(default=None, gt=0.0)
    speedup: float = Field(gt=0.0)
    read: Literal[READS]
    where: str = Field(min_length=1)
    note: str = ""
    dispatch: Literal[DISPATCH] = ""

    @field_validator("dispatch", mode="before")
    @classmethod
    def _blank_str(cls, v):
        return "" if v is None else v  # a row written before the column existed has no trailing field

    @field_validator("tokens", "in_features", "out_features", "block", "batch", "seq_len", mode="before")
    @classmethod
    def _blank_int(cls, v):
        return None if v in ("", None) else ("best" if v == "best" else int(v))

    @field_validator("dense_s", "sparse_s", mode="before")
    @classmethod
    def _blank_float(cls, v):
        return None if v in ("", None) else float(v)

    @model_validator(mode="after")
    def _consistent(self):
        if self.op in KERNEL_OPS:
            if self.tokens is None or self.in_features is None or self.out_features is None:
                raise ValueError(f"op {self.op} needs tokens, in_features and out_features")
        if self.model and (not self.batch or not self.seq_len):
            raise ValueError(f"model {self.model!r} needs batch and seq_len")
        if self.model and self.model not in MODELS:
            raise ValueError(f"model {self.model!r} is none the validator builds; expected one of {', '.join(MODELS)}")
        if self.pattern == "block" and not self.block:
            raise ValueError("pattern 'block' needs a block size")
        if self.pattern != "block" and self.block:
            raise ValueError(f"pattern {self.pattern!r} takes no block size")
        if self.pattern == "2:4" and abs(self.density - 0.5) > 1e-9:
            raise ValueError("a 2:4 pattern has density 0.5")
        if self.dense_s and self.sparse_s and abs(math.log(self.dense_s / self.sparse_s / self.speedup)) > 0.03:  # printed times are rounded
            raise ValueError(f"speedup {self.speedup} disagrees with dense_s / sparse_s = "
                             f"{self.dense_s / self.sparse_s:.4g}")
        return self

    @property
    def kernel(self) -> bool:
        """A single product or a block of products predicted with ``kernel_time`` (not a model/step)."""
        return self.op in KERNEL_OPS


def load_points(path: str | Path | None = None) -> list[Point]:
    """Rows of the dataset at ``path`` (default: the bundled benchmarks/published/points.csv), validated."""
    path = Path(path) if path is not None else DEFAULT_POINTS
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read the published-measurement dataset ({err.strerror})", source=path) from None
    reader = csv.DictReader(text.splitlines())
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise UserError(f"expected the columns {', '.join(COLUMNS)}; got {', '.join(reader.fieldnames or [])}",
                        source=path, field="header")
    points, seen = [], set()
    for line, row in enumerate(reader, start=2):
        try:
            point = Point(**row)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "row"
            raise UserError(f"line {line} (id {row.get('id')!r}): {first['msg']}", source=path, field=where) from None
        if point.id in seen:
            raise UserError(f"line {line}: duplicate id {point.id!r}", source=path, field="id")
        seen.add(point.id)
        points.append(point)
    return points


def summary(points: list[Point]) -> dict:
    """Counts a README or a test quotes: points, sources, points per profile and per source."""
    per_profile: dict[str, int] = {}
    per_source: dict[str, int] = {}
    for p in points:
        per_profile[p.profile or "(none)"] = per_profile.get(p.profile or "(none)", 0) + 1
        per_source[p.source] = per_source.get(p.source, 0) + 1
    return {"points": len(points), "sources": len(per_source), "per_profile": per_profile, "per_source": per_source}
