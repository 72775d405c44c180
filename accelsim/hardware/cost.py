"""The per-op analytic cost model: how long one :class:`~accelsim.workload.Op` takes on one device.

Formulas, units and the work-item convention are documented in docs/hardware-profiles.md; in short, for
a product executing a fraction ``x`` of the dense FLOPs ``F`` on a path with parameters (e, d0, a):

    compute  = F * (x + d0^a * x^(1-a)) / (peak * e)  (+ decode per nonzero), i.e. F*x / (peak * eff(x))
               with eff(x) = e * x^a / (x^a + d0^a); the per-nonzero part follows the row-nnz spread
               across work items, and compute_s is the makespan of those items on the device's units;
               a path's scatter_penalty g scales the per-nonzero part by 1 + g*(1 - tile_fill), and
               its unaligned_penalty u all of it by 1 + u when k or n rows are not whole cache lines, and
               its aliased_penalty v by 1 + v when the dense operand's rows are a multiple of 4 KiB apart
    memory   = sum over levels of bytes(level) / bandwidth(level)   (+ BSP exchange bytes)
    time     = max(compute, memory) if the profile overlaps transfers else compute + memory,
               + launch overhead + path overhead (+ BSP syncs)

For a sparse linear op every path the hardware offers for the pattern is costed and the fastest wins;
the dense path is always a candidate, so sparsity can never make an op slower than running it dense.
FFF ``cond_matmul`` ops are costed the same way: the dense path runs every neuron (the masked
formulation) and each 'conditional' path gathers the visited rows (accelsim/hardware/conditional.py).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from accelsim.errors import UserError
from accelsim.hardware.conditional import cmm_work, cond_shape
from accelsim.hardware.items import chunk_quantiles, compute_time, item_layout
from accelsim.hardware.kernel_terms import aliased_rows, group_rereads, tile_fill, tile_rows, tiled_rows, unaligned_rows
from accelsim.hardware.profile import HardwareProfile, PathSpec, load_profile
from accelsim.hardware.schema import DTYPE_BYTES
from accelsim.hardware.synthetic import synthetic_pattern
from accelsim.workload import COND_MATMUL, ELEMENTWISE_OPS, GATHER, GATHER_TILES, STREAMED_ROLES, Op, product_op

#: Update traffic per updated parameter: AdamW's fp32 weight, grad and two moments read, weight and moments
#: written (28 B), after global-norm gradient clipping (BERT's clip 1.0, as the trainer does: the norm reads
#: the grad, the scaling reads and writes it, 12 B). A CPU profile that timed the update past its cache
#: (workload.STREAMED_ROLES) is priced by that time instead: the Zen 5 moves these 40 B at 59 GB/s, faster than
#: its numpy-copy bandwidth (42.5 GB/s, half of whose bytes are writes).
ADAM_BYTES_PER_PARAM = 40.0
#: Mask update traffic per candidate weight: fp32 weight and score read, one mask bit written.
MASK_BYTES_PER_ELEMENT = 8.125
#: Share of a cache a warm op's weights may fill and still stay there between calls (the rest holds the
#: activations streaming through): the same rule as the conditional path's hot rows (conditional.HOT_SHARE).
WARM_SHARE = 0.5
#: nm_2_4_frac must be this close to 1 for the 2:4 path (the statistic is a float fraction of groups).
NM_EXACT = 1.0 - 1e-9
#: workload op phase -> key of a vector path's element_time table
ELEMENT_PHASE = {"fwd": "fwd", "bwd_input": "bwd", "bwd_weight": "bwd", "mask_update": "fwd", "optimizer": "fwd"}


@dataclass
class OpCost:
    compute_s: float  # max(balanced time, longest work item) on profile.compute.count units (data free)
    memory_s: float  # sum over levels of bytes/bandwidth, including BSP exchange
    time_s: float  # combine(compute_s, memory_s) + overhead_s
    flops_executed: float  # FLOPs the chosen path performs (a dense path executes the zeros)
    bytes: dict[str, float]  # per memory level name (and "exchange" on BSP devices)
    energy_j: dict[str, float]  # "compute" and "memory:<level>"; static power is charged by the engine
    work_items: list[float]  # durations, longest first; see accelsim.hardware.items for the convention
    path: str  # name of the chosen path in the profile ("dense-gemm", "csr-spmm", ...)
    overhead_s: float = 0.0  # launch + path fixed overhead + BSP syncs, included in time_s
    stall_s: float = 0.0  # cold activations streamed from main memory after the overlapped part, in time_s
    units_per_item: float = 1.0  # engines one work item stands for (>1 only when items < units)
    block: int = 0  # block size of a block path, else 0
    stored: float = 1.0  # fraction of the weight's values the chosen path's format holds (a product's)
    candidates: dict[str, float] = field(default_factory=dict)  # time_s of every path considered
    memory_timed: bool = False  # compute_s is a measured time holding the traffic: memory_s runs inside it


@dataclass(frozen=True)
class _Plan:
    """One way to run a product: which path, what fraction of FLOPs it executes and of W it stores."""

    spec: PathSpec
    executed: float
    stored: float
    balanced: bool  # structured paths spread work evenly; unstructured ones follow the row-nnz law
    block: int = 0


def _dense_plans(spec, op, pattern, density):
    return [_Plan(spec, 1.0, 1.0, True)]


def _unstructured_plans(spec, op, pattern, density):
    return [_Plan(spec, density, density, False)]


def _nm_plans(spec, op, pattern, density):
    if float(pattern.get("nm_2_4_frac") or 0.0) < NM_EXACT:
        return []
    return [_Plan(spec, 0.5, 0.5, True)]


def _block_plans(spec, op, pattern, density):
    plans = []
    for b in spec.block_sizes:
        frac = pattern.get(f"block{b}_frac")
        if frac is not None:
            frac = min(max(float(frac), density), 1.0)
            plans.append(_Plan(spec, frac, frac, True, b))
    return plans


#: pattern kind of a path -> the plans it offers for a sparse product (registry, no if/elif over hardware)
PLANNERS = {"dense": _dense_plans, "unstructured": _unstructured_plans, "2:4": _nm_plans, "block": _block_plans}


def _usable(spec: PathSpec, dtype: str, phase: str | None) -> bool:
    return (not spec.dtypes or dtype in spec.dtypes) and (phase is None or phase in spec.phases) \
        and spec.fraction(dtype) is not None


def _matmul_dims(op: Op) -> dict:
    """Weight elements, activation elements and the row layout of the sparse operand for a linear op."""
    if op.phase == "bwd_weight":  # dW[m,n] = dY^T[m,k] X[k,n]: W-shaped output, rows along m
        return dict(w=op.m * op.n, act=op.m * op.k + op.k * op.n, rows=op.m, length=op.n, axis="row")
    axis = "col" if op.phase == "bwd_input" else "row"  # dX uses W^T: its rows are W's columns
    return dict(w=op.k * op.n, act=op.m * op.k + op.m * op.n, rows=op.n, length=op.k, axis=axis)


def _io_elements(op: Op, dims: dict | None, plan: _Plan) -> tuple[float, float]:
    """(input, output) activation elements of a product: the dense operands a kernel streams (and may
    re-read per nonzero) and the result it writes (the stored fraction of W for a sparse weight gradient)."""
    if dims is None:  # attention products
        return op.batch * (op.m * op.k + op.k * op.n), op.batch * op.m * op.n
    if op.phase == "bwd_weight":
        return op.m * op.k + op.k * op.n, dims["w"] * plan.stored
    return op.m * op.k, op.m * op.n


class _Ctx:
    """Per-query constants: profile, dtype, placement."""

    def __init__(self, profile: HardwareProfile, dtype: str, resident: bool, warm: bool = False):
        self.p = profile
        self.warm, self.resident = warm, resident
        self.dtype = dtype
        if dtype not in DTYPE_BYTES:
            raise UserError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_BYTES)}")
        self.b = DTYPE_BYTES[dtype]
        if dtype not in profile.compute.peak_flops:
            raise UserError(f"profile has no compute.peak entry for dtype {dtype!r}", source=profile.source_file,
                            field="compute.peak")
        self.peak = profile.compute.peak_flops[dtype]
        self.vector = profile.compute.vector_flops.get(dtype, profile.compute.vector_flops[profile.dtype])
        self.pj_flop = profile.energy.pj_per_flop.get(dtype, profile.energy.pj_per_flop[profile.dtype])
        sram = profile.level("sram")
        self.weight_level = sram if (resident and sram is not None) else profile.level("main")
        self.scratch = sram if sram is not None else profile.level("cache")
        self.main = profile.level("main")
        self.n_items, self.units_per_item = item_layout(profile.compute.count, profile.execution.items_per_unit)

    def weight_home(self, w_bytes: float):
        """Where an op's weights come from: on-chip SRAM when resident, else main memory, except for a warm
        op (a kernel called again and again, as a benchmark times it), whose weights stay in the fastest
        cache that holds them (with room left for the activations streaming past, WARM_SHARE)."""
        if self.warm and self.weight_level is self.main:
            for lv in self.p.memory:
                if lv.role == "cache" and w_bytes <= lv.capacity_bytes * WARM_SHARE:
                    return lv
        return self.weight_level

    def act_level(self, act_bytes: float):
        """Activations stay on chip when the op's activations fit there (cached between producer and consumer)."""
        if self.scratch is not None and act_bytes <= self.scratch.capacity_bytes:
            return self.scratch
        return self.main

    @property
    def cold(self) -> bool:
        """A training-step op on a profile measured in hot loops (execution.cold_activations): its activations
        come from main memory, not from the cache the profile's loops kept them in. Not for a warm call (a kernel
        benchmark's loop, which is what the profile measured)."""
        return self.p.execution.cold_activations and not self.warm and self.main is not None

    def act_home(self, act_bytes: float):
        """The level an op's activations stream from: main memory for a cold op, else :meth:`act_level`.
        Streamed linearly (elementwise ops, dense products), hardware prefetch overlaps that with compute."""
        return self.main if self.cold else self.act_level(act_bytes)

    def finish(self, plan_name: str, overhead: float, compute_items: np.ndarray, flops: float,
               traffic: list[tuple[object, float]], block: int = 0, cold: float = 0.0,
               memory_timed: bool = False) -> OpCost:
        """``cold``: activation bytes fetched from main memory after the overlapped part: a sparse kernel reads
        its dense operand where its indices say, which no prefetcher runs ahead of (see _cost_plan).
        ``memory_timed``: the compute items are a measured time that already holds this traffic
        (workload.STREAMED_ROLES); the bytes still count for energy and the breakdowns, not for the time."""
        p = self.p
        items = np.sort(np.asarray(compute_items, dtype=float))[::-1]
        compute_s = compute_time(items, p.compute.count, self.units_per_item)
        nbytes: dict[str, float] = {}
        memory_s = 0.0
        energy = {"compute": flops * self.pj_flop * 1e-12}
        for level, amount in traffic:
            if level is None or amount <= 0:
                continue
            name, bw, pj = (level if isinstance(level, tuple) else
                            (level.name, level.bandwidth_Bps, level.energy_pj_per_byte))
            nbytes[name] = nbytes.get(name, 0.0) + amount
            memory_s += amount / bw
            energy[f"memory:{name}"] = energy.get(f"memory:{name}", 0.0) + amount * pj * 1e-12
        overhead += p.execution.launch_overhead_s
        stall = 0.0
        if cold > 0:
            stall = cold / self.main.bandwidth_Bps
            nbytes[self.main.name] = nbytes.get(self.main.name, 0.0) + cold
            key = f"memory:{self.main.name}"
            energy[key] = energy.get(key, 0.0) + cold * self.main.energy_pj_per_byte * 1e-12
        bsp = p.execution.bsp
        if bsp is not None:
            overhead += bsp.supersteps_per_op * bsp.sync_s
        if memory_timed:  # the traffic ran inside the measured time: the memory port is busy at most that long
            memory_s = min(memory_s, compute_s)
            busy = compute_s
        else:
            busy = max(compute_s, memory_s) if p.execution.overlap and bsp is None else compute_s + memory_s
        return OpCost(compute_s=compute_s, memory_s=memory_s, time_s=busy + overhead + stall, flops_executed=flops,
                      bytes=nbytes, energy_j=energy, work_items=items.tolist(), path=plan_name,
                      overhead_s=overhead, units_per_item=self.units_per_item, block=block, stall_s=stall,
                      memory_timed=memory_timed)

    def even_items(self, balanced_s: float) -> np.ndarray:
        per = balanced_s * self.p.compute.count / (self.units_per_item * self.n_items)
        return np.full(self.n_items, per)

    def exchange(self, act_bytes: float) -> list:
        bsp = self.p.execution.bsp
        if bsp is None:
            return []
        return [(("exchange", bsp.exchange_bandwidth_Bps, bsp.exchange_energy_pj_per_byte), act_bytes)]


