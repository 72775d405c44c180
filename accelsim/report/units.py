"""Human units for every number a report shows: one formatter per quantity, 3 significant figures.

Why one module: the report used to print raw seconds from 0.0005 to 32 next to ``simulate``'s "461 us";
every table, chart label and verdict line now goes through these functions, so a time always reads
like "461 µs" or "32.5 s" and an energy like "13.7 J" or "4.2 kJ". The exact values stay in report.json.
"""
from __future__ import annotations

import math

_TIME = ((3600.0, "h"), (60.0, "min"), (1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))
_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"),
       (1e-9, "n"), (1e-12, "p"))

MISSING = "–"
#: 999.7 ms rounds to 3 figures as 1000 ms: values that round up to the next unit are shown in it (1.00 s)
_ROUNDS_UP = 0.9995
#: between a number and its unit: a no-break space, so a wrapped table cell never splits "22.6 | GFLOP"
SP = "\u00a0"


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def sig3(x: float) -> str:
    """3 significant figures without exponent notation in the usual range (12.3, 0.456, 1,230)."""
    if x == 0:
        return "0"
    x = float(f"{x:.3g}")  # round first: 0.9997 is 1.00, not 1.000
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    digits = max(0, 2 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def fmt_time(s: float | None) -> str:
    """Seconds in the largest unit that keeps the number >= 1 (µs .. h)."""
    if _missing(s):
        return MISSING
    for scale, unit in _TIME:
        if abs(s) >= scale * _ROUNDS_UP or scale == _TIME[-1][0]:
            return f"{sig3(s / scale)}{SP}{unit}"
    return f"{sig3(s)}{SP}s"


def _si(x: float | None, unit: str) -> str:
    if _missing(x):
        return MISSING
    if x == 0:
        return f"0{SP}{unit}"
    for scale, prefix in _SI:
        if abs(x) >= scale * _ROUNDS_UP or scale == _SI[-1][0]:
            return f"{sig3(x / scale)}{SP}{prefix}{unit}"
    return f"{sig3(x)}{SP}{unit}"


def fmt_energy(j: float | None) -> str:
    return _si(j, "J")


def fmt_flops(f: float | None) -> str:
    """A count of floating-point operations (not a rate)."""
    return _si(f, "FLOP")


def fmt_ratio(x: float | None) -> str:
    """A speedup or any "times as much": 1.18×."""
    return MISSING if _missing(x) else f"{sig3(x)}×"


def fmt_share(x: float | None) -> str:
    """A fraction as a percentage: 76.4 %."""
    return MISSING if _missing(x) else f"{100 * x:.1f}{SP}%"


_PARSE = {**{u: s for s, u in _TIME}, **{f"{p}J": s for s, p in _SI}, **{f"{p}FLOP": s for s, p in _SI}}


def parse_quantity(text: str) -> float:
    """The inverse of the formatters (for tests and readers of report.md): '461 µs' -> 4.61e-4."""
    text = text.strip().replace(",", "").replace(SP, " ")
    if text.endswith("×"):
        return float(text[:-1])
    if text.endswith("%"):
        return float(text[:-1]) / 100
    num, _, unit = text.partition(" ")
    return float(num) * _PARSE[unit] if unit else float(num)


def time_axis(axis) -> None:
    """Tick labels of a matplotlib seconds axis in the same human units as the tables."""
    from matplotlib.ticker import FuncFormatter

    axis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt_time(v) if v > 0 else "0"))
