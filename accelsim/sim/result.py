"""The result of simulating one trace on one hardware profile, and how it is stored next to the run.

``<run>/sim/<hw>.json`` holds everything but the per-step timeline, which goes to
``<run>/sim/<hw>-timeline.parquet`` (step, time_s, energy_j, epoch). Runs on N > 1 devices are
stored as ``<hw>-x<N>`` so they never overwrite the single-device result.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: Trailing window (steps) of the moving average applied to the loss before looking for the target,
#: so one lucky batch does not count as reaching it.
LOSS_SMOOTHING_STEPS = 100


@dataclass
class SimResult:
    hardware: str
    kind: str
    devices: int
    run: str
    method: str
    synthetic: bool
    steps: int
    epochs: int  # distinct pattern epochs simulated
    time_s: float
    energy_j: float
    dense_time_s: float  # the same steps as the dense baseline, same hardware and devices
    dense_energy_j: float
    speedup: float  # dense_time_s / time_s (> 1: sparse training is faster)
    energy_ratio: float  # energy_j / dense_energy_j (< 1: sparse training saves energy)
    by_kind: dict[str, dict[str, float]]  # op kind -> {time_s, energy_j}; includes exposed "allreduce"
    by_layer: dict[str, dict[str, float]]
    by_unit: dict[str, float]  # compute / memory / link / idle seconds, exclusive, summing to time_s
    energy_parts: dict[str, float]  # compute / memory:<level> / static ..., summing to energy_j
    utilisation: dict[str, float]  # compute (engine busy), memory, link busy fractions; flops = achieved/peak
    flops_executed: float  # per device, whole run
    flops_trace: float  # the FLOPs the trace says the method needs (all phases), whole run
    target_loss: float | None
    time_to_target_s: float | None  # None if the smoothed loss never reaches target_loss
    step_at_target: int | None
    paths: dict[str, list[str]]  # op name -> execution paths the cost model chose
    sim_wall_s: float = 0.0
    events: int = 0  # simpy events processed
    timeline: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.hardware if self.devices == 1 else f"{self.hardware}-x{self.devices}"

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timeline"}
        return _finite(json.loads(json.dumps(d, default=_jsonable)))  # plain types; NaN -> null

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def save(self, run_dir: str | Path | None = None) -> tuple[Path, Path]:
        """Write ``sim/<hw>.json`` and ``sim/<hw>-timeline.parquet`` under the run directory."""
        d = Path(run_dir if run_dir is not None else self.run) / "sim"
        d.mkdir(parents=True, exist_ok=True)
        js, tl = d / f"{self.name}.json", d / f"{self.name}-timeline.parquet"
        tmp = d / f".{js.name}.tmp"
        tmp.write_text(self.to_json())
        os.replace(tmp, js)
        table = pa.table({k: pa.array(v) for k, v in self.timeline.items()})
        tmp = d / f".{tl.name}.tmp"
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, tl)
        return js, tl


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


def smoothed_loss(loss: np.ndarray, window: int = LOSS_SMOOTHING_STEPS) -> np.ndarray:
    """Trailing mean over ``window`` steps (fewer at the start); NaN losses are skipped."""
    ok = np.isfinite(loss)
    vals = np.where(ok, loss, 0.0)
    csum = np.concatenate([[0.0], np.cumsum(vals)])
    cnt = np.concatenate([[0], np.cumsum(ok)])
    hi = np.arange(1, len(loss) + 1)
    lo = np.maximum(hi - window, 0)
    n = cnt[hi] - cnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (csum[hi] - csum[lo]) / np.maximum(n, 1), np.nan)


def time_to_target(loss: np.ndarray, cum_time: np.ndarray, steps: np.ndarray, target: float | None,
                   window: int = LOSS_SMOOTHING_STEPS) -> tuple[float | None, int | None]:
    """Simulated seconds until (and including) the first step whose smoothed loss is <= target."""
    if target is None or len(loss) == 0:
        return None, None
    hit = np.nonzero(smoothed_loss(loss, window) <= target)[0]
    if hit.size == 0:
        return None, None
    i = int(hit[0])
    return float(cum_time[i]), int(steps[i])