def _cost_plan(ctx: _Ctx, op: Op, plan: _Plan, pattern: dict | None, density: float) -> OpCost:
    spec = plan.spec
    dims = _matmul_dims(op) if op.kind == "linear" else None
    flops_dense = op.flops_dense or 2.0 * op.m * op.k * op.n * op.batch
    e, d0, a, x = spec.fraction(ctx.dtype), spec.d_half, spec.exponent, plan.executed
    in_bytes, out_bytes = (v * ctx.b for v in _io_elements(op, dims, plan))
    # the dense operand is re-read for every nonzero (block): slower once it spills out of the caches; a
    # kernel that cuts it into cache-sized pieces (chunk_bytes) re-reads one piece at a time
    reread = min(in_bytes, spec.chunk_bytes) if spec.chunk_bytes > 0 else in_bytes
    spill = 1.0 + reread / spec.spill_bytes if spec.spill_bytes > 0 else 1.0
    per_flop = flops_dense * spill / (ctx.peak * e)
    if tiled_rows(spec, op):  # X's rows padded to a tile, the last one slower (kernel_terms.tile_rows)
        per_flop *= tile_rows(spec, op.m) / op.m
    if spec.unaligned_penalty and unaligned_rows(op, ctx.b):
        per_flop *= 1.0 + spec.unaligned_penalty
    if spec.aliased_penalty and aliased_rows(op, ctx.b):
        per_flop *= 1.0 + spec.aliased_penalty
    t_nnz = per_flop * x  # per-nonzero work: follows the row-nnz distribution
    if spec.scatter_penalty:
        t_nnz *= 1.0 + spec.scatter_penalty * (1.0 - tile_fill(pattern, density))
    t_row = per_flop * (d0 ** a) * (x ** (1.0 - a)) if d0 > 0 and x > 0 else 0.0  # structure overhead: even
    stored = (dims["w"] if dims else 0) * plan.stored
    t_decode = stored * spec.decode_s_per_nnz / ctx.p.compute.count
    # the kernel's own passes over its inputs and output, not overlapped with its FMAs
    t_io = (in_bytes / spec.input_bandwidth_Bps if spec.input_bandwidth_Bps > 0 else 0.0) \
        + (max(out_bytes - spec.output_free_bytes, 0.0) / spec.output_bandwidth_Bps
           if spec.output_bandwidth_Bps > 0 else 0.0) \
        + group_rereads(spec, op, dims["w"] * plan.stored if dims else 0.0, in_bytes, ctx.b)
    even = ctx.even_items(t_row + t_decode + t_io)
    if plan.balanced or dims is None:
        items = even + ctx.even_items(t_nnz)
    else:
        shares = chunk_quantiles(ctx.n_items, dims["rows"], dims["length"], density, pattern, dims["axis"])
        items = even + ctx.even_items(t_nnz) * shares
    if dims is not None:
        act_bytes = dims["act"] * ctx.b
        w_bytes = dims["w"] * plan.stored * (ctx.b + spec.index_bytes_per_nnz)
        # cold activations: a dense product streams them, overlapped with its FMAs; a sparse one gathers X
        # where its indices say, so a hot-loop-measured time does not hide their fetch from main memory
        # (bert-small, Zen 5, benchmarks/results/zen5-f26m2/step-memory.json: a 512 x 512 block-16 forward takes
        # 0.62 ms in a training step, 0.47 ms called back to back; X and Y, 8 MB, take 0.22 ms from main memory)
        irregular = ctx.cold and spec.pattern != "dense"
        home = ctx.act_level(act_bytes) if irregular else ctx.act_home(act_bytes)
        traffic = [(ctx.weight_home(w_bytes), w_bytes), (home, act_bytes)] + ctx.exchange(act_bytes)
        if spec.block_reread_bandwidth_Bps > 0 and plan.block:  # params.block_reread_bandwidth
            pj = ctx.main.energy_pj_per_byte if ctx.main is not None else 0.0
            rate = ("block-reread", spec.block_reread_bandwidth_Bps, pj)
            traffic.append((rate, flops_dense * x * ctx.b / (2.0 * plan.block)))
        cold = act_bytes if irregular else 0.0
    else:  # attention products: both operands and the output are activations
        act_bytes = op.batch * (op.m * op.k + op.k * op.n + op.m * op.n) * ctx.b
        traffic = [(ctx.act_home(act_bytes), act_bytes)] + ctx.exchange(act_bytes)
        cold = 0.0
    cost = ctx.finish(spec.name, spec.overhead_s, items, flops_dense * x, traffic, plan.block, cold=cold)
    return dataclasses.replace(cost, stored=plan.stored)


