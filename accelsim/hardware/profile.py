"""Hardware profiles: pure data loaded from ``hwconfigs/<name>.yaml`` (format in docs/hardware-profiles.md).

Values are held in SI units (FLOP/s, B/s, bytes, seconds, W) except energies, kept in pJ as their names
say. A profile is immutable; calibration derives a new one with :func:`with_params` and writes it with
:func:`profile_to_yaml` (which records the ``fitted`` provenance block).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from accelsim.errors import UserError
from accelsim.hardware import element_time
from accelsim.hardware.params import PATH_PARAMS, fittable
from accelsim.hardware.schema import DTYPE_BYTES, FORMAT_VERSION, parse_profile
from accelsim.hardware import strict_yaml
from accelsim.hardware.quantities import format_quantity


@dataclass(frozen=True)
class Compute:
    count: int  # parallel compute units the engine schedules work items on (cores, SMs, tiles, PE groups)
    unit_name: str
    peak_flops: dict[str, float]  # matrix-engine peak per dtype, FLOP/s for the whole device
    vector_flops: dict[str, float]  # elementwise throughput per dtype, FLOP/s
    clock_hz: float = 0.0  # informational; 0 when not given


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    role: str  # cache (hardware managed) | sram (software managed, can hold resident state) | main | external
    capacity_bytes: float
    bandwidth_Bps: float
    energy_pj_per_byte: float


@dataclass(frozen=True)
class Link:
    bandwidth_Bps: float  # per device and direction, for ring all-reduce
    latency_s: float


@dataclass(frozen=True)
class Energy:
    pj_per_flop: dict[str, float]
    static_power_w: float


@dataclass(frozen=True)
class BSP:
    """Bulk-synchronous execution (IPU): compute, then sync, then exchange, never overlapped."""

    sync_s: float
    exchange_bandwidth_Bps: float
    exchange_energy_pj_per_byte: float
    supersteps_per_op: int


@dataclass(frozen=True)
class Execution:
    overlap: bool  # transfers overlap compute (roofline max) or not (sum)
    launch_overhead_s: float  # per op (kernel launch, thread fork, program step)
    items_per_unit: int  # work items per compute unit: 1 = static partition, >1 = dynamic scheduling
    bsp: BSP | None = None
    # the profile's op times were measured in hot loops (operands in cache): in a training step every op's
    # activations stream from main memory as well, paid on top (accelsim.hardware.cost, "cold activations")
    cold_activations: bool = False


_P = PATH_PARAMS  # the numeric parameters' defaults, units, ranges and meaning: accelsim/hardware/params.py


@dataclass(frozen=True)
class PathSpec:
    """One way to execute a product, with the few fittable efficiency parameters of docs/hardware-profiles.md.
    The numeric parameters (and what each means) are declared once in :data:`~accelsim.hardware.params.PATH_PARAMS`;
    their defaults come from there."""

    name: str
    pattern: str  # dense | unstructured | 2:4 | block | vector | conditional
    peak_fraction: dict[str, float]  # e_max per dtype; key "*" applies to every dtype
    d_half: float = _P["d_half"].default
    exponent: float = _P["exponent"].default
    overhead_s: float = _P["overhead"].default
    dispatch_overhead_s: float = _P["dispatch_overhead"].default  # eager host time per call: max(device, this)
    relayout_overhead_s: float = _P["relayout_overhead"].default  # operand in a foreign layout: added per call
    decode_s_per_nnz: float = _P["decode_per_nnz"].default
    index_bytes_per_nnz: float = _P["index_bytes_per_nnz"].default
    output_bandwidth_Bps: float = _P["output_bandwidth"].default
    output_free_bytes: float = _P["output_free_bytes"].default
    input_bandwidth_Bps: float = _P["input_bandwidth"].default
    spill_bytes: float = _P["spill_bytes"].default
    chunk_bytes: float = _P["chunk_bytes"].default
    group_bytes: float = _P["group_bytes"].default
    reread_bandwidth_Bps: float = _P["reread_bandwidth"].default
    block_reread_bandwidth_Bps: float = _P["block_reread_bandwidth"].default
    scatter_penalty: float = _P["scatter_penalty"].default
    unaligned_penalty: float = _P["unaligned_penalty"].default
    aliased_penalty: float = _P["aliased_penalty"].default
    tail_penalty: float = _P["tail_penalty"].default
    row_multiple: int = _P["row_multiple"].default  # pad X's rows (tokens) to a multiple: small-m 2:4 kernels
    block_sizes: tuple[int, ...] = ()
    phases: tuple[str, ...] = ("fwd", "bwd_input", "bwd_weight")
    dtypes: tuple[str, ...] = ()  # empty: every dtype the device has a peak for
    description: str = ""
    # conditional (FFF) paths only, see accelsim/hardware/conditional.py:
    level_latency_s: float = _P["level_latency"].default
    interleave: int = _P["interleave"].default
    partition: str = "tokens"  # tokens: units split the tokens | nodes: units own tree nodes (weight-stationary)
    private_levels: tuple[str, ...] = ()  # cache levels whose capacity is per unit (each holds its own hot rows)
    # vector paths only: measured seconds per element of a workload elementwise op, {role: {"fwd"|"bwd": s}},
    # replacing the FLOP-rate estimate for that role and phase (dropout's RNG, the vocabulary log-softmax
    # cost far more per element than their FLOPs say); s may be a size table (accelsim.hardware.element_time)
    element_time_s: dict = field(default_factory=dict)

    def fraction(self, dtype: str) -> float | None:
        return self.peak_fraction.get(dtype, self.peak_fraction.get("*"))

    def element_seconds(self, role: str, phase: str, elements: float) -> float | None:
        """Measured seconds per element of an op of ``elements`` elements in ``role`` and ``phase`` (a size table
        read at that size), or None where the profile has no time for them."""
        value = self.element_time_s.get(role, {}).get(phase)
        return None if value is None else element_time.per_element(value, elements)


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    kind: str
    description: str
    dtype: str
    compute: Compute
    memory: tuple[MemoryLevel, ...]
    energy: Energy
    execution: Execution
    paths: dict[str, PathSpec]
    link: Link | None = None
    sources: dict[str, str] = field(default_factory=dict)
    assumptions: dict[str, str] = field(default_factory=dict)  # field path -> reason ("" when none given)
    fitted: dict[str, Any] | None = None
    source_file: str = ""

    def level(self, role: str) -> MemoryLevel | None:
        """The slowest level with ``role`` (e.g. the largest cache), or None."""
        found = [lv for lv in self.memory if lv.role == role]
        return found[-1] if found else None

    def dtype_bytes(self, dtype: str | None = None) -> int:
        return DTYPE_BYTES[dtype or self.dtype]


def _package_dir():
    return resources.files("accelsim.hwconfigs")


#: old bundled names that still load (experiments and scripts written before a rename): old -> current
#: ``cpu-local`` read as "my CPU" to newcomers, but it was one Zen 3 guest's calibration; a profile of the
#: machine at hand comes from ``accelsim hw calibrate-local``
ALIASES = {"cpu-local": "cpu-zen3"}


def list_profiles() -> list[str]:
    """Names of the bundled profiles."""
    return sorted(p.name[:-5] for p in _package_dir().iterdir() if p.name.endswith(".yaml"))


def load_profile(name_or_path: str | Path | HardwareProfile) -> HardwareProfile:
    """A bundled profile by name, or a YAML file by path, fully validated."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)):
        raise UserError(f"expected a profile name or a path, got {type(name_or_path).__name__}")
    text_name = str(name_or_path)
    if isinstance(name_or_path, str) and text_name in ALIASES:
        text_name = ALIASES[text_name]
    if isinstance(name_or_path, str) and text_name in list_profiles():
        return _load_bundled(text_name)
    path = Path(name_or_path)
    if not path.exists():
        hint = "" if path.suffix else f"; bundled profiles: {', '.join(list_profiles())}"
        raise UserError(f"no such hardware profile{hint}", source=text_name)
    if not path.is_file():
        raise UserError("not a file", source=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read the file ({err.__class__.__name__})", source=path) from None
    return load_profile_text(text, source=str(path))


@lru_cache(maxsize=None)
def _load_bundled(name: str) -> HardwareProfile:
    # cached: calibration loops call kernel_time("cpu-zen3", ...) thousands of times; profiles are immutable
    res = _package_dir() / f"{name}.yaml"
    return load_profile_text(res.read_text(encoding="utf-8"), source=f"hwconfigs/{name}.yaml")


def load_profile_text(text: str, source: str = "<string>") -> HardwareProfile:
    try:
        data = strict_yaml.load(text, source)  # safe_load, refusing duplicated keys
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"not valid YAML{where}", source=source) from None
    except (RecursionError, ValueError, OverflowError) as err:  # pathological documents
        raise UserError(f"not a loadable YAML document ({err.__class__.__name__})", source=source) from None
    return HardwareProfile(**parse_profile(data, source))


