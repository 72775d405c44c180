"""Validation of a hardware-profile YAML mapping into :class:`~accelsim.hardware.profile.HardwareProfile`.

Every user mistake becomes a one-line :class:`UserError` naming the file, the dotted field path and what
was expected. Unknown keys are refused too: a typo such as ``bandwith`` must not silently fall back to
a default. Each number (and flag) that is read is recorded, so that the loader can check that every
figure has a ``sources`` entry or is listed under ``assumptions`` (prefixes cover whole sections).
"""
from __future__ import annotations

import math
import re
from typing import Any

from accelsim.errors import UserError
from accelsim.hardware import element_time
from accelsim.hardware.params import PATH_PARAMS, PathParam
from accelsim.hardware.quantities import parse_quantity
from accelsim.hardware.synthetic import KERNEL_BLOCK_SIZES

FORMAT_VERSION = 1
#: Magnitudes a quantity may have, in SI units (FLOP/s, B/s, B, s, J, W): beyond them a product of rates and
#: sizes overflows or underflows to inf/nan (a peak of 1e-300 FLOP/s printed 'nan s'); real devices sit far inside.
QUANTITY_RANGE = (1e-20, 1e24)
KINDS = ("cpu", "gpu", "fpga", "ipu", "wafer", "ideal")
DTYPE_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
ROLES = ("cache", "sram", "main", "external")
PATTERNS = ("dense", "unstructured", "2:4", "block", "vector", "conditional")
#: How a conditional (FFF) path spreads work over the units: by tokens (weights shared through caches) or by
#: tree nodes (weights distributed over the units' local memories, tokens sent to the node's owner).
PARTITIONS = ("tokens", "nodes")
MATMUL_PHASES = ("fwd", "bwd_input", "bwd_weight")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+-]*$")