def _gather_cost(ctx: _Ctx, op: Op, pattern: dict | None) -> OpCost:
    """A sparse-executed layer's values gathered into the formats of its forward and input-gradient products
    (accelsim.workload.sparse_execution_ops; op.m tokens, weight op.n x op.k): the values each product's chosen
    path stores, none for a dense path (it reads W). A block path over an unstructured mask keeps whole tiles
    (bert-small RigL-90: the attention products run as 32x32 tiles, nearly all kept, ten times the nonzeros),
    and tiles are gathered as contiguous rows, at the profile's GATHER_TILES time per value where it has one."""
    scattered = tiles = 0.0
    for kind in ("matmul", "matmul_dx"):
        product = product_op(kind, op.m, op.k, op.n, op.density)
        chosen = op_cost(ctx.p, product, pattern, resident=ctx.resident, dtype=ctx.dtype, warm=ctx.warm)
        values = chosen.stored * op.k * op.n
        pattern_kind = ctx.p.paths[chosen.path].pattern
        scattered += values if pattern_kind == "unstructured" else 0.0
        tiles += values if pattern_kind == "block" else 0.0
    vector = next(s for s in ctx.p.paths.values() if s.pattern == "vector" and _usable(s, ctx.dtype, None))
    per_value, per_tile_value = (vector.element_seconds(role, "fwd", scattered + tiles)
                                 for role in (GATHER, GATHER_TILES))
    weight = per_tile_value / per_value if per_value and per_tile_value else 1.0
    return _vector_cost(ctx, dataclasses.replace(op, elements=round(scattered + weight * tiles)))


