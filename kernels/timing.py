"""Median wall time of several runners, measured interleaved.

Why not ``torch.utils.benchmark.Timer``: it times one statement at a time, so on a shared machine
the dense baseline and the sparse path would see different background load. Here every repeat
times each runner in rotating order, for at least ``min_sample_s`` each (timer resolution, launch
jitter), and the median over all timed calls is reported.
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Callable

import torch


#: the clock every sample reads: wall time, except inside :func:`thread_cpu_clock`
_clock = time.perf_counter


@contextmanager
def thread_cpu_clock():
    """Time samples by this thread's CPU time instead of wall time, for single-threaded sweeps on a shared
    machine: a thread descheduled mid-sample (at load 15 on 2 cores, most of the time) is not running the
    kernel, so its wait is not the kernel's time. Valid only where the work runs on the calling thread
    (1 torch/OpenMP/MKL thread, CPU device); ``accelsim hw calibrate-local --threads 1`` uses it."""
    global _clock
    saved, _clock = _clock, time.thread_time
    try:
        yield
    finally:
        _clock = saved


def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


def measure(runners: dict[str, Callable[[], object]], *, device: str = "cpu", warmup: int = 1,
            repeats: int = 5, min_sample_s: float = 2e-3, max_inner: int = 200,
            keep: tuple[str, ...] = (), slow_factor: float = 30.0,
            warm_below_s: float = 0.0) -> tuple[dict[str, float], dict[str, str]]:
    """Return ({name: median seconds per call}, {name: why it was dropped}).

    Runners whose first call took less than ``warm_below_s`` get one untimed call at the start of every
    sample, so that every timed call follows a call of the same runner: interleaved paths evict each
    other's operands, and a sample of only one or two calls would otherwise time a cold-cache start
    (measured: a 1 ms block-sparse call after MKL's CSR ran 60 % slower than in steady state).

    A runner whose first timed call is ``slow_factor`` times slower than the fastest one (and over
    50 ms) is dropped rather than repeated: it cannot win, and a sweep must finish.
    """
    sync = _sync(device)
    first: dict[str, float] = {}
    for name, run in runners.items():
        for _ in range(warmup):
            run()
        sync()
        t0 = _clock()
        run()
        sync()
        first[name] = _clock() - t0
    dropped = {}
    if first:
        best = min(first.values())
        for name, t in first.items():
            if name not in keep and t > 0.05 and t > slow_factor * best:
                dropped[name] = f"too slow: first call {t:.3g} s > {slow_factor:g}x the fastest ({best:.3g} s)"
    names = [n for n in runners if n not in dropped]
    if device.startswith("cuda"):  # launches are asynchronous: a fixed count between two syncs
        inner = {n: max(1, min(max_inner, math.ceil(min_sample_s / max(first[n], 1e-9)))) for n in names}
        sample = _sample_fixed
    else:  # the sample stops on elapsed time; max_inner only caps the count
        inner = {n: max_inner for n in names}
        sample = _sample_until
    samples: dict[str, list[float]] = {n: [] for n in names}
    for rep in range(max(repeats, 1)):
        order = names[rep % len(names):] + names[:rep % len(names)] if names else []
        for name in order:
            if first[name] < warm_below_s:
                runners[name]()
                sync()
            samples[name].extend(sample(runners[name], inner[name], min_sample_s, sync))
    return {n: _median(s) for n, s in samples.items()}, dropped


def _sample_until(run, max_calls: int, min_s: float, sync, batch_below_s: float = 2e-5) -> list[float]:
    """Per-call times over about ``min_s`` of calls. Each call is timed on its own (so the median
    shrugs off the multi-millisecond stalls a busy 2-core machine inflicts on some calls) unless
    calls are shorter than ``batch_below_s``, where timer overhead matters and calls are averaged.
    Stopping on elapsed time, not a count fixed in advance, bounds a sample on a slowed machine."""
    out: list[float] = []
    start = _clock()
    calls = 0
    while calls < max_calls:
        t0 = _clock()
        run()
        t1 = _clock()
        calls += 1
        out.append(t1 - t0)
        if t1 - start >= min_s:
            break
    if _median(out) < batch_below_s:  # too short to time one by one: one averaged sample instead
        return [(_clock() - start) / calls]
    return out


def _sample_fixed(run, calls: int, min_s: float, sync) -> list[float]:
    """GPU: a fixed number of asynchronous launches between two synchronisations."""
    sync()
    t0 = _clock()
    for _ in range(calls):
        run()
    sync()
    return [(_clock() - t0) / calls]


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else 0.5 * (s[mid - 1] + s[mid])