# ---------------------------------------------------------------------------------------------------
# Writing profiles back (calibration) and the named fittable parameters


def profile_to_dict(profile: HardwareProfile) -> dict[str, Any]:
    """The YAML mapping of ``profile`` with explicit units (loads back to an equal profile)."""
    q = format_quantity
    p = profile
    data: dict[str, Any] = {"format": FORMAT_VERSION, "name": p.name, "kind": p.kind, "description": p.description,
                            "dtype": p.dtype}
    comp = {"units": p.compute.count, "unit_name": p.compute.unit_name}
    if p.compute.clock_hz:
        comp["clock"] = q(p.compute.clock_hz, "frequency")
    comp["peak"] = {k: q(v, "flop_rate") for k, v in p.compute.peak_flops.items()}
    comp["vector"] = {k: q(v, "flop_rate") for k, v in p.compute.vector_flops.items()}
    data["compute"] = comp
    data["memory"] = [{"name": lv.name, "role": lv.role, "capacity": q(lv.capacity_bytes, "bytes"),
                       "bandwidth": q(lv.bandwidth_Bps, "bandwidth"),
                       "energy": q(lv.energy_pj_per_byte * 1e-12, "energy_per_byte")} for lv in p.memory]
    if p.link is not None:
        data["link"] = {"bandwidth": q(p.link.bandwidth_Bps, "bandwidth"), "latency": q(p.link.latency_s, "time")}
    data["energy"] = {"compute": {k: q(v * 1e-12, "energy_per_flop") for k, v in p.energy.pj_per_flop.items()},
                      "static_power": q(p.energy.static_power_w, "power")}
    ex: dict[str, Any] = {"overlap": p.execution.overlap,
                          "launch_overhead": q(p.execution.launch_overhead_s, "time"),
                          "items_per_unit": p.execution.items_per_unit}
    if p.execution.cold_activations:
        ex["cold_activations"] = True
    if p.execution.bsp is not None:
        b = p.execution.bsp
        ex["bsp"] = {"sync": q(b.sync_s, "time"), "exchange_bandwidth": q(b.exchange_bandwidth_Bps, "bandwidth"),
                     "exchange_energy": q(b.exchange_energy_pj_per_byte * 1e-12, "energy_per_byte"),
                     "supersteps_per_op": b.supersteps_per_op}
    data["execution"] = ex
    data["paths"] = {name: _path_dict(s) for name, s in p.paths.items()}
    data["sources"] = dict(p.sources)
    data["assumptions"] = [{k: v} if v else k for k, v in p.assumptions.items()]
    if p.fitted is not None:
        data["fitted"] = p.fitted
    return data