def _elementwise_flops(op: Op, profile: HardwareProfile) -> float:
    if op.kind == "elementwise":
        return op.elements * ELEMENTWISE_OPS.get(op.role, 1.0)
    if op.kind == "embedding":
        return float(op.elements)
    return float(op.flops)


#: how much vector work an op represents, by profile kind; 'ideal' counts only the trace's FLOPs
#: (matmuls, optimizer, mask updates), which is the naive FLOP-ratio estimate kept as a reference line.
VECTOR_WORK = {"ideal": lambda op, profile: float(op.flops)}


def _vector_cost(ctx: _Ctx, op: Op) -> OpCost:
    spec = next(s for s in ctx.p.paths.values() if s.pattern == "vector" and _usable(s, ctx.dtype, None))
    flops = VECTOR_WORK.get(ctx.p.kind, _elementwise_flops)(op, ctx.p)
    # the optimizer and mask scoring run on fp32 master weights
    rate = ctx.p.compute.vector_flops.get("fp32", ctx.vector) if op.kind in ("optimizer", "mask_update") \
        else ctx.vector
    per_element = spec.element_seconds(op.role or "", ELEMENT_PHASE.get(op.phase, ""), op.elements)
    measured = per_element is not None and op.kind in ("elementwise", "optimizer", "mask_update")  # role, phase
    if measured:
        items = ctx.even_items(op.elements * per_element)
    else:
        items = ctx.even_items(flops / (rate * spec.fraction(ctx.dtype)))
    e = float(op.elements)
    traffic = {
        "elementwise": lambda: [(ctx.act_home(2 * e * ctx.b), 2 * e * ctx.b)] + ctx.exchange(2 * e * ctx.b),
        "embedding": lambda: [(ctx.weight_level, e * ctx.b), (ctx.act_home(e * ctx.b), e * ctx.b)],
        "optimizer": lambda: [(ctx.weight_level, e * (ADAM_BYTES_PER_PARAM + (ctx.b if ctx.b < 4 else 0)))],
        "mask_update": lambda: [(ctx.weight_level, e * MASK_BYTES_PER_ELEMENT)],
    }[op.kind]()
    if ctx.p.kind == "ideal":
        traffic = []
    return ctx.finish(spec.name, spec.overhead_s, items, flops, traffic,
                      memory_timed=measured and op.role in STREAMED_ROLES)


