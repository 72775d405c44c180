"""The numeric parameters of a profile path, declared once (docs/hardware-profiles.md, "Paths").

Every consumer iterates over :data:`PATH_PARAMS` instead of naming the parameters again: the profile
schema (which YAML keys a path may carry, their units and ranges), the YAML writer (which keys to leave
out at their default), the fittable-parameter API (``fittable_params``, ``param_bounds``, ``with_params``)
and the calibration (which parameters it fits for which kind of path, in which space, from where).
Adding a path parameter = one row here + the :class:`~accelsim.hardware.profile.PathSpec` attribute it
fills + its use in the cost model (tests/test_hardware.py checks that the table and PathSpec agree).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PathParam:
    """One numeric parameter of a profile path."""

    key: str  # the YAML key under paths.<name> and the name in fittable keys 'paths.<path>.<key>'
    attr: str  # the PathSpec attribute (SI units: seconds, B/s, bytes)
    default: float  # value when the YAML leaves it out; written back only when it differs
    # hardware.quantities dimension of a quantity ("time", "bandwidth", "bytes"); "" for a dimensionless number,
    # "count" for an integer count
    dimension: str = ""
    # range accepted in a profile for dimensionless numbers (lo_open: lo itself refused); quantities must be
    # >= 0, and > 0 when ``positive`` (their 0 is "term absent", spelled by leaving the key out)
    lo: float = 0.0
    hi: float = float("inf")
    lo_open: bool = False
    positive: bool = False
    required: bool = False  # a path must give it (then ``default`` is only the type's neutral value)
    # pattern kinds of path that may carry it (empty: every kind): a key another kind would silently ignore
    # is refused instead
    patterns: tuple[str, ...] = ()
    # --- fitting (accelsim.hardware.profile.with_params, accelsim.kernels.calibrate) ---
    fit_bounds: tuple[float, float] | None = None  # None: not fittable
    # path kinds calibrate fits it for, as (kind, rank): lower ranks are fitted first when the points
    # are too few for every parameter; kinds: "dense", "sparse" (every sparse-product path), "conditional"
    fit_for: tuple[tuple[str, int], ...] = ()
    # scale parameters spanning decades are searched in log space from this smallest value; the end of
    # the range that means "term absent" ("lo" or "hi", or None) is written as absent when fitted there
    log_floor: float | None = None
    absent_end: str | None = None
    sample: tuple[float, float] | None = None  # plausible range for the multi-start (log-uniform if log_floor)
    start: float | None = None  # where a fit starts when the base profile has the term absent (0)
    doc: str = ""

    @property
    def fittable(self) -> bool:
        return self.fit_bounds is not None


def _rows(*params: PathParam) -> dict[str, PathParam]:
    return {p.key: p for p in params}


#: Numeric path parameters, in the order a written profile lists them.
PATH_PARAMS: dict[str, PathParam] = _rows(
    # peak_fraction is a number or a {dtype: number} table (schema and writer handle that shape)
    PathParam("peak_fraction", "peak_fraction", 1.0, lo=0.0, hi=1.0, lo_open=True, required=True, fit_bounds=(1e-6, 1.0),
              fit_for=(("dense", 0), ("sparse", 0), ("conditional", 0)), log_floor=1e-6, sample=(0.02, 1.0),
              doc="e_max: best fraction of the device peak the path reaches (per dtype, or '*' for all)"),
    PathParam("d_half", "d_half", 0.0, lo=0.0, hi=10.0, fit_bounds=(0.0, 10.0), fit_for=(("sparse", 4),),
              log_floor=1e-5, absent_end="lo", sample=(1e-4, 0.3), start=0.01,
              doc="executed fraction at which efficiency is half of e_max"),
    PathParam("exponent", "exponent", 1.0, lo=0.0, hi=1.0, lo_open=True, fit_bounds=(1e-3, 1.0),
              fit_for=(("sparse", 5),), sample=(0.3, 1.0),
              doc="steepness a of the efficiency curve, in (0, 1] so time never falls with density"),
    PathParam("overhead", "overhead_s", 0.0, "time", fit_bounds=(0.0, 10.0),
              fit_for=(("dense", 1), ("sparse", 1), ("conditional", 1)), log_floor=1e-8, absent_end="lo",
              sample=(1e-7, 1e-3), start=10e-6, doc="fixed seconds per call on top of the launch overhead"),
    # host side of an eagerly dispatched call, not the kernel: the published PyTorch 2:4 rows show it (the
    # tutorial's BERT-base at batch 4 takes the same 15.5 ms as at batch 16 when eager and 7.5 ms compiled;
    # pytorch#111339: a 1-token product 0.196 ms sparse vs 0.022 ms dense), benchmarks/published/README.md
    PathParam("dispatch_overhead", "dispatch_overhead_s", 0.0, "time", fit_bounds=(0.0, 1e-2), log_floor=1e-8,
              absent_end="lo", start=50e-6,
              doc="host seconds per call when dispatched from eager framework code (a Python tensor subclass): "
                  "the host issues calls asynchronously, so such a call takes max(device time, this); compiled "
                  "graphs and direct library calls do not pay it (kernel_time(..., eager=True))"),
    # published IPU rows (benchmarks/published/README.md, "Sources that disagree"): Graphcore's SpMM notebook feeds
    # PopSparse's static block-16 op a dense operand in the framework's layout and pays ~0.2 ms per call over the
    # paper's runs, which create it in the op's own layout (same marginal rate, 7-10 us per GFLOP kept, in both)
    PathParam("relayout_overhead", "relayout_overhead_s", 0.0, "time", fit_bounds=(0.0, 1e-2), log_floor=1e-8,
              absent_end="lo", start=50e-6,
              doc="seconds per call a sparse op pays to rearrange a dense operand that reaches it in the "
                  "framework's layout instead of its own (kernel_time(..., relayout=True)); an op whose inputs "
                  "are laid out for it (the simulator's default) does not pay it"),
    PathParam("decode_per_nnz", "decode_s_per_nnz", 0.0, "time", fit_bounds=(0.0, 1.0), log_floor=1e-13,
              absent_end="lo", sample=(1e-12, 1e-9), start=1e-10,
              doc="format handling per stored nonzero (one unit's time)"),
    PathParam("index_bytes_per_nnz", "index_bytes_per_nnz", 0.0, "bytes",
              doc="format metadata moved with every stored value"),
    PathParam("output_bandwidth", "output_bandwidth_Bps", 0.0, "bandwidth", positive=True, fit_bounds=(0.0, 1e16),
              fit_for=(("dense", 2), ("sparse", 2)), log_floor=1e6, absent_end="hi", sample=(1e9, 1e12),
              start=20e9, doc="rate the result is written at, not overlapped with the FMAs (0: no such term)"),
    PathParam("output_free_bytes", "output_free_bytes", 0.0, "bytes", positive=True, fit_bounds=(0.0, 1e12),
              fit_for=(("sparse", 7),), log_floor=1e3, absent_end="lo", sample=(1e4, 1e8), start=1e6,
              doc="result bytes written for free (reused allocator memory) before output_bandwidth applies"),
    PathParam("input_bandwidth", "input_bandwidth_Bps", 0.0, "bandwidth", positive=True, fit_bounds=(0.0, 1e16),
              fit_for=(("sparse", 3),), log_floor=1e6, absent_end="hi", sample=(1e9, 1e12), start=20e9,
              doc="rate of a layout pass over the dense inputs before computing (0: no such term)"),
    PathParam("spill_bytes", "spill_bytes", 0.0, "bytes", positive=True, fit_bounds=(0.0, 1e15),
              fit_for=(("sparse", 6),), log_floor=1e3, absent_end="hi", sample=(1e5, 1e9), start=8e6,
              doc="re-read dense operand size at which the nonzero work runs at half speed (0: never)"),
    PathParam("chunk_bytes", "chunk_bytes", 0.0, "bytes", positive=True,
              doc="the kernel cuts the dense operand it re-reads per nonzero into pieces of at most this many bytes "
                  "(kernels/cpu/_csr.c: CHUNK_BYTES of X^T per token chunk and k panel), so spill_bytes is "
                  "compared with one piece, not the whole operand (0: the whole operand; issue 20)"),
    # measured (2-thread off-shape sweep, held-out points): blocksparse_c forward / input-gradient products run at
    # 0.80-0.85 of the predicted speed for reduction widths k >= 1536 and at 1.0 up to 1280; its loop re-reads
    # every token tile's X rows (T x k) once per group of block rows, and the groups are a fixed size
    PathParam("group_bytes", "group_bytes", 0.0, "bytes", positive=True,
              doc="the kernel passes its stored weights in groups of at most this many bytes (kernels/cpu/"
                  "_blocksparse.c: GROUP_BYTES, kept in L2) and re-reads the dense operand once per group, so a "
                  "forward or input-gradient product moves ceil(stored / group_bytes) x its dense operand (0: once)"),
    PathParam("reread_bandwidth", "reread_bandwidth_Bps", 0.0, "bandwidth", positive=True, fit_bounds=(0.0, 1e16),
              fit_for=(("sparse", 10),), log_floor=1e6, absent_end="hi", sample=(1e9, 1e12), start=60e9,
              doc="rate of those per-group re-reads of the dense operand, not overlapped with the FMAs "
                  "(0: no such term)"),
    # published A100 rows (benchmarks/published/README.md): Triton bsr_dense_mm reaches 4 / 14 / 32 % of the fp16 peak
    # at block 16 / 32 / 64 and 33 / 71 / 79 % of the fp32 one: per kept weight it streams its dense operand's rows,
    # so the work per byte grows with the block, and in fp32 (twice the bytes, 1/16 the peak) the FMAs bind instead
    PathParam("block_reread_bandwidth", "block_reread_bandwidth_Bps", 0.0, "bandwidth", positive=True,
              patterns=("block",), fit_bounds=(0.0, 1e16), log_floor=1e6, absent_end="hi",
              doc="a block path streams its dense operand's b rows once per kept b x b block (bytes = executed "
                  "FLOPs x dtype bytes / 2b), overlapped with its FMAs (roofline), at this rate (0: no such term)"),
    PathParam("scatter_penalty", "scatter_penalty", 0.0, lo=0.0, hi=100.0, fit_bounds=(0.0, 100.0),
              fit_for=(("sparse", 8),), sample=(0.0, 2.0),
              doc="extra per-nonzero work of a nonzero alone in its 16x16 tile over one in a filled tile"),
    # measured (fit without it, commit 93e8f78's offshape/validation-with, 1 thread): block-16 products predicted at
    # 0.82-0.85 of the measured time at k = 3072 and 4096, 1.00-1.16 at k = 1536 and 2560; a 16-row register tile at
    # a 4 KiB-multiple row stride maps all its rows to one set of the 12-way L1 (docs/hardware-profiles.md, issue 20)
    PathParam("aliased_penalty", "aliased_penalty", 0.0, lo=0.0, hi=100.0, fit_bounds=(0.0, 100.0),
              fit_for=(("sparse", 9),), sample=(0.0, 1.0),
              doc="extra compute time of a sparse forward or input-gradient product whose dense operand's rows "
                  "are a whole multiple of 4 KiB apart (k * bytes): the rows a kernel tile walks together then "
                  "share one L1 set and evict each other"),
    PathParam("unaligned_penalty", "unaligned_penalty", 0.0, lo=0.0, hi=100.0, fit_bounds=(0.0, 100.0),
              fit_for=(("dense", 3),), sample=(0.0, 1.0),
              doc="extra compute time of a product whose operand rows are not whole 64-byte cache lines"),
    # measured (kernels/cpu/_csr.c at 1 thread, benchmarks/results/zen5-f26m2/offshape/tail-chunks.json): a last chunk
    # of w < 128 tokens runs row_tail, whose output row lives in memory, not registers: each nonzero waits on the
    # previous one's store, so at k = 320-1024 it costs a full chunk plus 0.5-1.1 of one per 128 tokens it holds
    # (at k = 4096 the full chunk is itself slow and short tails cost less than one)
    PathParam("tail_penalty", "tail_penalty", 0.0, lo=0.0, hi=100.0, fit_bounds=(0.0, 10.0),
              fit_for=(("sparse", 11),), sample=(0.0, 1.0),
              doc="on a path with row_multiple > 1, the last, partial tile of w rows costs 1 + tail_penalty * w / "
                  "row_multiple full tiles (0: a full tile, the padding alone)"),
    PathParam("row_multiple", "row_multiple", 1, "count",
              doc="the kernel pads the rows of X (tokens) up to a multiple of this: cuSPARSELt / CUTLASS 2:4 "
                  "tiles compute 32 rows for fp16 even for one token (1: no padding)"),
    # conditional (FFF) paths only, accelsim/hardware/conditional.py
    PathParam("level_latency", "level_latency_s", 0.0, "time", patterns=("conditional",), fit_bounds=(0.0, 1e-3),
              fit_for=(("conditional", 2),), log_floor=1e-11, absent_end="lo", sample=(1e-9, 1e-6),
              start=30e-9, doc="one dependent tree level of one token: row fetch + dot-product reduction"),
    PathParam("interleave", "interleave", 1, "count", patterns=("conditional",),
              doc="independent token walks one unit keeps in flight (hides level_latency)"),
)

def fit_kind(pattern: str) -> str:
    """Which calibration kind a path pattern belongs to: dense and conditional paths, else a sparse product."""
    return pattern if pattern in ("dense", "conditional") else "sparse"


def fitted_for(kind: str) -> tuple[str, ...]:
    """Parameters calibrate fits for paths of ``kind`` ("dense", "sparse", "conditional"), most important
    first (it keeps only as many as the points support)."""
    ranked = sorted((rank, p.key) for p in PATH_PARAMS.values() for k, rank in p.fit_for if k == kind)
    return tuple(key for _, key in ranked)


def fittable() -> dict[str, PathParam]:
    return {k: p for k, p in PATH_PARAMS.items() if p.fittable}