def _path_dict(s: PathSpec) -> dict[str, Any]:
    d: dict[str, Any] = {"pattern": s.pattern}
    if s.description:
        d["description"] = s.description
    d["peak_fraction"] = s.peak_fraction["*"] if list(s.peak_fraction) == ["*"] else dict(s.peak_fraction)
    # defaults are left out so that they need no provenance entry (see schema._check_coverage)
    for param in PATH_PARAMS.values():
        value = getattr(s, param.attr)
        if param.key != "peak_fraction" and value != param.default and (not param.patterns or s.pattern in
                                                                          param.patterns):
            d[param.key] = value if param.dimension in ("", "count") else format_quantity(value, param.dimension)
    if s.block_sizes:
        d["block_sizes"] = list(s.block_sizes)
    if tuple(s.phases) != ("fwd", "bwd_input", "bwd_weight"):
        d["phases"] = list(s.phases)
    if s.dtypes:
        d["dtypes"] = list(s.dtypes)
    if s.pattern == "conditional":
        if s.partition != "tokens":
            d["partition"] = s.partition
        if s.private_levels:
            d["private_levels"] = list(s.private_levels)
    if s.element_time_s:
        d["element_time"] = {role: {ph: element_time.to_yaml(t) for ph, t in phases.items()}
                             for role, phases in s.element_time_s.items()}
    return d


