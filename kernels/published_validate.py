"""Predict the published measurements (benchmarks/published/points.csv) with a hardware profile.

Each row's sparse time is predicted on the path of the row's own family (``Point.path``, else any path of
the row's pattern): a published slowdown must come out as a slowdown, which the simulator's "fastest path
wins" rule would hide behind the dense fallback. A row whose family has no path on the profile is
predicted at 1.0x (what the simulator would run: the dense path) and flagged ``no_path``.

Errors are |log(predicted / published)| of the speedup (dense time / sparse time), summarised per profile
and per family (pattern + path): the median, the share within 1.35x, and the worst rows. A whole-model
inference row naming a BERT preset or a torchvision ViT (``model``) is costed op by op
(kernels.published_models); other whole-model rows (SAM) and training steps need a workload the simulator
does not build from a dataset row, so they are listed as not predicted, never guessed.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from accelsim.errors import UserError
from accelsim.hardware import HardwareProfile, kernel_time, list_profiles, load_profile
from accelsim.kernels.published import BEST_TOKENS, Point, load_points

#: a prediction within this factor of the published speedup counts as "within" (issue 16's bar)
WITHIN = 1.35
#: products each kernel op is made of: (kernel_time kind, forward m/k/n builder from the row)
_PRODUCTS = {
    "kernel_fwd": lambda t, i, o: [("matmul", t, i, o)],
    "linear_fwdbwd": lambda t, i, o: [(k, t, i, o) for k in ("matmul", "matmul_dx", "matmul_dw")],
    # MLP in -> out -> in: both layers' three products
    "mlp_fwdbwd": lambda t, i, o: [(k, t, a, b) for a, b in ((i, o), (o, i))
                                   for k in ("matmul", "matmul_dx", "matmul_dw")],
    # MLP in -> out -> in, forward only (inference): the two products; the activation between them is not costed
    "mlp_fwd": lambda t, i, o: [("matmul", t, i, o), ("matmul", t, o, i)],
}


@dataclass
class Prediction:
    id: str
    source: str
    profile: str
    family: str  # pattern[/block] @ path
    published: float
    predicted: float | None  # None: not predicted (whole model / step, or no such dtype on the profile)
    log_err: float | None
    no_path: bool  # the family has no path on the profile: predicted as the dense fallback (1.0x)
    why: str = ""
    software: str = "current"  # "superseded" rows are reported apart from the headline error


def synthetic_kind(p: Point) -> str | None:
    """The pattern kind the cost model runs the row's weight as: its own block size, or for a block larger
    than any synthetic kind the largest that divides it, at the same density (every kept 128 x 128 block is
    four kept 64 x 64 tiles)."""
    if p.pattern == "block":
        from accelsim.hardware import SYNTHETIC_KINDS
        sizes = [int(k[5:]) for k in SYNTHETIC_KINDS if k.startswith("block")]
        fits = [b for b in sizes if p.block % b == 0 and (b == p.block or p.block > max(sizes))]
        return f"block{max(fits)}" if fits else None
    return p.pattern


def _family_paths(profile: HardwareProfile, p: Point) -> list[str]:
    """Paths that run the row's family: the row's own path when it names one (absent from the profile =
    the family has no path there), else every path of the row's pattern."""
    if p.path:
        return [p.path] if p.path in profile.paths else []
    return [name for name, spec in profile.paths.items() if spec.pattern == p.pattern]


def _sparse_time(profile, kind, m, k, n, p: Point, pattern: str, paths: list[str]) -> tuple[float, bool]:
    """Time of one product on the family's path; (time, ran_on_family_path). Phases a family path does not
    run (a 2:4 path's dX/dW) fall back to the fastest path at that density, as the simulator would."""
    how = dict(eager=p.dispatch == "eager", relayout=p.dispatch == "relayout")
    for path in paths:
        try:
            return kernel_time(profile, kind, m, k, n, p.density, pattern, p.dtype, path=path, **how), True
        except UserError:
            continue
    return kernel_time(profile, kind, m, k, n, p.density, pattern, p.dtype, **how), False


def _speedup_at(profile, p: Point, tokens: int, pattern: str, paths: list[str]) -> tuple[float, float, bool]:
    dense = sparse = 0.0
    on_family = False
    for kind, m, k, n in _PRODUCTS[p.op](tokens, p.in_features, p.out_features):
        d = kernel_time(profile, kind, m, k, n, 1.0, "unstructured", p.dtype, eager=p.dispatch == "eager")
        t, used = _sparse_time(profile, kind, m, k, n, p, pattern, paths)
        dense += d
        # "fastest": the library timed both GEMMs of the shape and keeps the sparse one only where it won
        sparse += min(t, d) if p.dispatch == "fastest" else t
        on_family |= used
    return dense, sparse, on_family


