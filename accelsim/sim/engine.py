"""The event-driven engine: one op on one device, then one training step on N data-parallel devices.

Two levels, both simpy models:

* :class:`OpSimulator` runs a single op on a fresh device model: its work items on the compute
  array, its memory traffic on the memory port (overlapped, sequential or as a BSP exchange), its
  fixed overheads. Ops run one after another on a device (one stream), so an op's timing depends only
  on the op and its pattern, and is memoised on that key.
* :func:`simulate_step` replays a step's ops in dependency order (forward block by block, backward
  in reverse, optimizer, mask update) as timeouts of their memoised durations, while gradient
  buckets are all-reduced on the link in the background as the backward pass produces them (as
  PyTorch DDP does); the optimizer waits for the last bucket. A BSP device cannot overlap, so its
  all-reduce runs as one exchange after the backward pass.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field

import simpy

from accelsim.sim.device import CostFn, CostLike, DeviceSpec
from accelsim.sim.schedule import fff_key
from accelsim.sim.units import ComputeArray, Link, MemoryPort
from accelsim.sim.units.busy import attribute
from accelsim.workload import COND_MATMUL, Op

#: Gradient bucket size before an all-reduce is issued: PyTorch DDP's default ``bucket_cap_mb``.
BUCKET_BYTES = 25 * 2**20


class CountingEnvironment(simpy.Environment):
    """A simpy environment that counts scheduled events (for the events/s benchmark figure)."""

    def __init__(self) -> None:
        super().__init__()
        self.events = 0

    def schedule(self, event, priority=simpy.core.NORMAL, delay=0):
        self.events += 1
        super().schedule(event, priority, delay)


@dataclass
class OpTiming:
    duration: float
    units: dict[str, float]  # compute / memory / idle seconds, exclusive, summing to ``duration``
    compute_work: float  # engine-seconds the compute array was busy
    memory_busy: float
    energy: dict[str, float]  # dynamic energy parts, J
    flops: float
    path: str
    events: int = 0


def _overlapped(device: DeviceSpec, c: CostLike) -> bool:
    """Memory traffic runs alongside compute: on an overlapping device, or inside an op's measured time."""
    # measured first, as the cost model decides (hardware.cost._Ctx.finish): a measured time holds its traffic
    # on any device, BSP included
    return getattr(c, "memory_timed", False) or (not device.bsp and device.overlap)


def _combine(device: DeviceSpec, c: CostLike) -> float:
    return max(c.compute_s, c.memory_s) if _overlapped(device, c) else c.compute_s + c.memory_s


class OpSimulator:
    """Times ops on one device, memoised by (cost context, op signature, pattern)."""

    def __init__(self, device: DeviceSpec, cost: CostFn, memoize: bool = True):
        self.device, self.memoize = device, memoize
        self.cost, self.context = cost, None  # context: what else the cost depends on (e.g. residency)
        self._memo: dict[tuple, OpTiming] = {}
        self.events = 0  # simpy events actually processed (memo hits cost none)

    def bind(self, cost: CostFn, context) -> None:
        self.cost, self.context = cost, context

    def time(self, op: Op, pattern: dict | None) -> OpTiming:
        key = (self.context, _op_key(op), _pattern_key(pattern))
        hit = self._memo.get(key) if self.memoize else None
        if hit is None:
            hit = self._simulate(self.cost(op, pattern))
            self.events += hit.events
            if self.memoize:
                self._memo[key] = hit
        return hit

    def _simulate(self, c: CostLike) -> OpTiming:
        dev = self.device
        env = CountingEnvironment()
        compute, memory = ComputeArray(env, dev.engines), MemoryPort(env)
        # what the cost model charges beyond compute and memory: launch, path and BSP sync overheads
        overhead = max(c.time_s - _combine(dev, c), 0.0)
        items = list(c.work_items)
        per_item = float(getattr(c, "units_per_item", 1.0))

        def run():
            if dev.bsp:  # compute phase, sync, exchange phase
                yield env.process(compute.run(items, c.compute_s, per_item))
                yield env.timeout(overhead)
                yield env.process(memory.transfer(c.memory_s))
                return
            yield env.timeout(overhead)
            if _overlapped(dev, c):
                yield env.all_of([env.process(compute.run(items, c.compute_s, per_item)),
                                  env.process(memory.transfer(c.memory_s))])
            else:
                yield env.process(compute.run(items, c.compute_s, per_item))
                yield env.process(memory.transfer(c.memory_s))

        env.process(run())
        env.run()
        units = attribute(env.now, {"compute": compute.log, "memory": memory.log})
        return OpTiming(duration=env.now, units=units, compute_work=compute.log.work,
                        memory_busy=memory.log.work, energy=dict(c.energy_j), flops=float(c.flops_executed),
                        path=str(c.path), events=env.events)