class Reader:
    """Typed access to a nested mapping; remembers which leaves were read (for source coverage)."""

    def __init__(self, source: str):
        self.source = source
        self.leaves: list[str] = []

    def fail(self, field: str, message: str) -> UserError:
        # keys come from the user's file: escape control characters so the error stays one line
        if not field.isprintable():
            field = field.encode("unicode_escape").decode("ascii")
        return UserError(message, source=self.source, field=field)

    def mapping(self, value: Any, field: str, allowed: tuple[str, ...] | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(field, f"expected a mapping, got {_tname(value)}")
        for key in value:
            if not isinstance(key, str):
                raise self.fail(field, f"expected string keys, got {key!r}")
            if allowed is not None and key not in allowed:
                raise self.fail(_join(field, key), f"unknown key; expected one of {', '.join(allowed)}")
        return value

    def get(self, d: dict, key: str, field: str, required: bool = True) -> Any:
        if key not in d or d[key] is None:
            if required:
                raise self.fail(_join(field, key), "missing required field")
            return None
        return d[key]

    def string(self, d: dict, key: str, field: str, *, choices: tuple[str, ...] | None = None,
               required: bool = True, default: str = "") -> str:
        value = self.get(d, key, field, required)
        if value is None:
            return default
        where = _join(field, key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_tname(value)}")
        if choices is not None and value not in choices:
            raise self.fail(where, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def quantity(self, d: dict, key: str, field: str, dimension: str, *, positive: bool = True,
                 required: bool = True, default: float = 0.0) -> float:
        value = self.get(d, key, field, required)
        where = _join(field, key)
        if value is None:
            return default
        result = parse_quantity(value, dimension, source=self.source, field=where)
        if result < 0 or (positive and result == 0):
            raise self.fail(where, f"expected a {'positive' if positive else 'non-negative'} quantity, got {value!r}")
        if result != 0 and not QUANTITY_RANGE[0] <= result <= QUANTITY_RANGE[1]:
            raise self.fail(where, f"expected a magnitude in [{QUANTITY_RANGE[0]:g}, {QUANTITY_RANGE[1]:g}] "
                            f"(SI units), got {value!r}")
        self.leaves.append(where)
        return result

    def number(self, d: dict, key: str, field: str, *, lo: float, hi: float, lo_open: bool = False,
               required: bool = True, default: float = 0.0) -> float:
        """A dimensionless number in [lo, hi] (or (lo, hi]); fractions may be written '71 %'."""
        value = self.get(d, key, field, required)
        where = _join(field, key)
        if value is None:
            return default
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                value = float(value.strip()[:-1]) / 100.0
            except ValueError:
                raise self.fail(where, f"expected a number or a percentage, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(where, f"expected a dimensionless number, got {_tname(value)} {value!r}")
        if value > hi or value < lo or (lo_open and value == lo):
            bracket = "(" if lo_open else "["
            raise self.fail(where, f"expected a number in {bracket}{lo:g}, {hi:g}], got {value!r}")
        self.leaves.append(where)
        return float(value)

    def count(self, d: dict, key: str, field: str, *, minimum: int = 1, required: bool = True,
              default: int = 1) -> int:
        value = self.get(d, key, field, required)
        where = _join(field, key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > 10**12:
            raise self.fail(where, f"expected an integer count >= {minimum}, got {value!r}")
        self.leaves.append(where)
        return value

    def flag(self, d: dict, key: str, field: str) -> bool:
        value = self.get(d, key, field)
        where = _join(field, key)
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {value!r}")
        self.leaves.append(where)
        return value

    def strlist(self, d: dict, key: str, field: str, choices: tuple[str, ...], default: tuple[str, ...]) -> tuple:
        value = self.get(d, key, field, required=False)
        where = _join(field, key)
        if value is None:
            return default
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v in choices for v in value):
            raise self.fail(where, f"expected a non-empty list drawn from {', '.join(choices)}, got {value!r}")
        self.leaves.append(where)  # a restriction is a claim about the hardware: it needs provenance too
        return tuple(value)


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _tname(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _per_dtype(r: Reader, d: dict, key: str, field: str, dimension: str, positive: bool = True) -> dict[str, float]:
    where = _join(field, key)
    table = r.mapping(r.get(d, key, field), where, tuple(DTYPE_BYTES))
    if not table:
        raise r.fail(where, "expected at least one dtype entry")
    return {dt: r.quantity(table, dt, where, dimension, positive=positive) for dt in table}


def parse_profile(data: Any, source: str) -> dict[str, Any]:
    """Validate ``data`` (one YAML document) and return the keyword arguments of HardwareProfile."""
    from accelsim.hardware import profile as P  # dataclasses live there; imported late to avoid a cycle

    r = Reader(source)
    top = r.mapping(data, "", ("format", "name", "kind", "description", "dtype", "compute", "memory", "link",
                               "energy", "execution", "paths", "sources", "assumptions", "fitted"))
    version = r.get(top, "format", "")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise r.fail("format", f"expected {FORMAT_VERSION} (the profile format version), got {version!r}")
    name = r.string(top, "name", "")
    if not _NAME.match(name):
        raise r.fail("name", f"expected letters, digits and . _ : + - only, got {name!r}")
    kind = r.string(top, "kind", "", choices=KINDS)
    dtype = r.string(top, "dtype", "", choices=tuple(DTYPE_BYTES))
    compute = _compute(r, top, dtype)
    memory = _memory(r, top, kind)
    link = None
    if top.get("link") is not None:
        lk = r.mapping(top["link"], "link", ("bandwidth", "latency"))
        link = P.Link(bandwidth_Bps=r.quantity(lk, "bandwidth", "link", "bandwidth"),
                      latency_s=r.quantity(lk, "latency", "link", "time", positive=False))
    en = r.mapping(r.get(top, "energy", ""), "energy", ("compute", "static_power"))
    energy = P.Energy(pj_per_flop={k: v * 1e12 for k, v in _per_dtype(r, en, "compute", "energy",
                                                                     "energy_per_flop", False).items()},
                      static_power_w=r.quantity(en, "static_power", "energy", "power", positive=False))
    if dtype not in energy.pj_per_flop:
        raise r.fail("energy.compute", f"expected an entry for the profile dtype {dtype!r}")
    execution = _execution(r, top)
    paths = _paths(r, top, dtype, tuple(lv.name for lv in memory))
    sources, assumptions = _provenance(r, top)
    fitted = top.get("fitted")
    if fitted is not None:
        r.mapping(fitted, "fitted")
    _check_coverage(r, sources, assumptions)
    return dict(name=name, kind=kind, description=r.string(top, "description", ""), dtype=dtype,
                compute=compute, memory=memory, link=link, energy=energy, execution=execution, paths=paths,
                sources=sources, assumptions=assumptions, fitted=fitted, source_file=source)


def _compute(r: Reader, top: dict, dtype: str):
    from accelsim.hardware.profile import Compute

    c = r.mapping(r.get(top, "compute", ""), "compute", ("units", "unit_name", "clock", "peak", "vector"))
    peak = _per_dtype(r, c, "peak", "compute", "flop_rate")
    vector = _per_dtype(r, c, "vector", "compute", "flop_rate")
    for table, key in ((peak, "peak"), (vector, "vector")):
        if dtype not in table:
            raise r.fail(f"compute.{key}", f"expected an entry for the profile dtype {dtype!r}")
    return Compute(count=r.count(c, "units", "compute"), unit_name=r.string(c, "unit_name", "compute"),
                   clock_hz=r.quantity(c, "clock", "compute", "frequency", required=False),
                   peak_flops=peak, vector_flops=vector)


def _memory(r: Reader, top: dict, kind: str):
    from accelsim.hardware.profile import MemoryLevel

    raw = r.get(top, "memory", "")
    if not isinstance(raw, list):
        raise r.fail("memory", f"expected a list of memory levels (fastest first), got {_tname(raw)}")
    levels = []
    for i, item in enumerate(raw):
        item = r.mapping(item, f"memory[{i}]", ("name", "role", "capacity", "bandwidth", "energy"))
        name = r.string(item, "name", f"memory[{i}]")
        where = f"memory.{name}"
        if any(lv.name == name for lv in levels) or name == "exchange":
            raise r.fail(where, "duplicate or reserved memory level name")
        levels.append(MemoryLevel(
            name=name, role=r.string(item, "role", where, choices=ROLES),
            capacity_bytes=r.quantity(item, "capacity", where, "bytes"),
            bandwidth_Bps=r.quantity(item, "bandwidth", where, "bandwidth"),
            energy_pj_per_byte=r.quantity(item, "energy", where, "energy_per_byte", positive=False) * 1e12))
    mains = [lv for lv in levels if lv.role == "main"]
    if kind != "ideal" and len(mains) != 1:
        raise r.fail("memory", f"expected exactly one level with role 'main', got {len(mains)}")
    for a, b in zip(levels, levels[1:]):
        if b.bandwidth_Bps > a.bandwidth_Bps:
            raise r.fail(f"memory.{b.name}.bandwidth", f"levels must be listed fastest first, but it is "
                                                       f"faster than '{a.name}' above it")
    return tuple(levels)


def _execution(r: Reader, top: dict):
    from accelsim.hardware.profile import BSP, Execution

    ex = r.mapping(r.get(top, "execution", ""), "execution", ("overlap", "launch_overhead", "items_per_unit", "bsp",
                                                              "cold_activations"))
    bsp = None
    if ex.get("bsp") is not None:
        b = r.mapping(ex["bsp"], "execution.bsp", ("sync", "exchange_bandwidth", "exchange_energy",
                                                  "supersteps_per_op"))
        w = "execution.bsp"
        bsp = BSP(sync_s=r.quantity(b, "sync", w, "time", positive=False),
                  exchange_bandwidth_Bps=r.quantity(b, "exchange_bandwidth", w, "bandwidth"),
                  exchange_energy_pj_per_byte=r.quantity(b, "exchange_energy", w, "energy_per_byte",
                                                         positive=False) * 1e12,
                  supersteps_per_op=r.count(b, "supersteps_per_op", w))
    return Execution(overlap=r.flag(ex, "overlap", "execution"),
                     launch_overhead_s=r.quantity(ex, "launch_overhead", "execution", "time", positive=False),
                     items_per_unit=r.count(ex, "items_per_unit", "execution"), bsp=bsp,
                     cold_activations=r.flag(ex, "cold_activations", "execution") if "cold_activations" in ex else False)


#: keys of a path other than its numeric parameters (those: accelsim/hardware/params.py)
_PATH_SHAPE_KEYS = ("pattern", "description", "block_sizes", "phases", "dtypes", "partition", "private_levels",
                    "element_time")
_PATH_KEYS = _PATH_SHAPE_KEYS + tuple(PATH_PARAMS)
#: keys only a 'conditional' path may carry besides its PATH_PARAMS rows (accelsim/hardware/conditional.py)
_CONDITIONAL_KEYS = ("partition", "private_levels")


def _param(r: Reader, p: dict, where: str, param: PathParam):
    """One numeric path parameter as its table row says: a quantity with a unit, a count or a number."""
    if param.dimension == "count":
        return r.count(p, param.key, where, required=param.required, default=param.default)
    if param.dimension:
        return r.quantity(p, param.key, where, param.dimension, positive=param.positive, required=param.required,
                          default=param.default)
    return r.number(p, param.key, where, lo=param.lo, hi=param.hi, lo_open=param.lo_open, required=param.required,
                    default=param.default)


def _paths(r: Reader, top: dict, dtype: str, level_names: tuple[str, ...] = ()):
    from accelsim.hardware.profile import PathSpec

    raw = r.mapping(r.get(top, "paths", ""), "paths")
    specs = {}
    for name, p in raw.items():
        where = f"paths.{name}"
        if not _NAME.match(name):
            raise r.fail(where, "expected a path name of letters, digits and . _ : + -")
        p = r.mapping(p, where, _PATH_KEYS)
        pattern = r.string(p, "pattern", where, choices=PATTERNS)
        pf = r.get(p, "peak_fraction", where)
        if isinstance(pf, dict):
            r.mapping(pf, f"{where}.peak_fraction", tuple(DTYPE_BYTES))
            if not pf:
                raise r.fail(f"{where}.peak_fraction", "expected at least one dtype entry")
            pf_row = PATH_PARAMS["peak_fraction"]
            fractions = {k: r.number(pf, k, f"{where}.peak_fraction", lo=pf_row.lo, hi=pf_row.hi,
                                     lo_open=pf_row.lo_open) for k in pf}
        else:
            fractions = {"*": _param(r, p, where, PATH_PARAMS["peak_fraction"])}
        sizes: tuple[int, ...] = ()
        if pattern == "block":
            bs = r.get(p, "block_sizes", where)
            if not isinstance(bs, list) or not bs or not all(
                    isinstance(b, int) and not isinstance(b, bool) and b in KERNEL_BLOCK_SIZES for b in bs):
                raise r.fail(f"{where}.block_sizes",
                             f"expected a non-empty list drawn from {list(KERNEL_BLOCK_SIZES)}")
            sizes = tuple(bs)
            r.leaves.append(f"{where}.block_sizes")
        elif "block_sizes" in p:
            raise r.fail(f"{where}.block_sizes", "only valid for pattern 'block'")
        extra = _conditional_keys(r, p, where, level_names) if pattern == "conditional" else {}
        if "element_time" in p:
            if pattern != "vector":
                raise r.fail(f"{where}.element_time", "only valid for pattern 'vector'")
            extra["element_time_s"] = _element_time(r, p, where)
        for key in _CONDITIONAL_KEYS:
            if pattern != "conditional" and key in p:
                raise r.fail(f"{where}.{key}", "only valid for pattern 'conditional'")
        for key, param in PATH_PARAMS.items():  # a term of another kind of path would be dropped unread
            if param.patterns and pattern not in param.patterns and key in p:
                raise r.fail(f"{where}.{key}", f"only valid for pattern '{param.patterns[0]}'")
        numbers = {param.attr: _param(r, p, where, param) for key, param in PATH_PARAMS.items()
                   if key != "peak_fraction" and (not param.patterns or pattern in param.patterns)}
        specs[name] = PathSpec(
            name=name, pattern=pattern, description=r.string(p, "description", where, required=False),
            peak_fraction=fractions, **numbers,
            block_sizes=sizes, phases=r.strlist(p, "phases", where, MATMUL_PHASES, MATMUL_PHASES),
            dtypes=r.strlist(p, "dtypes", where, tuple(DTYPE_BYTES), ()), **extra)
    for needed in ("dense", "vector"):
        if not any(s.pattern == needed and (not s.dtypes or dtype in s.dtypes) for s in specs.values()):
            raise r.fail("paths", f"expected a path with pattern '{needed}' usable in the profile dtype {dtype!r}")
    for s in specs.values():
        if s.pattern == "dense" and "*" not in s.peak_fraction and dtype not in s.peak_fraction:
            raise r.fail(f"paths.{s.name}.peak_fraction", f"expected an entry for the profile dtype {dtype!r}")
    return specs


#: phases of an elementwise op's measured time (the workload's "bwd_input" op is "bwd")
ELEMENT_PHASES = ("fwd", "bwd")


def _element_time(r: Reader, p: dict, where: str) -> dict[str, dict]:
    """{role: {phase: seconds per element of the workload op, or a size table (accelsim.hardware.element_time)}}
    of a vector path (accelsim.workload roles)."""
    from accelsim.workload import ELEMENTWISE_OPS

    table = r.mapping(r.get(p, "element_time", where), f"{where}.element_time", tuple(ELEMENTWISE_OPS))
    out = {}
    for role, v in table.items():
        at = f"{where}.element_time.{role}"
        v = r.mapping(v, at, ELEMENT_PHASES)
        out[role] = {ph: element_time.parse(r, v[ph], f"{at}.{ph}") for ph in ELEMENT_PHASES if ph in v}
    return out


def _conditional_keys(r: Reader, p: dict, where: str, level_names: tuple[str, ...]) -> dict[str, Any]:
    """The conditional-matmul layout keys (docs/hardware-profiles.md, "Conditional matmul"); its numbers
    (level_latency, interleave) are rows of PATH_PARAMS."""
    out: dict[str, Any] = {}
    if p.get("partition") is not None:
        out["partition"] = r.string(p, "partition", where, choices=PARTITIONS)
        r.leaves.append(f"{where}.partition")  # a claim about how the hardware runs it: needs provenance
    if p.get("private_levels") is not None:
        out["private_levels"] = r.strlist(p, "private_levels", where, level_names, ())
    return out


def _provenance(r: Reader, top: dict) -> tuple[dict[str, str], dict[str, str]]:
    src = r.mapping(r.get(top, "sources", "", required=False) or {}, "sources")
    for key, text in src.items():
        if not isinstance(text, str) or not text.strip():
            raise r.fail(f"sources.{key}", "expected a citation string (datasheet, paper, measurement)")
    raw = r.get(top, "assumptions", "", required=False) or []
    if not isinstance(raw, list):
        raise r.fail("assumptions", "expected a list of field paths (optionally 'path: reason')")
    assumptions: dict[str, str] = {}
    for i, item in enumerate(raw):
        if isinstance(item, str) and item.strip():
            assumptions[item.strip()] = ""
        elif isinstance(item, dict) and len(item) == 1:
            (key, why), = item.items()
            if not isinstance(key, str) or not isinstance(why, str):
                raise r.fail(f"assumptions[{i}]", "expected 'field.path: reason' with string parts")
            assumptions[key] = why
        else:
            raise r.fail(f"assumptions[{i}]", "expected a field path or a one-entry 'path: reason' mapping")
    return dict(src), assumptions


def covers(key: str, leaf: str) -> bool:
    """A provenance key covers a leaf if it names it or one of its enclosing sections."""
    return leaf == key or leaf.startswith(key + ".")


def _check_coverage(r: Reader, sources: dict[str, str], assumptions: dict[str, str]) -> None:
    keys = list(sources) + list(assumptions)
    for leaf in r.leaves:
        if not any(covers(k, leaf) for k in keys):
            raise r.fail(leaf, "has no 'sources' entry and is not listed under 'assumptions' "
                               "(every hardware figure needs a citation or an explicit assumption)")
    for section, table in (("sources", sources), ("assumptions", assumptions)):
        for k in table:
            if not any(covers(k, leaf) for leaf in r.leaves):
                raise r.fail(f"{section}.{k}", "names no field of this profile")
