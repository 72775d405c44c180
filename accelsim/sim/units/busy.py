"""When a unit was busy: a list of intervals, and attribution of elapsed time to units."""
from __future__ import annotations


class BusyLog:
    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        self.work = 0.0  # busy unit-seconds (a pool of k engines can log up to k per second)

    def add(self, start: float, end: float, units: float = 1.0) -> None:
        if end > start:
            self.intervals.append((start, end))
            self.work += (end - start) * units

    def add_parallel(self, start: float, durations, units: float = 1.0) -> None:
        """Engines that all start at ``start``, one per duration: their union is one interval, so it is
        logged as one (what ``attribute`` sees is the same as one ``add`` per engine)."""
        longest = max(durations, default=0.0)
        if longest > 0:
            self.intervals.append((start, start + longest))
            self.work += float(sum(durations)) * units

    def clear(self) -> None:
        self.intervals.clear()
        self.work = 0.0


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for s, e in sorted(intervals):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _length(intervals: list[tuple[float, float]]) -> float:
    return float(sum(e - s for s, e in intervals))


def attribute(total: float, logs: dict[str, BusyLog]) -> dict[str, float]:
    """Split ``total`` elapsed seconds over units in priority order (first listed wins where units
    overlap), plus ``idle`` where none worked. The parts sum to ``total``."""
    covered: list[tuple[float, float]] = []
    out = {}
    for name, log in logs.items():
        before = _length(_union(covered))
        covered = _union(covered + log.intervals)
        out[name] = _length(covered) - before
    out["idle"] = max(total - _length(covered), 0.0)
    return out


def busy_fraction(total: float, log: BusyLog) -> float:
    return _length(_union(log.intervals)) / total if total > 0 else 0.0