def predict(profile: HardwareProfile | str, p: Point) -> Prediction:
    """Predicted speedup of row ``p`` on ``profile`` (see the module docstring for the rules)."""
    profile = load_profile(profile)
    fam = f"{p.pattern}{'/b' + str(p.block) if p.block else ''} @ {p.path or '-'}"
    base = dict(id=p.id, source=p.source, profile=profile.name, family=fam, published=p.speedup,
                software=p.software)
    if not p.kernel and not (p.op == "model_inference" and p.model):
        return Prediction(**base, predicted=None, log_err=None, no_path=False,
                          why=f"{p.op}: needs a whole-model workload the simulator does not build")
    if p.dtype not in profile.compute.peak_flops:
        return Prediction(**base, predicted=None, log_err=None, no_path=False, why=f"profile has no {p.dtype} peak")
    pattern = synthetic_kind(p)
    paths = _family_paths(profile, p)
    if pattern is None or not paths:
        return Prediction(**base, predicted=1.0, log_err=math.log(1.0 / p.speedup), no_path=True,
                          why="no path for this family: dense fallback")
    if p.op == "model_inference":  # a BERT or ViT forward pass, op by op (kernels.published_models)
        from accelsim.kernels.published_models import forward_ops, forward_time

        eager = p.dispatch == "eager"
        dense = forward_time(profile, forward_ops(p.model, p.batch, p.seq_len), p.dtype, pattern, None, eager)
        sparse = forward_time(profile, forward_ops(p.model, p.batch, p.seq_len, p.density), p.dtype,
                              pattern, paths[0], eager, fastest=p.dispatch == "fastest")
        return Prediction(**base, predicted=dense / sparse, log_err=math.log(dense / sparse / p.speedup),
                          no_path=False)
    grid = BEST_TOKENS if p.tokens == "best" else (p.tokens,)
    runs = [(t, *_speedup_at(profile, p, t, pattern, paths)) for t in grid]
    if not any(r[3] for r in runs):
        return Prediction(**base, predicted=1.0, log_err=math.log(1.0 / p.speedup), no_path=True,
                          why="family path cannot run this product: dense fallback")
    # "best": the source maximised throughput (tokens / time) separately for sparse and dense
    pred = max(t / s for t, _, s, _ in runs) / max(t / d for t, d, _, _ in runs)
    return Prediction(**base, predicted=pred, log_err=math.log(pred / p.speedup), no_path=False)


def error_stats(preds: list[Prediction]) -> dict:
    errs = [abs(x.log_err) for x in preds if x.log_err is not None]
    if not errs:
        return {"n": 0}
    errs.sort()
    mid = len(errs) // 2
    median = errs[mid] if len(errs) % 2 else 0.5 * (errs[mid - 1] + errs[mid])
    return {"n": len(errs), "median_abs_log_err": round(median, 4),
            "within_1.35x": round(sum(e <= math.log(WITHIN) for e in errs) / len(errs), 4),
            "no_path": sum(x.no_path for x in preds)}


#: fewer held-out units than this give no interval: 2-4 clusters have a handful of distinct resamples
MIN_CLUSTERS = 5


def cluster_interval(preds: list, cluster, level: float = 0.9, resamples: int = 2000, seed: int = 0) -> dict:
    """Percentile-bootstrap interval of :func:`error_stats`'s median and share, resampling whole clusters.

    ``cluster(prediction)`` names the unit held out together (a source, an author group): rows of one source
    share its setup and its errors, so resampling rows would make a few dozen publications look like hundreds
    of independent checks. Below MIN_CLUSTERS clusters no interval is given."""
    import numpy as np
    from scipy.stats import bootstrap

    scored = [x for x in preds if x.log_err is not None]
    names = sorted({cluster(x) for x in scored})
    if len(names) < MIN_CLUSTERS:
        return {}
    errs = [np.array([abs(x.log_err) for x in scored if cluster(x) == c]) for c in names]

    def pooled(idx):
        return np.concatenate([errs[int(i)] for i in idx])

    out = {"level": level, "resampled": len(names)}
    for key, stat in (("median_abs_log_err", lambda idx: float(np.median(pooled(idx)))),
                      ("within_1.35x", lambda idx: float(np.mean(pooled(idx) <= math.log(WITHIN))))):
        res = bootstrap((np.arange(len(names)),), stat, n_resamples=resamples, confidence_level=level,
                        method="percentile", vectorized=False, random_state=np.random.default_rng(seed))
        out[key] = [round(float(res.confidence_interval.low), 4), round(float(res.confidence_interval.high), 4)]
    return out