_KEY_FIELDS = tuple(f.name for f in dataclasses.fields(Op) if f.name not in ("name", "layer", "block"))


def _op_key(op: Op) -> tuple:
    # the name and the layer/block it belongs to do not change what an op costs; its shape does
    return tuple(getattr(op, f) for f in _KEY_FIELDS)


def _hashable(v):
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, float) and v != v:
        return "nan"  # NaN ("not measured") never equals itself, which would defeat the memo
    return v


def _pattern_key(pattern: dict | None):
    if pattern is None:
        return None
    return tuple(sorted((k, _hashable(v)) for k, v in pattern.items() if k != "layer"))


def op_pattern(op: Op, patterns: dict[str, dict]) -> dict | None:
    """What the cost model sees besides the op: a sparse layer's pattern row, or for an FFF product its
    layer's routing statistics (None: uniform random mask / balanced visits)."""
    if op.kind == COND_MATMUL:
        return patterns.get(fff_key(op.block))
    return patterns.get(op.layer) if op.layer else None


def dependency_order(ops: list[Op]) -> list[Op]:
    """Forward ops as listed, then the backward ops in reverse, then optimizer, then mask updates."""
    fwd = [o for o in ops if o.phase == "fwd"]
    bwd = [o for o in ops if o.phase in ("bwd_input", "bwd_weight")][::-1]
    rest = [o for o in ops if o.phase == "optimizer"] + [o for o in ops if o.phase == "mask_update"]
    return fwd + bwd + rest


def layer_of(op: Op) -> str:
    """Breakdown key: the manifest layer, else the op name without its phase suffix."""
    if op.layer:
        return op.layer
    return op.name.rsplit(".", 1)[0] if "." in op.name else op.name


@dataclass
class StepTiming:
    time_s: float
    energy: dict[str, float]  # parts: dynamic parts from the cost model, "static", summed over devices
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind -> [seconds, joules]
    by_layer: dict[str, list[float]] = field(default_factory=dict)
    units: dict[str, float] = field(default_factory=dict)  # compute / memory / link / idle, exclusive
    busy: dict[str, float] = field(default_factory=dict)  # compute engine-s, memory s, link s (per device)
    flops: float = 0.0  # executed on one device
    link_bytes: float = 0.0
    paths: dict[str, str] = field(default_factory=dict)
    events: int = 0

    @property
    def energy_j(self) -> float:
        return float(sum(self.energy.values()))


def grad_elements(op: Op) -> float:
    """Gradient elements a weight-gradient op produces for the all-reduce. Masks are identical on
    every replica, so a sparse gradient travels as its nonzeros only (no indices); dense-gradient
    steps (RigL updates) send it dense, since growth needs the global dense gradient.
    A weight-gradient op is dW[m, n] = dY^T[m, k] X[k, n] (see accelsim.workload)."""
    return op.m * op.n * (op.density if op.sparse else 1.0)