def op_cost(profile: HardwareProfile | str, op: Op, pattern: dict | None = None, *, resident: bool = True,
            dtype: str | None = None, path: str | None = None, warm: bool = False, eager: bool = False,
            relayout: bool = False) -> OpCost:
    """Cost of ``op`` on one device of ``profile``.

    ``pattern``: the layer's latest patterns.parquet row (None: uniform random at ``op.density``).
    ``resident``: the model's training state stays in on-chip SRAM (see :func:`fits_on_chip`); only
    profiles with an 'sram' level are affected. ``dtype`` overrides the profile's training dtype and
    ``path`` forces one path by name (UserError if it cannot run this op). ``warm``: the op runs again and
    again on the same weights (a kernel benchmark), so they stay in a cache that holds them; a training
    step (the simulator's default) touches every layer in turn and finds them in main memory.
    ``eager``: the call is dispatched from eager framework code, so a path's ``dispatch_overhead`` (host
    time per call) bounds it from below (products only; the simulator's default leaves it out).
    ``relayout``: the dense operand reaches a sparse product in the framework's layout, not the op's own, so a
    path's ``relayout_overhead`` is added per call (the simulator's default: inputs laid out for the op).
    """
    profile = load_profile(profile)
    ctx = _Ctx(profile, dtype or profile.dtype, resident, warm)
    if op.kind == COND_MATMUL:
        return _cond_cost(ctx, op, pattern, path)
    if op.role == GATHER and op.m > 0:
        return _gather_cost(ctx, op, pattern)
    if op.kind not in ("linear", "attn_matmul"):
        return _vector_cost(ctx, op)
    density = min(max(float(op.density), 0.0), 1.0)
    sparse = op.kind == "linear" and op.sparse and density < 1.0
    if sparse and pattern is None:
        dims = _matmul_dims(op)
        rows, cols = (dims["rows"], dims["length"]) if dims["axis"] == "row" else (dims["length"], dims["rows"])
        pattern = synthetic_pattern(rows, cols, density)
    phase = op.phase if op.kind == "linear" else None
    plans: list[_Plan] = []
    for spec in profile.paths.values():
        if spec.pattern not in PLANNERS or not _usable(spec, ctx.dtype, phase if spec.pattern != "dense" else None):
            continue  # vector and conditional paths run other op kinds
        if spec.pattern == "dense" or sparse:
            plans.extend(PLANNERS[spec.pattern](spec, op, pattern, density))
    if path is not None:
        plans = [pl for pl in plans if pl.spec.name == path]
        if not plans:
            raise UserError(f"path {path!r} cannot run op {op.name!r} ({op.kind}, {op.phase}, density {density:g}, "
                            f"dtype {ctx.dtype}); paths: {', '.join(profile.paths)}", source=profile.source_file)
    if not plans:
        raise UserError(f"no path can run op {op.name!r} in dtype {ctx.dtype}", source=profile.source_file,
                        field="paths")
    return _fastest([_eager(_relayout(_cost_plan(ctx, op, pl, pattern, density), pl.spec, relayout and sparse),
                            pl.spec, eager) for pl in plans])


