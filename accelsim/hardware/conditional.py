"""Conditional matrix multiplication (CMM): what an FFF (UltraSparseBERT) ``cond_matmul`` op costs.

An FFF layer of K trees with L = D + 1 levels (accelsim.workload.fff_layer_ops) visits, per token and tree,
one node per level. Each visit touches one H-long weight row: the forward does a dot product (``fff_in``)
or an axpy (``fff_out``) with it, the input gradient the converse, the weight gradient a scatter-add
(read-modify-write) of one gradient row. So every cond op is ``T * K * L`` row touches of ``2 H`` FLOPs
each (``op.flops``), and three things decide its time (docs/hardware-profiles.md, "Conditional matmul"):

* **where the rows come from** (:func:`row_traffic`): rows live at the weight level (on-chip SRAM when
  the training state is resident, else DRAM/HBM). The levels of the tree are hot in order: the root is
  visited by every token, a level-l node by T / 2^l of them on average, so the faster levels (caches,
  or SRAM in front of streaming memory) are filled root first with the rows each level actually used
  (``level_nodes_used``). A level that only partly fits hits with probability (capacity left / its
  bytes), the LRU estimate for random accesses. Each used row is also loaded once from its home.
* **the dependent chain** (routing forward only): a token's next row is known only after the current
  dot product, so one token walks its L levels one ``level_latency`` after another; a unit hides that
  latency by walking ``interleave`` tokens at once: ``ceil(T*K / (units*interleave)) * L * level_latency``.
* **how work spreads over the units** (:func:`node_items`): on token-partitioned devices (CPUs, GPUs:
  weights shared through caches) every token does the same K*L visits, so work items are even. On
  node-partitioned (weight-stationary) devices each unit owns tree nodes and serves the tokens routed
  to them; the static layout gives each node units in proportion to its *expected* visits, so a level
  whose busiest node gets ``level_max_visits`` = r times the mean keeps its units r times longer, and
  deep levels, where a unit holds many nodes, vary by ``level_cv / sqrt(nodes per unit)``. Levels run
  one after another (a token needs its parent's result), so per-level loads add up, busiest with busiest.

Statistics are the trace's fff-table row for the layer (raw columns), or the simulator's quantised form
(``level_used_frac``, ``level_max_ratio``, ``level_cv``); None means balanced visits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from accelsim.errors import UserError
from accelsim.hardware.profile import HardwareProfile, MemoryLevel, PathSpec

#: Share of a cache (or of SRAM in front of streaming memory) one op's rows may hold: the two H-row
#: matrices of a layer are walked together (w_in and w_out forward; a weight and its gradient backward).
HOT_SHARE = 0.5
#: A row read moves at least one cache line / DRAM burst, however short the row (bert-tiny fp16: 256 B).
ROW_GRANULE_BYTES = 64


@dataclass(frozen=True)
class CondShape:
    """A cond_matmul op in FFF terms (op m/k/n are those of the dense FF of equal width)."""

    tokens: int
    hidden: int
    neurons: int
    trees: int
    levels: int
    visits_per_level: float  # row touches per level: T*K for hard routing (scaled if op.density says more)
    routing: bool  # the forward of fff_in: computes the logits that choose the path (the dependent chain)
    scatter: bool  # weight gradient: read-modify-write of gradient rows


def cond_shape(op) -> CondShape:
    if op.phase == "bwd_weight":
        W, T, H = op.m, op.k, op.n
    elif op.phase == "bwd_input":
        T, W, H = op.m, op.k, op.n
    else:
        T, H, W = op.m, op.k, op.n
    K, L = max(int(op.trees), 1), max(int(op.levels), 1)
    rows_per_token = float(op.density) * W  # K*L under hard routing (accelsim.workload.fff_layer_ops)
    return CondShape(tokens=int(T), hidden=int(H), neurons=int(W), trees=K, levels=L,
                     visits_per_level=T * rows_per_token / L, routing=op.phase == "fwd" and op.role == "ffn_in",
                     scatter=op.phase == "bwd_weight")


@dataclass(frozen=True)
class LevelStats:
    """Per level, root first: fraction of the level's K*2^l nodes visited, busiest node's visits over the
    mean (>= 1), and the coefficient of variation of the visits."""

    used: np.ndarray
    ratio: np.ndarray
    cv: np.ndarray


def balanced_stats(levels: int, tokens: int) -> LevelStats:
    """No fff rows: every node equally likely, so a level's expected used fraction is 1 - (1 - 2^-l)^T."""
    used = 1.0 - np.power(1.0 - 0.5 ** np.arange(levels), max(tokens, 0))
    return LevelStats(used=used, ratio=np.ones(levels), cv=np.zeros(levels))


