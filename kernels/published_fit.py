"""Fit the sparse paths of a non-CPU profile to the published measurements, holding out whole sources.

Each sparse path of a profile is fitted to the dataset rows that name it (``Point.path``) with
``scipy.optimize.least_squares`` on the residuals log(predicted / published speedup) (soft-L1 loss, so one
odd build in an issue thread does not drag a path), through the same ``fittable_params`` / ``with_params``
parameter API as ``accelsim calibrate`` (accelsim.hardware.params.PATH_PARAMS), within this module's own,
narrower ranges (:data:`LOG_BOUNDS`, :data:`LIN_BOUNDS`). A path's parameters are fitted
only as far as its rows can tell them apart: one peak fraction per dtype that has rows (dtypes of
equal datasheet peak share one, :func:`tied_dtypes`); d_half and the
exponent only when the rows span several densities; the fixed per-call overhead (descriptor / plan set-up)
only when they span several sizes. The dense path is not refitted: its fractions carry datasheet or
measured sources, and a speedup only sees the sparse path relative to it.

Held-out error: leave-one-source-out. For every source with rows on the profile, every path is refitted
without that source and the source's rows are predicted; the pooled held-out errors are what the report
quotes. The stricter leave-one-author-group-out (``by_group``: publications by the same people,
:data:`~accelsim.kernels.published.AUTHOR_GROUPS`, leave together) says how a measurement from a group the
fit has never seen would be predicted. The profile written is the fit to all sources.

Paths the data shows exist but a profile lacks are added before fitting (:data:`NEW_PATHS`), starting
from the nearest existing path's parameters. The paths of one kernel at several block sizes (Triton's BSR on
the A100) are fitted as one law (:mod:`kernels.published_blocks`): a bandwidth per block size, compute
fractions from the dense path, and a block size no training row shows takes its nearest sibling's values.
PopSparse's paths on the IPU that no training row shows are fitted to what their fitted siblings predict
(:mod:`kernels.published_siblings`: between block sizes, and the dynamic / static ratio across modes). Rows
whose dense operand reached the op in the framework's layout (``dispatch = relayout``) fit the path's
per-call ``relayout_overhead``, and leave its efficiency curve to the other rows.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from accelsim.hardware import HardwareProfile, fittable_params, load_profile, with_params
from accelsim.kernels import published_blocks as blocks
from accelsim.kernels import published_siblings as siblings
from accelsim.kernels.published import BEST_TOKENS, Point, author_group, load_points
from accelsim.kernels.published_validate import Prediction, error_stats, predict

#: paths the published rows show exist, per profile: name -> (copy parameters from, changes, provenance)
NEW_PATHS: dict[str, dict[str, tuple[str, dict, str]]] = {
    # cuSPARSE's fp32 BSR and Triton's bsr_dense_mm are different kernels: at block 16 in fp32 Triton's is 1.7-2x
    # faster from 75 to 97 % sparsity (Quansight's figure 5 vs the PopSparse paper's GPU rows), so
    # bsr-fp32 is cuSPARSE's and each Triton block path carries its own fp32 fraction
    "gpu-a100": {"bsr-fp32": ("bsr", dict(
        description="cuSPARSE BSR SpMM in fp32 (CUDA cores), block 16", dtypes=("fp32",), block_sizes=(16,)),
        "the PopSparse paper's A100 rows show cuSPARSE's fp32 BSR (block 16) beating dense from ~85 % sparsity; "
        "Triton's fp32 BSR is on the bsr-b16 / bsr / bsr-b64 paths; fields other than the fitted ones copied "
        "from the bsr path"),
        # Triton's BSR kernel gains much per kept weight with the block size (Quansight's figures: fp16 break-even
        # between 95 and 99 % sparsity at block 16, 80-90 % at 32, 50-60 % at 64), so each block size is its own
        # path, as the IPU's are
        "bsr-b16": ("bsr", dict(
            description="block-sparse (BSR) kernels at block 16 (Triton bsr_dense_mm; tensor cores in half precision)",
            block_sizes=(16,), dtypes=("bf16", "fp16", "fp32")),
            "Quansight BSR post (figures 5 and 7): Triton bsr_dense_mm at block 16 breaks even only between 95 and "
            "99 % sparsity in fp16, between 60 and 70 % in fp32; fields other than the fitted ones copied from the "
            "bsr path"),
        "bsr-b64": ("bsr", dict(
            description="block-sparse (BSR) kernels at block 64 (Triton bsr_dense_mm / bsr_dense_addmm)",
            block_sizes=(64,), dtypes=("bf16", "fp16", "fp32")),
            "block-64 rows: Quansight BSR post (figures 5 and 7, fp32 and fp16, 50-99 % sparsity) and torchao "
            "SuperBlock's benchmark_results.txt (ViT-B/16 and ViT-H/14 in bf16, MLPs 80-90 % sparse); fields other "
            "than the fitted ones copied from the bsr path")},
    "ipu-gc200": {
        "popsparse-static-element": ("popsparse-dynamic", dict(
            description="PopSparse static sparse matmul at element granularity (block size 1, pattern fixed "
                        "at compile time)", pattern="unstructured", block_sizes=()),
            "PopSparse static mode at block size 1 (Analysis.ipynb table and figures, SpMM.ipynb outputs); "
            "fields other than the fitted ones copied from popsparse-dynamic"),
        # PopSparse's speed depends strongly on the block size (paper heatmap: b16 >> b8 >> b4), so each
        # static block size is its own path with its own efficiency
        "popsparse-static-b8": ("popsparse-static", dict(
            description="PopSparse static block-sparse matmul, block 8", block_sizes=(8,)),
            "PopSparse static at block 8 (Analysis.ipynb heatmap); fields neither fitted nor derived are listed as "
            "assumptions"),
        "popsparse-static-b4": ("popsparse-static", dict(
            description="PopSparse static block-sparse matmul, block 4", block_sizes=(4,)),
            "PopSparse static at block 4 (Analysis.ipynb heatmap); fields neither fitted nor derived are listed as "
            "assumptions"),
        "popsparse-dynamic-block": ("popsparse-static", dict(
            description="PopSparse dynamic block-sparse matmul (block 16; pattern may change every step)",
            pattern="block", block_sizes=(16,)),
            "PopSparse dynamic mode at block 16 (Analysis.ipynb table and figure); other fields copied from "
            "popsparse-static"),
    },
}
#: fitted parameters live in log space between these ends (peak_fraction, d_half, overhead) or linearly.
#: peak_fraction <= 1 is physical (no path beats the datasheet peak). d_half <= 10 is the schema's own
#: limit (params.PATH_PARAMS); a fit that ends there (A100 bsr-fp32, IPU popsparse-static-element) has
#: found the pure power-law regime eff = e * (x / d0)^a of docs/hardware-profiles.md, where only e / d0^a
#: is determined by the rows, so a wider range would move e and d0 together without changing a prediction.
LOG_BOUNDS = {"peak_fraction": (1e-4, 1.0), "d_half": (1e-5, 10.0), "overhead": (1e-8, 1e-2),
              "dispatch_overhead": (1e-7, 1e-2), "relayout_overhead": (1e-8, 1e-2),
              "block_reread_bandwidth": (1e10, 1e14)}
LIN_BOUNDS = {"exponent": (0.05, 1.0)}
#: start of a term the base profile leaves out (overhead 0 = "absent")
STARTS = {"overhead": 10e-6, "d_half": 0.05, "dispatch_overhead": 50e-6, "relayout_overhead": 50e-6}
#: terms whose lower end means "absent" (written as 0)
ABSENT_LOW = ("overhead", "dispatch_overhead", "relayout_overhead")


#: existing paths the data narrows or corrects: name -> (changes, provenance of the changed fields)
_PAD = ("pytorch/pytorch#111339 (jcaip, 2023-10-17): to_sparse_semi_structured pads X's rows to the nearest "
        "multiple of 64/32/16 depending on dtype, 32 for float16 (one token is computed as 32)")
NARROWED = {
    "ipu-gc200": {"popsparse-static": (dict(
        description="PopSparse static block-sparse matmul, block 16 (pattern fixed at compile time)",
        block_sizes=(16,)), {})},
    "gpu-a100": {"2:4-sparse-tc": (dict(row_multiple=32), {"paths.2:4-sparse-tc.row_multiple": _PAD}),
                 "bsr": (dict(description="block-sparse (BSR) kernels at block 32 (Triton bsr_dense_mm; tensor cores "
                                          "in half precision)", block_sizes=(32,), dtypes=("bf16", "fp16", "fp32")),
                         {"paths.bsr.block_sizes": "blocks 16 and 64 are the bsr-b16 and bsr-b64 paths (see theirs)",
                          "paths.bsr.dtypes": "Triton bsr_dense_mm runs fp32 too: Quansight BSR post, figure 5 "
                                              "(A100, block 32, faster than dense from 30 % sparsity)"})},
    "gpu-h100": {"2:4-sparse-tc": (dict(row_multiple=32), {"paths.2:4-sparse-tc.row_multiple": _PAD + "; the same "
                                                            "torch subclass on Hopper"})},
}


def extend(profile: HardwareProfile) -> HardwareProfile:
    """``profile`` with the :data:`NEW_PATHS` it lacks (and the :data:`NARROWED` paths narrowed)."""
    paths = dict(profile.paths)
    for name, (base, changes, _) in NEW_PATHS.get(profile.name, {}).items():
        if name not in paths and base in paths:
            paths[name] = dataclasses.replace(paths[base], name=name, **changes)
    for name, (changes, _) in NARROWED.get(profile.name, {}).items():
        if name in paths:
            paths[name] = dataclasses.replace(paths[name], **changes)
    return blocks.start(dataclasses.replace(profile, paths=paths))


def _with_dtype_fractions(profile: HardwareProfile, path: str, dtypes: list[str]) -> HardwareProfile:
    """Give ``path`` its own peak_fraction entry for every dtype it has rows in (a '*' entry stays for the rest)."""
    spec = profile.paths[path]
    fr = dict(spec.peak_fraction)
    default = fr.pop("*", None)
    # a YAML fraction table names dtypes only: spell a '*' entry out for every dtype the path may run (a
    # table without '*' keeps its dtypes: a dtype it lacks stays unusable on this path)
    spelled = [*(spec.dtypes or profile.compute.peak_flops)] if default is not None else []
    for dt in [*spelled, *dtypes]:
        fr.setdefault(dt, default if default is not None else next(iter(fr.values())))
    paths = dict(profile.paths)
    paths[path] = dataclasses.replace(spec, peak_fraction=fr)
    return dataclasses.replace(profile, paths=paths)


def tied_dtypes(profile: HardwareProfile, dtypes) -> dict[str, str]:
    """dtype -> the dtype whose fitted fraction it shares: dtypes of equal datasheet peak (A100 / H100 bf16 and
    fp16: the same tensor-core instruction rate, operand bytes and kernels) are one parameter, so a source
    timed in bf16 also tells the path's fp16 efficiency. Why: fitted apart, each source held out left its
    dtype at a ratio-derived or starting value; tied, the A100 held-out median |log err| goes 0.185 -> 0.172
    on the same rows (the final fit: bsr-b64 0.33 for both, apart 0.45 bf16 / 0.39 fp16)."""
    peak = profile.compute.peak_flops
    out: dict[str, str] = {}
    for dt in sorted(dtypes):
        out[dt] = next((o for o in sorted(dtypes) if peak.get(o) == peak.get(dt)), dt)
    return out


#: ratio of the largest to the smallest kept work (m * k * n * density) of a path's "relayout" rows before their
#: per-call rearrangement is fitted
RELAYOUT_SPAN = 4.0
#: ratio of the largest to the smallest sparse product (m * k * n per call) a path's rows must span before a
#: fixed per-call overhead is fitted
SPAN = 10.0


def _work_per_call(p: Point) -> list[float]:
    """m * k * n of the row's sparse products (a 'best'-batch row: at the largest batch, where throughput
    peaks and a fixed cost has faded, so it tells no overhead apart)."""
    if p.kernel:
        return [float(BEST_TOKENS[-1] if p.tokens == "best" else p.tokens) * p.in_features * p.out_features]
    if p.model:
        from accelsim.kernels.published_models import forward_ops

        return [float(op.m) * op.k * op.n for op in forward_ops(p.model, p.batch, p.seq_len, p.density) if op.sparse]
    return []


def free_params(profile: HardwareProfile, path: str, rows: list[Point]) -> list[str]:
    """The parameter keys of ``path`` its rows can determine (see the module docstring)."""
    ties = tied_dtypes(profile, {p.dtype for p in rows})
    keys = [f"paths.{path}.peak_fraction.{dt}" for dt in sorted(set(ties.values()))]
    if path in blocks.family(profile):  # one bandwidth, fractions only where the rows tell them apart
        free = blocks.free_fractions(profile, set(ties.values()))
        keys = [f"paths.{path}.block_reread_bandwidth"] + [k for k in keys if k.rsplit(".", 1)[1] in free]
    # a per-call rearrangement paid only by rows whose operand came in the framework's layout: told from the
    # kernel's rate by their kept work spanning RELAYOUT_SPAN (the SpMM notebook's block-16 densities 1/64-1/8:
    # ~0.2 ms fixed plus 7 us per GFLOP). The efficiency curve's shape comes from the other rows only: at one
    # product size its d_half (time ~ dense work x d_half) and a per-call cost are the same curve, so a fold
    # with only such rows (the PopSparse paper held out) fitted 0.11 ms plus d_half 0.31 instead of the 0.2 ms
    # the notebook's own numbers give, and predicted the paper's block-16 rows 1.4-2.6x low
    kept = [w * p.density for p in rows if p.dispatch == "relayout" for w in _work_per_call(p)]
    if kept and max(kept) >= RELAYOUT_SPAN * min(kept):
        keys.append(f"paths.{path}.relayout_overhead")
    curve = [p for p in rows if p.dispatch != "relayout"]
    if len({p.density for p in curve}) >= 3 and profile.paths[path].pattern != "2:4":
        keys += [f"paths.{path}.d_half", f"paths.{path}.exponent"]
    # the device-side per-call overhead from rows without eager dispatch (an eager row's fixed cost is the
    # host's, dispatch_overhead); a fixed cost is told from the efficiency only by products whose work differs
    # by a decade (SPAN): A100 block-sparse rows 6x apart (Quansight's 4096^3, ViT MLPs; blocks 32 and 64 on
    # one path) fitted 381 us per call with the fraction at its bound 1, for the same held-out error as 0.68
    # and no overhead
    work = [w for p in rows if p.dispatch != "eager" for w in _work_per_call(p)]
    if work and max(work) >= SPAN * min(work) and len(rows) > len(keys) + 1:
        keys.append(f"paths.{path}.overhead")
    if any(p.dispatch == "eager" for p in rows):
        keys.append(f"paths.{path}.dispatch_overhead")
    return keys[: max(1, len(rows) - 1)]  # never more parameters than rows minus one


def _to_x(key: str, value: float) -> float:
    param = key.split(".")[2]
    if param in LOG_BOUNDS:
        lo, hi = LOG_BOUNDS[param]
        return math.log(min(max(value or STARTS.get(param, lo), lo), hi))
    lo, hi = LIN_BOUNDS[param]
    return min(max(value, lo), hi)


def _from_x(key: str, x: float) -> float:
    return math.exp(x) if key.split(".")[2] in LOG_BOUNDS else float(x)


def _bounds(keys: list[str]) -> tuple[list[float], list[float]]:
    lo, hi = [], []
    for key in keys:
        param = key.split(".")[2]
        a, b = LOG_BOUNDS[param] if param in LOG_BOUNDS else LIN_BOUNDS[param]
        lo.append(math.log(a) if param in LOG_BOUNDS else a)
        hi.append(math.log(b) if param in LOG_BOUNDS else b)
    return lo, hi


@dataclass
class PathFit:
    path: str
    rows: list[str]  # dataset ids the path was fitted to
    params: dict[str, float]
    in_sample: dict = field(default_factory=dict)
    # fractions of dtypes the path has no rows in, set by share_dtype_ratios: key -> (value, how)
    derived: dict[str, tuple[float, str]] = field(default_factory=dict)


def fit_path(profile: HardwareProfile, path: str, rows: list[Point]) -> tuple[HardwareProfile, PathFit]:
    """Least-squares fit of ``path``'s free parameters to ``rows``; returns the updated profile."""
    profile = _with_dtype_fractions(profile, path, sorted({p.dtype for p in rows}))
    keys = free_params(profile, path, rows)
    now = fittable_params(profile)
    x0 = np.array([_to_x(k, now[k]) for k in keys])
    lo, hi = _bounds(keys)
    x0 = np.clip(x0, lo, hi)

    ties = tied_dtypes(profile, {p.dtype for p in rows})
    prefix = f"paths.{path}.peak_fraction."

    def spread(values: dict[str, float]) -> dict[str, float]:
        """A tied dtype's fraction is its representative's."""
        out = dict(values)
        for dt, rep in ties.items():
            if dt != rep and prefix + rep in values:
                out[prefix + dt] = values[prefix + rep]
        return out

    def apply(x) -> HardwareProfile:
        return with_params(profile, spread({k: _from_x(k, v) for k, v in zip(keys, x)}))

    def residuals(x):
        prof = apply(x)
        out = []
        for p in rows:
            pr = predict(prof, p)
            out.append(pr.log_err if pr.log_err is not None and not pr.no_path else 0.0)
        return np.array(out)

    # an eager host floor max(kernel, dispatch_overhead) has no gradient while the kernel outlasts it: a second
    # start a decade higher lets rows that sit on the floor pull it up (Triton BSR at 99 % sparsity: ~0.2 ms)
    starts, host = [x0], np.array([k.endswith(".dispatch_overhead") for k in keys])
    if host.any():
        starts.append(np.clip(np.where(host, x0 + math.log(10.0), x0), lo, hi))
    res = min((least_squares(residuals, x, bounds=(lo, hi), loss="soft_l1", f_scale=0.3, diff_step=1e-3,
                             max_nfev=60 * (len(keys) + 1)) for x in starts), key=lambda r: r.cost)
    # an overhead at the bottom of its range is the term absent (written as such, not as 10 ns)
    absent = [k.split(".")[2] in ABSENT_LOW for k in keys]
    x = [lo_k if (a and v <= lo_k + 1e-6) else v for a, v, lo_k in zip(absent, res.x, lo)]
    # a parameter no row responds to (an eager row whose kernel outlasts any host time) was not fitted:
    # it keeps the profile's value instead of reporting the optimizer's start as a fit
    moved = [_responds(residuals, res.x, i, lo[i], res.fun) for i in range(len(keys))]
    # 4 significant digits: what the profile YAML carries
    params = {k: (0.0 if (a and v == lo_k) else float(f"{_from_x(k, v):.4g}"))
              for k, a, v, lo_k, m in zip(keys, absent, x, lo, moved) if m or (a and v == lo_k)}
    params = spread(params)
    fitted = with_params(profile, params)
    return fitted, PathFit(path, [p.id for p in rows], params,
                           error_stats([predict(fitted, p) for p in rows]))


