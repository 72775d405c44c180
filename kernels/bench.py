"""Sweep BERT-shaped sparse products over densities, patterns, ops and thread counts.

``run_bench(config)`` returns (and optionally writes) a measurements document::

    {"schema": SCHEMA, "machine": {...}, "config": {...}, "records": [...], "skipped": [...]}

One record per (shape, op, pattern, density, threads): every correct path is timed interleaved with
the dense torch baseline (:func:`kernels.registry.pick_fastest`); the record names the winner and
derives GFLOP/s, speedup vs dense and the fraction of the ideal 1/density speedup from medians.
``load_measurements(path)`` reads such a file back into the typed records of :mod:`kernels.records`
(the format, its version and its validation live there).
"""
from __future__ import annotations

import csv
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch

from accelsim.errors import UserError, expect
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.cases import OPS, PATTERNS, Case, nm_of, pattern_supports
from accelsim.kernels.fff_bench import FFFCase, iter_fff_cases, make_fff_record, pick_fastest_fff
from accelsim.kernels.fff_bench import parse_shape as parse_fff_shape
from accelsim.kernels.machine import _cpu_times, machine_info, wait_until_quiet
from accelsim.kernels.records import DENSE_PATH, SCHEMA, Measurements, read_measurements, record_ratios
from accelsim.kernels.registry import Choice, paths_for, pick_fastest

__all__ = ["DENSE_PATH", "SCHEMA", "BenchConfig", "load_measurements", "record_from_rounds", "record_ratios",
           "run_bench", "write_measurements"]

DENSITIES = (1.0, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02, 0.01)
#: d_in, d_out of a layer kind as a function of the hidden size (BERT: FFN is 4x hidden).
LAYERS: dict[str, Callable[[int], tuple[int, int]]] = {
    "ffn_in": lambda h: (h, 4 * h),
    "ffn_out": lambda h: (4 * h, h),
    "attn": lambda h: (h, h),
}