def level_stats(row: dict | None, shape: CondShape) -> LevelStats:
    """LevelStats from an fff-table row (raw or quantised), checked against the op's tree shape."""
    L, K = shape.levels, shape.trees
    if row is None:
        return balanced_stats(L, shape.tokens)
    nodes = K * 2.0 ** np.arange(L)
    if "level_max_ratio" in row:  # the simulator's quantised form
        used, ratio = np.asarray(row["level_used_frac"], float), np.asarray(row["level_max_ratio"], float)
    else:
        tokens = float(row.get("tokens") or 0)
        used = np.asarray(row.get("level_nodes_used") or [], float) / nodes[:len(row.get("level_nodes_used") or [])]
        mean = tokens / 2.0 ** np.arange(len(row.get("level_max_visits") or []))
        ratio = np.asarray(row.get("level_max_visits") or [], float) / np.where(mean > 0, mean, 1.0)
    cv = np.asarray(row.get("level_cv") or [], float)
    if not (len(used) == len(ratio) == len(cv) == L):
        raise UserError(f"FFF statistics of layer {row.get('layer', '?')!r} describe {len(cv)} levels but the op "
                        f"has {L} (K={K} trees of depth {L - 1})", field="fff")
    return LevelStats(used=np.clip(used, 0.0, 1.0), ratio=np.maximum(ratio, 1.0), cv=np.maximum(cv, 0.0))


def _hot_levels(profile: HardwareProfile, home: MemoryLevel | None) -> list[MemoryLevel]:
    """Caches (and SRAM) faster than the rows' home level, fastest first: where hot rows are kept."""
    out = []
    for lv in profile.memory:
        if lv is home or home is None:
            break
        if lv.role in ("cache", "sram"):
            out.append(lv)
    return out


def row_traffic(profile: HardwareProfile, spec: PathSpec, home: MemoryLevel | None, shape: CondShape,
                st: LevelStats, elem_bytes: int) -> list[tuple[MemoryLevel, float]]:
    """(level, bytes) of the weight-row touches: hot levels filled root first, misses and first loads at home."""
    if home is None:
        return []
    row = max(shape.hidden * elem_bytes, ROW_GRANULE_BYTES) * (2 if shape.scatter else 1)  # RMW when scattering
    hot = _hot_levels(profile, home)
    units = profile.compute.count
    left = [lv.capacity_bytes * HOT_SHARE / (units if lv.name in spec.private_levels else 1) for lv in hot]
    moved = {lv.name: 0.0 for lv in hot}
    at_home = 0.0
    for lvl in range(shape.levels):
        distinct = st.used[lvl] * shape.trees * 2.0 ** lvl  # rows of this tree level in use
        size = distinct * row
        touches = shape.visits_per_level * row
        miss = 1.0
        for i, lv in enumerate(hot):
            fits = 1.0 if size <= left[i] else left[i] / size
            moved[lv.name] += touches * miss * fits
            left[i] = max(left[i] - size, 0.0)
            miss *= 1.0 - fits
        at_home += touches * miss + size * (1.0 - miss)  # misses, plus the first load of every cached row
    return [(lv, moved[lv.name]) for lv in hot] + [(home, at_home)]


def chain_time(spec: PathSpec, units: int, shape: CondShape) -> float:
    """Seconds of the dependent level chain of the routing forward (0 for every other cond op)."""
    if not shape.routing or spec.level_latency_s <= 0:
        return 0.0
    walks = shape.tokens * shape.trees
    return math.ceil(walks / (units * spec.interleave)) * shape.levels * spec.level_latency_s


@dataclass(frozen=True)
class _Layout:
    n: int  # work items
    units_per_item: float