def summarise(preds: list[Prediction], worst: int = 5) -> dict:
    """Per profile and per family: error statistics of the current-software rows and their worst rows;
    superseded rows (a prototype, a since-cached set-up, a misbuilt library) get their own line."""
    old = [x for x in preds if x.software != "current"]
    preds = [x for x in preds if x.software == "current"]
    out: dict = {"overall": error_stats(preds), "superseded": error_stats(old), "profiles": {}}
    for prof in sorted({x.profile for x in preds} | {x.profile for x in old}):
        mine = [x for x in preds if x.profile == prof]
        fams = {f: error_stats([x for x in mine if x.family == f]) for f in sorted({x.family for x in mine})}
        ranked = sorted((x for x in mine if x.log_err is not None), key=lambda x: -abs(x.log_err))[:worst]
        out["profiles"][prof] = {
            **error_stats(mine), "families": fams,
            "worst": [{"id": x.id, "published": x.published, "predicted": round(x.predicted, 4), "family": x.family}
                      for x in ranked],
            "not_predicted": [{"id": x.id, "why": x.why} for x in mine if x.predicted is None],
            "superseded": error_stats([x for x in old if x.profile == prof]),
        }
    return out


def validate_published(hw: list[str] | None = None, points_path: str | Path | None = None,
                       out: str | Path | None = None, profiles: dict[str, HardwareProfile] | None = None) -> dict:
    """Predict every row whose ``profile`` is in ``hw`` (default: every profile the dataset names).
    A bundled profile the dataset has no row for is reported as ``unvalidated`` (0 points), not refused,
    so asking for every bundled profile shows which ones no published measurement checks.
    ``profiles`` maps a dataset profile name to the profile to use instead of the bundled one (a fitted
    profile). Writes published_validation.json and .png under ``out`` when given."""
    points = load_points(points_path)
    names = sorted({p.profile for p in points if p.profile})
    wanted = names if not hw else list(hw)
    unknown = [h for h in wanted if h not in names and h not in list_profiles()]
    if unknown:
        raise UserError(f"no published rows and no bundled profile for {', '.join(unknown)}; rows exist for "
                        f"{', '.join(names)}", field="--hw")
    profiles = profiles or {}
    preds = [predict(profiles.get(p.profile) or p.profile, p) for p in points if p.profile in wanted]
    summary = summarise(preds)
    unvalidated = [h for h in wanted if h not in names]
    for h in unvalidated:
        summary["profiles"][h] = {"n": 0, "families": {}, "worst": [], "not_predicted": [], "superseded": {"n": 0},
                                  "unvalidated": "no published rows (benchmarks/published/README.md, 'Not covered')"}
    report = {"points": str(points_path or "benchmarks/published/points.csv"), "within_factor": WITHIN,
              **summary, "unvalidated": unvalidated, "predictions": [asdict(x) for x in preds]}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "published_validation.json").write_text(json.dumps(report, indent=1) + "\n")
        plot_predictions(preds, out / "published_validation.png")
        report["files"] = [str(out / "published_validation.json"), str(out / "published_validation.png")]
    return report


def plot_predictions(preds: list[Prediction], path: Path, title: str = "published vs predicted sparse speedup") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    # every point on the axes (Quansight's fp32 curves reach 41.6x), at least the 0.02-20 span of the rest
    vals = [v for x in preds if x.predicted is not None for v in (x.published, x.predicted)]
    lo, hi = min([0.02, *vals]) / 1.2, max([20.0, *vals]) * 1.2
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="y = x")
    ax.fill_between([lo, hi], [lo / WITHIN, hi / WITHIN], [lo * WITHIN, hi * WITHIN], color="#ddd",
                    label=f"within {WITHIN}x")
    for prof in sorted({x.profile for x in preds}):
        pts = [x for x in preds if x.profile == prof and x.predicted is not None]
        ax.scatter([x.published for x in pts], [x.predicted for x in pts], s=14, label=f"{prof} ({len(pts)})",
                   marker="x" if prof.startswith("ipu") else "o")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("published speedup over dense (same hardware, dtype)")
    ax.set_ylabel("predicted (the row's own path family)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