def _responds(residuals, x, i: int, lo: float, at_x, step: float = 0.05) -> bool:
    """Whether the residuals change when parameter ``i`` moves by ``step`` (inward from a bound)."""
    y = np.array(x, dtype=float)
    y[i] += -step if y[i] - step >= lo else step
    return bool(np.any(np.abs(residuals(y) - at_x) > 1e-9))


def _fit_all(profile: HardwareProfile, rows: list[Point]) -> tuple[HardwareProfile, list[PathFit]]:
    fits = []
    for path in sorted({p.path for p in rows if p.path in profile.paths}):
        mine = [p for p in rows if p.path == path]
        profile, pf = fit_path(profile, path, mine)
        fits.append(pf)
    profile = share_dtype_ratios(profile, fits, rows)
    profile = siblings.fill(profile, {pf.path for pf in fits}, fit_path)
    return blocks.share_siblings(profile, {pf.path for pf in fits})[0], fits


def share_dtype_ratios(profile: HardwareProfile, fits: list[PathFit], rows: list[Point]) -> HardwareProfile:
    """A fitted path's fraction in a dtype it has no rows in, from its fitted fraction in another dtype
    times the ratio of the two on the paths fitted in both (geometric mean), recorded in ``PathFit.derived``.

    Why: the dtype ratio belongs to the device, not the kernel. On the IPU the four PopSparse paths fitted in
    fp16 and fp32 (static element, static block 16, dynamic element, dynamic block 16) reach 1.7, 2.2, 2.3
    and 2.1 times their fp32 fraction in fp16 (fp16 peak 4x fp32's, sparse kernels half as efficient in it),
    so one ratio predicts each within 20 %; without it a path seen in one dtype kept a hand-set value in the
    other (the held-out PopSparse-paper block-16 fp32 row came out 0.2x for a published 5.6x). Pairs no
    fitted path shows are left alone (A100: CUDA-core CSR and Triton's BSR paths have fp16 and fp32 rows, no
    path has tf32 rows, so the 2:4 path's tf32 fraction stays as set)."""
    # a block-family path's dtypes follow from its peak and bytes (published_blocks), not from other paths' ratios
    seen = {pf.path: sorted({p.dtype for p in rows if p.path == pf.path}) for pf in fits
            if pf.path not in blocks.family(profile)}
    paths = dict(profile.paths)
    for pf in (f for f in fits if f.path in seen):
        spec = paths[pf.path]
        fr = dict(spec.peak_fraction)
        for dt in [d for d in fr if d != "*" and d not in seen[pf.path]]:
            best: tuple[int, str, list[float], list[str]] | None = None
            for anchor in seen[pf.path]:
                peers = [q for q in seen if q != pf.path and {dt, anchor} <= set(seen[q])]
                ratios = [paths[q].peak_fraction[dt] / paths[q].peak_fraction[anchor] for q in peers]
                if ratios and (best is None or len(ratios) > best[0]):
                    best = (len(ratios), anchor, ratios, peers)
            if best is None:
                continue
            _, anchor, ratios, peers = best
            ratio = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
            lo, hi = LOG_BOUNDS["peak_fraction"]
            fr[dt] = float(f"{min(max(fr[anchor] * ratio, lo), hi):.4g}")
            pf.derived[f"paths.{pf.path}.peak_fraction.{dt}"] = (
                fr[dt], f"the path's {anchor} fraction x the {dt}/{anchor} ratio {ratio:.3g} of {', '.join(peers)}")
        paths[pf.path] = dataclasses.replace(spec, peak_fraction=fr)
    return dataclasses.replace(profile, paths=paths)