@dataclass
class BenchConfig:
    # Sequence 128 x batch 1 up to 512 x batch 32: the token counts of BERT pre-training steps.
    tokens: tuple[int, ...] = (128, 512, 2048, 8192, 16384)
    # bert-tiny (128) .. bert-large (1024); FFN layers are where sparse training saves most.
    hidden: tuple[int, ...] = (128, 256, 512, 768, 1024)
    layers: tuple[str, ...] = ("ffn_in", "ffn_out")
    densities: tuple[float, ...] = DENSITIES
    patterns: tuple[str, ...] = PATTERNS
    ops: tuple[str, ...] = OPS
    # FFF layers (UltraSparseBERT KxD: K trees of depth D) timed per (tokens, hidden) against the dense FF
    # of equal width (kernels.fff_bench); 1x11 is the paper's 4095-neuron layer, 1x7 the trainer's demo.
    fff: tuple[str, ...] = ("1x7", "1x11")
    threads: tuple[int, ...] = ()  # () = torch's current thread count
    dtype: str = "float32"  # CPU sparse BLAS is float32/float64 only
    device: str = "cpu"
    repeats: int = 5  # interleaved samples per path; the median is reported
    warmup: int = 1
    min_sample_s: float = 2e-3  # short calls are repeated for this long per sample (timer resolution)
    # Calls shorter than this get an untimed call before every sample: steady-state (warm-cache) times,
    # whatever path ran just before (kernels.timing.measure). Longer calls barely notice a cold start.
    warm_below_s: float = 0.05
    # The whole case list is measured this many times, one sweep after another, and each path's time is
    # the median over the rounds: on a shared VM the machine runs ~10 % slower for spells of seconds to
    # minutes (dense baselines of one shape vary by that much within one sweep, autocorrelated across
    # neighbouring cases), which no number of repeats inside one case can average out.
    rounds: int = 1
    # Time only these kernel paths (dense_torch always): () = every registered path. A calibration sweep
    # can skip paths that never win their family (e.g. MKL BSR against the C block kernel).
    paths: tuple[str, ...] = ()
    # Dense products above this many GFLOP are skipped: a 2-core CPU needs seconds per CSR call at
    # full density there, and the calibration gains little from them.
    max_dense_gflop: float = 25.0
    # Before each case wait (up to quiet_max_wait_s) until other processes use less than this share of
    # the CPUs; 0 disables. The share seen is stored in the record (busy_before). A case during which
    # others used more than this share anyway is measured again (up to quiet_retries times) and the
    # least disturbed attempt is kept (busy_during, attempts): on a shared 2-core machine one short
    # test run by someone else mid-case stalls every 2-thread OpenMP region by a scheduler slice.
    quiet_below: float = 0.0
    quiet_max_wait_s: float = 60.0
    quiet_retries: int = 2
    quiet_interval_s: float = 0.2  # how long the gate watches /proc/stat (100 Hz jiffies x 2 CPUs: 2.5 % steps)
    seed: int = 0

    @classmethod
    def quick(cls, **overrides) -> "BenchConfig":
        """A few small shapes; the whole sweep runs in well under a minute on 2 cores. All cores by default
        (torch's thread count), as the full sweep: `accelsim validate` / `calibrate` score a profile at its
        own core count, and a 1-thread quick file left them "no measurement points" (issue 18). On a busy
        shared machine, --threads 1 avoids 2-thread OpenMP regions waiting scheduler slices for a core."""
        base = dict(tokens=(128,), hidden=(64, 128), layers=("ffn_in",), repeats=3, min_sample_s=5e-4,
                    threads=(), fff=("1x5",))
        base.update(overrides)
        return cls(**base)

    def validate(self) -> None:
        for op in self.ops:
            expect(op in OPS, f"unknown op '{op}' (expected {', '.join(OPS)})", field="ops")
        for lay in self.layers:
            expect(lay in LAYERS, f"unknown layer kind '{lay}' (expected {', '.join(LAYERS)})", field="layers")
        for d in self.densities:
            expect(0.0 < d <= 1.0, f"density {d} outside (0, 1]", field="densities")
        for p in self.patterns:
            expect(nm_of(p) is not None or pattern_supports(p, 1.0) is None,
                   f"unknown pattern '{p}' (expected unstructured, N:M or block<b>)", field="patterns")
        for shape in self.fff:
            parse_fff_shape(shape)
        expect(all(t > 0 for t in self.threads), "thread counts must be positive", field="threads")
        expect(self.repeats >= 1, "repeats must be >= 1", field="repeats")
        expect(self.rounds >= 1, "rounds must be >= 1", field="rounds")
        expect(self.quiet_retries >= 0 and self.quiet_interval_s > 0,
               "quiet_retries must be >= 0 and quiet_interval_s > 0", field="quiet_retries")
        expect(all(t > 0 for t in self.tokens) and all(h > 0 for h in self.hidden),
               "tokens and hidden sizes must be positive", field="tokens")


def iter_cases(cfg: BenchConfig):
    """(case, None) for each case to run, (case description, reason) for each one skipped."""
    for tokens in cfg.tokens:
        for h in cfg.hidden:
            for layer in cfg.layers:
                d_in, d_out = LAYERS[layer](h)
                for op in cfg.ops:
                    for pattern in cfg.patterns:
                        for density in cfg.densities:
                            desc = dict(op=op, layer=layer, tokens=tokens, d_in=d_in, d_out=d_out,
                                        pattern=pattern, density=density)
                            if pattern_supports(pattern, density):
                                continue  # e.g. 2:4 at any density but 0.5: not a case at all
                            if 2.0 * tokens * d_in * d_out / 1e9 > cfg.max_dense_gflop:
                                yield desc, f"dense product above max_dense_gflop={cfg.max_dense_gflop}"
                                continue
                            try:
                                case = Case(op, tokens, d_in, d_out, density, pattern, cfg.dtype, cfg.seed)
                            except UserError as err:
                                yield desc, str(err)
                                continue
                            yield (layer, case), None
    yield from iter_fff_cases(cfg)