def node_items(layout: _Layout, shape: CondShape, st: LevelStats, visit_s: float) -> np.ndarray:
    """Work items (seconds, longest first) of a node-partitioned device; ``visit_s``: one row visit on one
    unit. Per level the items are loads of the units (see the module docstring), summed busiest first."""
    n = layout.n
    total = np.zeros(n)
    z = sps.norm.ppf((np.arange(n)[::-1] + 0.5) / n)  # descending standard-normal quantiles
    for lvl in range(shape.levels):
        nodes = shape.trees * 2 ** lvl
        visits = shape.visits_per_level
        used = max(1, min(nodes, math.ceil(st.used[lvl] * nodes - 1e-9)))
        # the busiest node: r times the mean, at least the mean of the used nodes, at most a whole tree's tokens
        hottest = min(max(st.ratio[lvl] * visits / nodes, visits / used), visits / shape.trees)
        loads = np.zeros(n)
        if nodes <= n:  # each node served by n / nodes items (units in proportion to expected visits)
            group = n / nodes
            hot = max(1, round(group))
            loads[:hot] = hottest * visit_s / group
            others = min(n - hot, round((used - 1) * group))
            if others > 0:  # never above the hottest node's items: (visits - hottest) / (used - 1) <= hottest
                loads[hot:hot + others] = (visits - hottest) * visit_s / ((used - 1) * group)
        else:  # several nodes per item: sums of nodes per item spread by cv / sqrt(nodes per item)
            spread = st.cv[lvl] / math.sqrt(nodes / n)
            loads = visits * visit_s / n * np.maximum(1.0 + spread * z, 0.0)
            loads[0] = max(loads[0], hottest * visit_s)
        total += np.sort(loads)[::-1]
    return total / layout.units_per_item


def token_items(layout: _Layout, units: int, balanced_s: float) -> np.ndarray:
    """Even items whose balanced time (sum * units_per_item / units) is ``balanced_s``."""
    return np.full(layout.n, balanced_s * units / (layout.units_per_item * layout.n))


@dataclass
class CmmWork:
    """What the cost model's ``finish`` needs for one conditional path."""

    items: np.ndarray
    flops: float
    traffic: list
    overhead_s: float


def cmm_work(profile: HardwareProfile, spec: PathSpec, op, row: dict | None, *, dtype: str, peak: float,
             elem_bytes: int, home: MemoryLevel | None, act_level, n_items: int, units_per_item: float,
             exchange) -> CmmWork:
    """Compute items, traffic and extra overhead of ``op`` on the conditional path ``spec``.

    ``act_level(bytes)`` and ``exchange(bytes)`` are the cost model's placement rules for activations and
    BSP exchange traffic, so a cond op follows the same conventions as every other product."""
    shape = cond_shape(op)
    st = level_stats(row, shape)
    units = profile.compute.count
    layout = _Layout(n_items, units_per_item)
    flops = float(op.flops)
    rate = peak * spec.fraction(dtype)  # the device's rate for row dot products / axpys
    balanced = flops / rate
    chain = chain_time(spec, units, shape)
    overhead = spec.overhead_s
    act = shape.tokens * (shape.hidden + 2 * shape.trees * shape.levels) * elem_bytes  # x|dy in, y|logits out
    if spec.partition == "nodes":
        visit_s = 2.0 * shape.hidden / (rate / units)
        items = node_items(layout, shape, st, visit_s)
        moved = shape.visits_per_level * shape.levels * shape.hidden * elem_bytes  # tokens travel to node owners
        bsp = profile.execution.bsp
        if bsp is not None:  # one compute/exchange superstep per tree level
            overhead += shape.levels * bsp.sync_s
            extra = exchange(moved + act)
        else:  # through the on-chip fabric, charged at the on-chip memory's bandwidth
            fabric = profile.level("sram") or home
            extra = [(fabric, moved)] if fabric is not None else []
    else:
        items = token_items(layout, units, balanced)
        extra = exchange(act)
    items = np.maximum(items, token_items(layout, units, chain))
    traffic = row_traffic(profile, spec, home, shape, st, elem_bytes)
    if profile.memory:
        traffic.append((act_level(act), act))
    return CmmWork(items=items, flops=flops, traffic=traffic + extra, overhead_s=overhead)
