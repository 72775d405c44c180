"""Physical quantities in hardware profiles: parse "312 TFLOP/s", "2039 GB/s", "40 MiB", "1.3 pJ/B".

Profiles are written by people copying numbers out of datasheets, where a silent factor of 1000 (GB vs
GiB, Gb/s vs GB/s, pJ vs nJ) is the most common mistake; so every dimensional field must carry its
unit and bare numbers are refused. A 60-line parser beats a dependency such as ``pint`` here: we need
a closed set of units, bit/byte case sensitivity ("Gb/s" is gigabits) and error messages that name
the profile field, which a general-purpose units library would not give us.
"""
from __future__ import annotations

import math
import re

from accelsim.errors import UserError

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
       "m": 1e-3, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "n": 1e-9, "p": 1e-12, "f": 1e-15}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}

#: dimension -> {base unit: factor to the SI base of that dimension}; bytes-based units accept binary prefixes.
DIMENSIONS: dict[str, dict[str, float]] = {
    "flop_rate": {"FLOP/s": 1.0, "FLOPS": 1.0, "FLOPs/s": 1.0},
    "bandwidth": {"B/s": 1.0, "b/s": 0.125, "bit/s": 0.125},
    "bytes": {"B": 1.0, "b": 0.125, "bit": 0.125},
    "time": {"s": 1.0, "sec": 1.0},
    "power": {"W": 1.0},
    "frequency": {"Hz": 1.0},
    "energy_per_byte": {"J/B": 1.0, "J/b": 8.0, "J/bit": 8.0},
    "energy_per_flop": {"J/FLOP": 1.0},
}
#: the unit written back when formatting, and shown in error messages as an example
CANONICAL = {"flop_rate": "FLOP/s", "bandwidth": "B/s", "bytes": "B", "time": "s", "power": "W",
             "frequency": "Hz", "energy_per_byte": "J/B", "energy_per_flop": "J/FLOP"}
EXAMPLES = {"flop_rate": "312 TFLOP/s", "bandwidth": "2039 GB/s", "bytes": "40 MiB", "time": "5 us",
            "power": "400 W", "frequency": "1.41 GHz", "energy_per_byte": "1.3 pJ/B",
            "energy_per_flop": "0.5 pJ/FLOP"}

_NUMBER = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(\S.*?)?\s*$")


def parse_quantity(value: object, dimension: str, *, source: str | None = None, field: str | None = None) -> float:
    """The SI value of ``value`` (e.g. "2039 GB/s" -> 2.039e12 B/s); UserError for bare numbers or wrong units."""
    units = DIMENSIONS[dimension]
    example = EXAMPLES[dimension]
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise UserError(f"expected a quantity with a unit such as '{example}', got the bare number {value!r}",
                        source=source, field=field)
    if not isinstance(value, str):
        raise UserError(f"expected a quantity string such as '{example}', got {type(value).__name__}",
                        source=source, field=field)
    match = _NUMBER.match(value)
    if not match or not match.group(2):
        raise UserError(f"expected '<number> <unit>' such as '{example}', got {value!r}", source=source, field=field)
    number, unit = float(match.group(1)), match.group(2).replace(" ", "")
    factor = _unit_factor(unit, units, binary=dimension in ("bytes", "bandwidth", "energy_per_byte"))
    if factor is None:
        known = ", ".join(units)
        raise UserError(f"unknown unit {unit!r} for a {dimension.replace('_', ' ')} (use a prefix with one of: "
                        f"{known}; e.g. '{example}')", source=source, field=field)
    result = number * factor
    if not math.isfinite(result):
        raise UserError(f"expected a finite quantity, got {value!r}", source=source, field=field)
    return result


def _unit_factor(unit: str, units: dict[str, float], *, binary: bool) -> float | None:
    # longest base first so that "b/s" does not shadow "B/s" and "FLOPS" beats "s"
    for base in sorted(units, key=len, reverse=True):
        if not unit.endswith(base):
            continue
        prefix = unit[: len(unit) - len(base)]
        if prefix in _SI:
            return _SI[prefix] * units[base]
        if binary and prefix in _BINARY:
            return _BINARY[prefix] * units[base]
    return None


#: dimensions written with sub-unit prefixes (5 us, 1.3 pJ/B); others stay in plain units below 1 (0.02 B)
_SUBUNIT = ("time", "power", "energy_per_byte", "energy_per_flop")


def format_quantity(value: float, dimension: str) -> str:
    """Inverse of :func:`parse_quantity` with an SI prefix (exact to 12 significant digits)."""
    unit = CANONICAL[dimension]
    if value == 0:
        return f"0 {unit}"
    if dimension == "bytes":  # capacities are binary (a "40 MiB" L2 reads back as 40 MiB, not 41.94304 MB)
        for prefix in ("Pi", "Ti", "Gi", "Mi", "Ki"):
            scaled = value / _BINARY[prefix]
            if abs(scaled) >= 1.0 and float(scaled * 1000).is_integer():
                return f"{scaled:.12g} {prefix}{unit}"
    if dimension not in _SUBUNIT and abs(value) < 1.0:
        return f"{value:.12g} {unit}"
    for prefix in ("E", "P", "T", "G", "M", "k", "", "m", "u", "n", "p", "f"):
        scaled = value / _SI[prefix]
        if abs(scaled) >= 1.0:
            return f"{scaled:.12g} {prefix}{unit}"
    return f"{value / _SI['f']:.12g} f{unit}"


def human(value: float, dimension: str, digits: int = 3) -> str:
    """Short display form, e.g. '2.04 TB/s' (binary prefixes for capacities)."""
    unit = CANONICAL[dimension]
    if dimension == "bytes" and value >= 1024:
        for prefix in ("Pi", "Ti", "Gi", "Mi", "Ki"):
            if value >= _BINARY[prefix]:
                return f"{value / _BINARY[prefix]:.{digits}g} {prefix}{unit}"
    if value == 0:
        return f"0 {unit}"
    for prefix in ("E", "P", "T", "G", "M", "k", "", "m", "u", "n", "p", "f"):
        if abs(value) >= _SI[prefix]:
            return f"{value / _SI[prefix]:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"