def make_record(layer: str, choice: Choice) -> dict:
    """One measurement record; all derived numbers come from the medians in ``choice.times``."""
    if isinstance(choice.case, FFFCase):
        return make_fff_record(choice)
    c = choice.case
    m, k, n = c.mkn
    winner = choice.winner
    t = choice.times[winner]
    dense = choice.dense_s
    dense_paths = {p.name for p in paths_for(c.op, c.pattern, choice.device) if p.dense}  # incl. fallbacks
    sparse = {p: s for p, s in choice.times.items() if p not in dense_paths}
    best_sparse = min(sparse, key=sparse.get) if sparse else None
    ideal = 1.0 / choice.density_actual
    speedup = dense / t
    return {
        "op": c.op, "layer": layer, "tokens": c.tokens, "d_in": c.d_in, "d_out": c.d_out,
        "m": m, "k": k, "n": n, "pattern": c.pattern, "density": c.density,
        "density_actual": choice.density_actual, "dtype": c.dtype, "device": choice.device,
        "threads": choice.threads, "path": winner, "median_s": t, "dense_s": dense,
        "flops_dense": c.flops_dense, "flops_effective": c.flops_dense * choice.density_actual,
        "gflops_dense_equiv": c.flops_dense / t / 1e9,
        "gflops_effective": c.flops_dense * choice.density_actual / t / 1e9,
        "speedup_vs_dense": speedup, "ideal_speedup": ideal, "fraction_of_ideal": speedup / ideal,
        "sparse_path": best_sparse, "sparse_s": sparse.get(best_sparse) if best_sparse else None,
        "sparse_speedup_vs_dense": dense / sparse[best_sparse] if best_sparse else None,
        "times": choice.times, "rejected": choice.rejected, "layouts": choice.layouts,
        "families": {p.name: p.family for p in paths_for(c.op, c.pattern, choice.device) if p.name in choice.times},
    }


def run_bench(config: BenchConfig | None = None, *, out: str | Path | None = None,
              progress: Callable[[int, int, dict], None] | None = None) -> dict:
    """Run the sweep; write JSON (+ CSV next to it) when ``out`` is given; return the document."""
    cfg = config or BenchConfig()
    cfg.validate()
    if cfg.device.startswith("cuda"):
        expect(torch.cuda.is_available(), "no CUDA device available for --device cuda", field="device")
    threads = cfg.threads or (torch.get_num_threads(),)
    # the trainer's allocator policy: a kernel's fresh output is not page-faulted in (else the fit learns the
    # faults as output_bandwidth, a cost training no longer pays; accelsim.kernels.host_memory)
    retain_freed_memory()
    planned = list(iter_cases(cfg))
    todo = [(th, layer, case) for th in threads for layer, case in (i for i, reason in planned if reason is None)]
    skipped = [dict(item, reason=reason) for item, reason in planned if reason is not None]
    rounds: list[list[tuple[Choice, dict]]] = [[] for _ in todo]
    total, done = len(todo) * cfg.rounds, 0
    saved_threads = torch.get_num_threads()
    try:
        for _ in range(cfg.rounds):  # whole sweeps one after another: a slow spell hits each case once at most
            for i, (th, layer, case) in enumerate(todo):
                rounds[i].append(_measure_case(cfg, case, th))
                done += 1
                if progress:
                    progress(done, total, make_record(layer, rounds[i][-1][0]) | rounds[i][-1][1])
    finally:
        torch.set_num_threads(saved_threads)
    records = [record_from_rounds(layer, rounds[i]) for i, (_, layer, _) in enumerate(todo)]
    doc = {"schema": SCHEMA, "machine": machine_info(cfg.device), "config": asdict(cfg),
           "records": records, "skipped": skipped}
    doc["machine"]["threads_measured"] = list(threads)
    Measurements.from_dict(doc, "kernels bench")  # what is written must read back
    if out is not None:
        write_measurements(doc, out)
    return doc


def round_ratios(rounds: list[tuple[Choice, dict]]) -> dict[str, list[float]]:
    """Each path's time over the dense baseline's time in the same round: the two were timed interleaved,
    seconds apart, so a slow spell of the shared machine (10-40 % for seconds to minutes) slows both and
    cancels in the ratio. Stored per round (``ratios_rounds``), so that merged files pool them correctly."""
    out: dict[str, list[float]] = {}
    for choice, _ in rounds:
        dense = choice.times.get(DENSE_PATH)
        if dense:
            for path, t in choice.times.items():
                if path != DENSE_PATH:
                    out.setdefault(path, []).append(t / dense)
    return out