class GradientSync:
    """Gradients leave for the all-reduce in buckets as the backward pass produces them (DDP
    style, overlapping the rest of backward), or all together at the end on a BSP device."""

    def __init__(self, env: simpy.Environment, link: Link, bucket_bytes: float, defer: bool):
        self.env, self.link, self.bucket_bytes, self.defer = env, link, bucket_bytes, defer
        self.bucket = 0.0
        self.pending: list[simpy.Process] = []

    def _issue(self, nbytes: float) -> None:
        if self.link.devices > 1 and nbytes > 0:
            self.pending.append(self.env.process(self.link.allreduce(nbytes)))

    def produced(self, nbytes: float) -> None:
        self.bucket += nbytes
        if not self.defer and self.bucket >= self.bucket_bytes:
            self._issue(self.bucket)
            self.bucket = 0.0

    def finish(self, tail_bytes: float):
        """Process: send what is left plus ``tail_bytes``, then wait for every all-reduce."""
        self._issue(self.bucket + tail_bytes)
        self.bucket = 0.0
        if self.pending:
            yield self.env.all_of(self.pending)


def simulate_step(ops: list[Op], patterns: dict[str, dict], sim: OpSimulator, devices: int = 1,
                  rest_grad_elements: float = 0.0, bucket_bytes: float = BUCKET_BYTES) -> StepTiming:
    """One step of ``ops`` (any order; dependency order is imposed here) on ``devices`` replicas.
    ``rest_grad_elements``: parameters outside the listed layers (embeddings, LayerNorms, biases),
    whose gradients are complete only at the end of backward."""
    dev = sim.device
    timed = [(op, sim.time(op, op_pattern(op, patterns))) for op in dependency_order(ops)]
    env = CountingEnvironment()
    link = Link(env, devices, dev.link_bandwidth or 1.0, dev.link_latency)
    sync = GradientSync(env, link, bucket_bytes, defer=dev.bsp)
    exposed = [0.0]

    def step():
        for op, t in timed:
            if op.phase == "optimizer":  # the update needs the reduced gradients
                start = env.now
                yield env.process(sync.finish(rest_grad_elements * dev.grad_bytes))
                exposed[0] = env.now - start
            yield env.timeout(t.duration)
            if op.phase == "bwd_weight" and op.kind == "linear" and op.layer:
                sync.produced(grad_elements(op) * dev.grad_bytes)

    env.process(step())
    env.run()
    return _summarise(env, timed, devices, dev, link, exposed[0])


def _summarise(env, timed, devices, dev, link, exposed_link) -> StepTiming:
    total = env.now
    out = StepTiming(time_s=total, energy=defaultdict(float), events=env.events)
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    by_layer: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    units: dict[str, float] = defaultdict(float)
    busy = {"compute": 0.0, "memory": 0.0}
    for op, t in timed:
        dyn = sum(t.energy.values()) * devices
        joules = dyn + dev.static_w * t.duration * devices
        for rec in (by_kind[op.kind], by_layer[layer_of(op)]):
            rec[0] += t.duration
            rec[1] += joules
        for part, j in t.energy.items():
            out.energy[part] += j * devices
        for u, s in t.units.items():
            units[u] += s
        busy["compute"] += t.compute_work
        busy["memory"] += t.memory_busy
        out.flops += t.flops
        out.paths[op.name] = t.path
    if exposed_link > 0:
        by_kind["allreduce"] = [exposed_link, dev.static_w * exposed_link * devices]
        by_layer["allreduce"] = list(by_kind["allreduce"])
    units["link"] = exposed_link
    units.setdefault("compute", 0.0)
    units.setdefault("memory", 0.0)
    units.setdefault("idle", 0.0)
    out.energy["static"] += dev.static_w * total * devices
    busy["link"] = link.log.work
    out.by_kind, out.by_layer, out.units, out.busy = dict(by_kind), dict(by_layer), dict(units), busy
    out.energy = dict(out.energy)
    out.link_bytes = link.bytes
    return out