@dataclass
class ProfileFit:
    profile: HardwareProfile
    paths: list[PathFit]
    held_out: list[Prediction]  # leave-one-source-out predictions of every current-software row
    sources: list[str]
    superseded: list[Prediction] = field(default_factory=list)  # not fitted; predicted by the final fit
    in_sample: list[Prediction] = field(default_factory=list)  # the final fit's own rows, predicted by it
    #: leave-one-author-group-out predictions (fit_profile(by_group=True)); empty when not asked for
    held_out_by_group: list[Prediction] = field(default_factory=list)

    def held_out_stats(self) -> dict:
        return error_stats(self.held_out)


def _hold_out(start: HardwareProfile, rows: list[Point], unit, done: dict | None = None) -> list[Prediction]:
    """Predict each unit's rows (``unit(row)``: its source or author group) from a fit to the other units'.
    ``done`` maps the set of sources a fold held out to its predictions, so a fold is fitted once."""
    done = {} if done is None else done
    held: list[Prediction] = []
    for name in sorted({unit(p) for p in rows}):
        out = frozenset(p.source for p in rows if unit(p) == name)
        if out not in done:
            prof, _ = _fit_all(start, [p for p in rows if p.source not in out])
            done[out] = [predict(prof, p) for p in rows if p.source in out]
        held += done[out]
    return held


def fit_profile(name: str, points: list[Point] | None = None, base: HardwareProfile | str | None = None,
                by_group: bool = False, hold_out: bool = True) -> ProfileFit:
    """Fit ``name``'s sparse paths to its current-software rows; held-out error by leaving one source out
    at a time (a path whose rows all come from the held-out source keeps its starting parameters), and with
    ``by_group`` also one author group at a time; ``hold_out=False``: the final fit only."""
    points = load_points() if points is None else points
    every = [p for p in points if p.profile == name and (p.kernel or p.model)]  # model: a BERT pass
    rows = [p for p in every if p.software == "current"]
    start = extend(load_profile(base or name))
    sources = sorted({p.source for p in rows})
    folds: dict = {}
    held = _hold_out(start, rows, lambda p: p.source, folds) if hold_out else []
    by_author = _hold_out(start, rows, lambda p: author_group(p.source), folds) if by_group else []
    final, fits = _fit_all(start, rows)
    superseded = [predict(final, p) for p in every if p.software != "current"]
    return ProfileFit(final, fits, held, sources, superseded, [predict(final, p) for p in rows], by_author)