def _relayout(cost: OpCost, spec: PathSpec, relayout: bool) -> OpCost:
    """A sparse product whose dense operand arrives in another layout: the rearrangement runs before it."""
    if relayout and spec.relayout_overhead_s:
        cost.overhead_s += spec.relayout_overhead_s
        cost.time_s += spec.relayout_overhead_s
    return cost


def _eager(cost: OpCost, spec: PathSpec, eager: bool) -> OpCost:
    """An eagerly dispatched call: the host issues it asynchronously in ``dispatch_overhead`` seconds, so
    the device waits whenever that is longer than the kernel (a steady stream of such calls)."""
    if eager and spec.dispatch_overhead_s > cost.time_s:
        cost.overhead_s += spec.dispatch_overhead_s - cost.time_s
        cost.time_s = spec.dispatch_overhead_s
    return cost


def _fastest(costs: list[OpCost]) -> OpCost:
    best = min(costs, key=lambda c: c.time_s)
    best.candidates = {(c.path + (f"/b{c.block}" if c.block else "")): c.time_s for c in costs}
    return best


def _cond_cost(ctx: _Ctx, op: Op, fff: dict | None, path: str | None) -> OpCost:
    """A cond_matmul op: the masked formulation on the dense path (every neuron, a product of the dense
    FF of equal width) and, when the trainer computed the path only (``op.sparse``), every conditional
    path; the fastest wins. ``fff``: the layer's fff-table statistics (None: balanced visits)."""
    masked = dataclasses.replace(op, kind="linear", sparse=False, density=1.0, flops=op.flops_dense)
    costs = [_cost_plan(ctx, masked, pl, None, 1.0) for spec in ctx.p.paths.values()
             if spec.pattern == "dense" and _usable(spec, ctx.dtype, None) for pl in _dense_plans(spec, op, None, 1.0)]
    if op.sparse:
        for spec in ctx.p.paths.values():
            if spec.pattern == "conditional" and _usable(spec, ctx.dtype, op.phase):
                w = cmm_work(ctx.p, spec, op, fff, dtype=ctx.dtype, peak=ctx.peak, elem_bytes=ctx.b,
                             home=ctx.weight_home(cond_shape(op).neurons * cond_shape(op).hidden * ctx.b),
                             act_level=ctx.act_level, n_items=ctx.n_items,
                             units_per_item=ctx.units_per_item, exchange=ctx.exchange)
                costs.append(ctx.finish(spec.name, w.overhead_s, w.items, w.flops, w.traffic))
    if path is not None:
        costs = [c for c in costs if c.path == path]
    if not costs:
        raise UserError(f"no path{f' named {path!r}' if path else ''} can run op {op.name!r} (cond_matmul, "
                        f"{op.phase}, dtype {ctx.dtype}); paths: {', '.join(ctx.p.paths)}", source=ctx.p.source_file)
    return _fastest(costs)
