"""Which cases pay a sparse kernel's structural terms (accelsim.hardware.params): cache-line alignment, L1 set
aliasing, tile fill, per-group re-reads, row tiles. Shared by the cost model (accelsim.hardware.cost) and by calibrate,
which fits a term only where some training point exercises it (kernels.calibrate.IDENTIFIABLE)."""
from __future__ import annotations

import math

from accelsim.hardware.profile import PathSpec
from accelsim.workload import Op

#: bytes of a cache line: operand rows of a product that are not whole lines pay the path's unaligned_penalty
CACHE_LINE = 64
#: bytes between addresses that share an L1 set on x86 cores (size / ways: 32 KiB / 8 on Zen 3, 48 KiB / 12 on Zen 5);
#: operand rows this far apart alias, and pay the path's aliased_penalty
L1_SET_SPAN = 4096


def unaligned_rows(op: Op, nbytes: int) -> bool:
    """A product whose operand rows (op.k or op.n elements of ``nbytes``) are not whole cache lines."""
    return bool((op.k * nbytes) % CACHE_LINE or (op.n * nbytes) % CACHE_LINE)


def aliased_rows(op: Op, nbytes: int) -> bool:
    """A forward or input-gradient product whose dense operand (X or dY, rows of op.k elements) has rows a whole
    multiple of L1_SET_SPAN apart (the weight gradient streams its operands a line per row: no tile reuse)."""
    return op.kind == "linear" and op.phase != "bwd_weight" and (op.k * nbytes) % L1_SET_SPAN == 0


def tile_fill(pattern: dict | None, density: float) -> float:
    """Share of the slots of the 16x16 tiles holding a nonzero that are nonzero: 1 for 16x16 (or larger)
    blocks, about the density for scattered nonzeros. A cheap contiguity measure from the statistics every
    patterns.parquet row carries: an index-driven kernel streams runs of neighbouring nonzeros but pays a
    cache line (or a gather) per nonzero when they are scattered."""
    frac = float((pattern or {}).get("block16_frac") or 0.0)
    return 1.0 if frac <= 0.0 else min(max(density / frac, 0.0), 1.0)


def regrouped(spec: PathSpec, op: Op) -> bool:
    """A forward or input-gradient product of a linear layer on a path that passes its stored weights in groups
    (params: group_bytes), re-reading the dense operand once per group as a GotoBLAS-ordered loop does; the weight
    gradient walks its operands once."""
    return spec.group_bytes > 0 and op.kind == "linear" and op.phase != "bwd_weight"


def group_rereads(spec: PathSpec, op: Op, stored_elements: float, in_bytes: float, nbytes: int) -> float:
    """Seconds of those re-reads of the dense operand (``in_bytes``); ``stored_elements``: the weight values the
    path stores."""
    if not regrouped(spec, op) or spec.reread_bandwidth_Bps <= 0:
        return 0.0
    return math.ceil(stored_elements * nbytes / spec.group_bytes) * in_bytes / spec.reread_bandwidth_Bps


def tiled_rows(spec: PathSpec, op: Op) -> bool:
    """A forward or input-gradient product on a path that computes X's rows (tokens) in tiles of row_multiple."""
    return spec.row_multiple > 1 and op.kind == "linear" and op.phase != "bwd_weight"


def partial_tile(spec: PathSpec, op: Op) -> bool:
    """Such a product whose last tile is partial (where tail_penalty applies)."""
    return tiled_rows(spec, op) and op.m % spec.row_multiple != 0


def tile_rows(spec: PathSpec, m: int) -> float:
    """Rows of work m tokens cost on a row-tiled path: whole tiles, the last (partial) one at 1 + tail_penalty *
    its share of a tile (kernels/cpu/_csr.c's row_tail keeps its output in memory, not registers)."""
    rm = spec.row_multiple
    full, w = divmod(m, rm)
    return float(full * rm + (rm + spec.tail_penalty * w if w else 0))