def profile_to_yaml(profile: HardwareProfile, extra: dict | None = None) -> str:
    """YAML text of ``profile``; ``extra`` (e.g. ``{"fitted": {...}}``) is merged at the top level."""
    data = profile_to_dict(profile)
    if extra:
        data.update(extra)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def fittable_params(profile: HardwareProfile) -> dict[str, float]:
    """Current values of the efficiency parameters, keyed 'paths.<path>.<param>[.<dtype>]' (times in s)."""
    out: dict[str, float] = {}
    for name, s in profile.paths.items():
        for param in fittable().values():
            if param.key == "peak_fraction":
                for dt, v in s.peak_fraction.items():
                    out[f"paths.{name}.peak_fraction" + ("" if dt == "*" else f".{dt}")] = v
            else:
                out[f"paths.{name}.{param.key}"] = getattr(s, param.attr)
    return out


def param_bounds(key: str) -> tuple[float, float]:
    """(lower, upper) bounds of a fittable parameter key, for scipy.optimize."""
    parts = key.split(".")
    param = PATH_PARAMS.get(parts[2]) if len(parts) >= 3 else None
    if param is None or not param.fittable:
        raise UserError(f"unknown fittable parameter {key!r}; see fittable_params()")
    return param.fit_bounds


def with_params(profile: HardwareProfile, updates: dict[str, float], source: str | None = None) -> HardwareProfile:
    """A copy of ``profile`` with fittable parameters replaced (keys as in :func:`fittable_params`).

    ``source`` (e.g. "fitted to kernels/bench_spmm.py timings, issue #7") becomes the ``sources`` entry of
    every updated key, so the written profile says where the new numbers come from.
    """
    paths = dict(profile.paths)
    for key, value in updates.items():
        parts = key.split(".")
        if len(parts) not in (3, 4) or parts[0] != "paths" or parts[1] not in paths \
                or parts[2] not in fittable():
            raise UserError(f"unknown fittable parameter {key!r}; see fittable_params()")
        lo, hi = param_bounds(key)
        if not (lo <= float(value) <= hi) or (PATH_PARAMS[parts[2]].lo_open and value <= 0):
            raise UserError(f"parameter {key!r} = {value!r} outside its range [{lo:g}, {hi:g}]")
        spec = paths[parts[1]]
        if parts[2] == "peak_fraction":
            fr = dict(spec.peak_fraction)
            dt = parts[3] if len(parts) == 4 else "*"
            if dt not in fr:
                raise UserError(f"path {parts[1]!r} has no peak_fraction entry for {dt!r}")
            fr[dt] = float(value)
            spec = dataclasses.replace(spec, peak_fraction=fr)
        else:
            spec = dataclasses.replace(spec, **{PATH_PARAMS[parts[2]].attr: float(value)})
        paths[parts[1]] = spec
    sources = dict(profile.sources)
    if source:
        for key in updates:
            sources[key] = source
    return dataclasses.replace(profile, paths=paths, sources=sources)
