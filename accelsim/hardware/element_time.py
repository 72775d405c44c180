"""A vector path's measured time per element of a workload op (``element_time``, docs/hardware-profiles.md).

Most roles cost the same per element at every size the simulator meets, so an entry is one time. Some need not:
a top-k's cost per element can change with the layer's size (caches, its fresh output buffers), so RigL's drop
and grow (``mask_select``) are timed at several sizes (Zen 5, 2 threads: 15-18 ns per weight from 16 K to 8 M
weights, benchmarks/results/zen5-f26m2/mask-update.json; without the trainer's allocator policy, which keeps
freed memory, 24-32 ns at 2.4-8.4 M weights: page faults on each call's fresh buffers). Such an entry is a
table of (elements of one op, seconds per element) measured at several sizes; an op between two sizes takes
the time interpolated on log(elements), one outside the table the nearest end's (no extrapolation: the
measured range is what the profile knows).
"""
from __future__ import annotations

import bisect
import math

from accelsim.hardware.quantities import format_quantity


def per_element(value, elements: float) -> float:
    """Seconds per element of an op of ``elements`` elements (``value``: seconds per element, or a size table
    ((elements, seconds per element), ...) with elements increasing)."""
    if not isinstance(value, tuple):
        return value
    sizes = [n for n, _ in value]
    if elements <= sizes[0]:
        return value[0][1]
    if elements >= sizes[-1]:
        return value[-1][1]
    i = bisect.bisect_right(sizes, elements)
    (n0, t0), (n1, t1) = value[i - 1], value[i]
    w = (math.log(elements) - math.log(n0)) / (math.log(n1) - math.log(n0))
    return t0 + w * (t1 - t0)


def scaled(value, factor: float):
    """``value`` with every time multiplied by ``factor``."""
    if isinstance(value, tuple):
        return tuple((n, t * factor) for n, t in value)
    return value * factor


def to_yaml(value, fmt=None):
    """The profile-file form: a quantity string, or a list of [elements, quantity] pairs."""
    fmt = fmt or (lambda t: format_quantity(t, "time"))
    if isinstance(value, tuple):
        return [[int(n), fmt(t)] for n, t in value]
    return fmt(value)


def from_rows(points) -> float | tuple:
    """A size table from [(elements, seconds per element), ...] (one point: a plain time)."""
    pts = tuple(sorted((int(n), float(t)) for n, t in points))
    return pts[0][1] if len(pts) == 1 else pts


def parse(r, value, where: str):
    """A schema Reader's parse of one phase's entry: a quantity, or a list of [elements, quantity] pairs."""
    if not isinstance(value, list):
        return _quantity(r, value, where)
    if len(value) < 2:
        raise r.fail(where, "expected a time, or a list of at least two [elements, time] pairs")
    pts = []
    for i, pair in enumerate(value):
        at = f"{where}[{i}]"
        if not (isinstance(pair, list) and len(pair) == 2):
            raise r.fail(at, f"expected an [elements, time] pair, got {pair!r}")
        n, t = pair
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise r.fail(at, f"expected a positive whole number of elements, got {n!r}")
        if pts and n <= pts[-1][0]:
            raise r.fail(at, f"expected elements increasing along the list, got {n} after {pts[-1][0]}")
        pts.append((n, _quantity(r, t, at)))
        r.leaves.pop()  # the table is one figure with one source: the phase's key, not each pair
    r.leaves.append(where)
    return tuple(pts)


def _quantity(r, value, where: str) -> float:
    # Reader.quantity reads a key of a mapping; the entry is the value itself
    field, _, key = where.rpartition(".")
    return r.quantity({key: value}, key, field, "time")