def record_from_rounds(layer: str, rounds: list[tuple[Choice, dict]],
                       ratios: dict[str, list[float]] | None = None) -> dict:
    """One record from a case's rounds: each path's median over the rounds that timed it, and every round's
    time over the dense baseline's beside it (``ratios``: already paired, from merged files)."""
    first = rounds[0][0]
    paired = {"ratios_rounds": round_ratios(rounds) if ratios is None else ratios}
    if len(rounds) == 1:
        return make_record(layer, first) | rounds[0][1] | paired
    per_path: dict[str, list[float]] = {}
    rejected: dict[str, str] = {}
    for choice, _ in rounds:
        rejected.update(choice.rejected)
        for path, t in choice.times.items():
            per_path.setdefault(path, []).append(t)
    times = {p: statistics.median(ts) for p, ts in per_path.items()}
    combined = Choice(first.case, first.device, first.threads, times=times,
                      rejected={p: r for p, r in rejected.items() if p not in times}, layouts=first.layouts,
                      density_actual=first.density_actual)
    info = {k: [r[1][k] for r in rounds] for k in rounds[0][1]}
    return make_record(layer, combined) | info | {"times_rounds": per_path} | paired


def _measure_case(cfg: BenchConfig, case: Case, threads: int) -> tuple[Choice, dict]:
    """Time a case; with the quiet gate on, re-measured while other processes disturbed it.
    Returns the timings and what the gate saw (stored in the record)."""
    picker = pick_fastest_fff if isinstance(case, FFFCase) else pick_fastest

    def measure() -> Choice:
        return picker(case, device=cfg.device, threads=threads, repeats=cfg.repeats, warmup=cfg.warmup,
                            min_sample_s=cfg.min_sample_s, warm_below_s=cfg.warm_below_s, only=cfg.paths or None)

    if cfg.quiet_below <= 0:
        return measure(), {"busy_before": None}
    best = None
    for attempt in range(1, cfg.quiet_retries + 2):
        busy = wait_until_quiet(cfg.quiet_below, cfg.quiet_max_wait_s, cfg.quiet_interval_s)
        with OthersLoad() as load:
            choice = measure()
        if best is None or load.share < best[2]:
            best = (choice, busy, load.share)
        if load.share < cfg.quiet_below:
            break
    return best[0], {"busy_before": best[1], "busy_during": best[2], "attempts": attempt}


class OthersLoad:
    """Share of all CPUs that *other* processes used while the block ran: busy time from /proc/stat
    minus this process's own CPU time (its OpenMP/MKL threads included). 0 where /proc is absent."""

    share: float = 0.0

    def __enter__(self) -> "OthersLoad":
        self._a, self._p = _cpu_times(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        b, p = _cpu_times(), time.process_time()
        if self._a is None or b is None or b[0] <= self._a[0]:
            return
        total = b[0] - self._a[0]  # jiffies over all CPUs
        busy = total - (b[1] - self._a[1])
        own = (p - self._p) * os.sysconf("SC_CLK_TCK")
        self.share = min(max((busy - own) / total, 0.0), 1.0)


CSV_COLUMNS = ("op", "layer", "m", "k", "n", "pattern", "density", "density_actual", "dtype", "threads",
               "path", "median_s", "dense_s", "gflops_dense_equiv", "gflops_effective", "speedup_vs_dense",
               "fraction_of_ideal", "sparse_path", "sparse_s", "sparse_speedup_vs_dense", "trees", "depth")


def write_measurements(doc: dict, out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    csv_path = out.with_suffix(".csv")
    with csv_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(doc["records"])
    return out, csv_path


# ---- reading measurements back: the typed records of kernels.records ------------------------------

def load_measurements(path: str | Path) -> dict:
    """Read and validate a measurements JSON written by :func:`run_bench`: the plain JSON document, for
    callers that serialise or edit it. Typed access: :func:`kernels.records.read_measurements`."""
    return read_measurements(path).to_dict()

