"""Fit a hardware profile's efficiency parameters to kernel measurements, and validate the fit.

Every prediction goes through :func:`accelsim.hardware.kernel_time`, the same cost model the
simulator uses. A measurement record becomes up to one *point* per profile path: the dense baseline
(``dense_torch`` -> the profile's ``dense`` path, one point per shape: the median over records) and,
for a sparse case, the fastest timed kernel of each family the profile models (CSR kernels -> its
``unstructured`` path, block kernels -> its ``block`` path, N:M kernels -> its ``2:4`` path), with
that profile path forced. Cases are split deterministically (a hash of the case, not file order)
into train and held-out sets; ``calibrate`` fits on train, ``validate`` scores the held-out points.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.errors import expect
from accelsim.hardware import fittable_params, kernel_time, load_profile, param_bounds, profile_to_yaml, with_params
from accelsim.hardware.profile import HardwareProfile
from kernels.bench import load_measurements

DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
HOLDOUT_EVERY = 5  # one case in five is held out
#: fitted per profile path, most important first; trimmed so points >= 2 x parameters
SPARSE_PARAMS = ("peak_fraction", "d_half", "overhead", "exponent")
DENSE_PARAMS = ("peak_fraction", "overhead")
#: measurement noise on a shared machine is heavy-tailed: soft_l1 keeps a few stalled medians from
#: dominating the fit; residuals below f_scale (in log time, ~20 %) are still treated quadratically
LOSS, F_SCALE = "soft_l1", 0.2


@dataclass(frozen=True)
class Point:
    kind: str  # matmul | matmul_dx | matmul_dw
    tokens: int
    d_in: int
    d_out: int
    density: float
    pattern: str  # measurement pattern; "dense" for dense-baseline points
    dtype: str  # profile dtype name
    threads: int
    hw_path: str  # profile path forced in kernel_time
    kernel: str  # measured kernel (fastest of its family)
    measured_s: float
    heldout: bool

    def predict(self, profile: HardwareProfile) -> float:
        pattern = "unstructured" if self.pattern == "dense" else self.pattern
        return kernel_time(profile, self.kind, self.tokens, self.d_in, self.d_out, self.density, pattern,
                           self.dtype, path=self.hw_path)


def is_heldout(*key) -> bool:
    digest = hashlib.sha256("|".join(map(str, key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") % HOLDOUT_EVERY == 0


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


PHASES = {"matmul": "fwd", "matmul_dx": "bwd_input", "matmul_dw": "bwd_weight"}


def _hw_path(profile: HardwareProfile, family: str, kind: str, dtype: str) -> str | None:
    """The profile path modelling ``family`` for this op: the first path of that pattern kind whose
    phases and dtypes admit it (a profile may split a kernel family into per-phase paths)."""
    for name, spec in profile.paths.items():
        if spec.pattern == family and PHASES[kind] in spec.phases and (not spec.dtypes or dtype in spec.dtypes):
            return name
    return None


def measurement_points(doc: dict, profile: HardwareProfile, threads: int | None = None
                       ) -> tuple[list[Point], dict[str, int]]:
    """Points the profile can model, and counts of what was left out and why."""
    threads = threads or profile.compute.count
    skipped: dict[str, int] = defaultdict(int)
    dense_times: dict[tuple, list[float]] = defaultdict(list)
    points: list[Point] = []
    for rec in doc["records"]:
        if rec["threads"] != threads:
            skipped[f"threads != {threads}"] += 1
            continue
        dtype = DTYPE_NAMES.get(rec["dtype"], rec["dtype"])
        shape = (rec["op"], rec["tokens"], rec["d_in"], rec["d_out"], dtype)
        if "dense_torch" in rec["times"]:
            dense_times[shape].append(rec["times"]["dense_torch"])
        families = rec.get("families") or _registry_families(rec.get("device", "cpu"))
        best: dict[str, tuple[str, float]] = {}
        for kernel, t in rec["times"].items():
            fam = families.get(kernel)
            if fam in (None, "dense"):
                continue
            if fam not in best or t < best[fam][1]:
                best[fam] = (kernel, t)
        for fam, (kernel, t) in best.items():
            hw_path = _hw_path(profile, fam, rec["op"], dtype)
            if hw_path is None:
                skipped[f"no '{fam}' path for {rec['op']} in the profile"] += 1
            elif rec["density_actual"] >= 1.0:
                skipped["sparse kernel at density 1 (the model runs dense)"] += 1
            else:
                points.append(Point(rec["op"], rec["tokens"], rec["d_in"], rec["d_out"], rec["density_actual"],
                                    rec["pattern"], dtype, threads, hw_path, kernel, t,
                                    is_heldout(*shape, rec["pattern"], rec["density"])))
    for (op, tokens, d_in, d_out, dtype), ts in dense_times.items():
        hw_path = _hw_path(profile, "dense", op, dtype)
        if hw_path is None:
            skipped[f"no 'dense' path for {op} in the profile"] += 1
            continue
        points.append(Point(op, tokens, d_in, d_out, 1.0, "dense", dtype, threads, hw_path, "dense_torch",
                            statistics.median(ts), is_heldout(op, tokens, d_in, d_out, dtype, "dense")))
    return points, dict(skipped)


def _registry_families(device: str) -> dict[str, str]:
    """Kernel -> family for files written before records carried their own ``families``."""
    from kernels.registry import all_paths
    return {p.name: p.family for p in all_paths(device)}


def _mape(pred: np.ndarray, meas: np.ndarray) -> float:
    return float(np.mean(np.abs(pred / meas - 1.0))) if len(meas) else float("nan")


def _param_keys(profile: HardwareProfile, points: list[Point]) -> list[str]:
    by_path: dict[str, list[Point]] = defaultdict(list)
    for p in points:
        by_path[p.hw_path].append(p)
    known = fittable_params(profile)
    keys = []
    for path, pts in by_path.items():
        spec = profile.paths[path]
        params = DENSE_PARAMS if spec.pattern == "dense" else SPARSE_PARAMS
        params = params[:max(1, min(len(params), len(pts) // 2))]
        for param in params:
            if param == "peak_fraction" and "*" not in spec.peak_fraction:
                dtypes = sorted({p.dtype for p in pts} & set(spec.peak_fraction))
                keys += [f"paths.{path}.peak_fraction.{dt}" for dt in dtypes]
            else:
                keys.append(f"paths.{path}.{param}")
    return [k for k in keys if k in known]


def _x0(profile: HardwareProfile, keys: list[str]) -> np.ndarray:
    """Current values, nudged strictly inside the bounds (least_squares starts from an interior point)."""
    cur = fittable_params(profile)
    x0 = []
    for k in keys:
        lo, hi = param_bounds(k)
        span = hi - lo
        x0.append(min(max(cur[k], lo + 1e-6 * span), hi - 1e-6 * span))
    return np.array(x0)


@dataclass
class Calibration:
    profile: HardwareProfile
    fitted: dict
    train: list[Point] = field(default_factory=list)
    heldout: list[Point] = field(default_factory=list)


def fit_profile(doc: dict, hw: str | Path | HardwareProfile, *, threads: int | None = None,
                source: str = "<measurements>", sha256: str = "") -> Calibration:
    from scipy.optimize import least_squares

    base = load_profile(hw)
    points, skipped = measurement_points(doc, base, threads)
    train = [p for p in points if not p.heldout]
    heldout = [p for p in points if p.heldout]
    expect(len(train) >= 2, f"only {len(train)} training points match profile '{base.name}' "
           f"(skipped: {skipped or 'none'}); measure with --threads {threads or base.compute.count}", source=source)
    keys = _param_keys(base, train)
    meas = np.array([p.measured_s for p in train])

    def predict(x) -> np.ndarray:
        prof = with_params(base, dict(zip(keys, x)))
        return np.array([p.predict(prof) for p in train])

    x0 = _x0(base, keys)
    before = predict(x0)
    bounds = tuple(np.array(b) for b in zip(*map(param_bounds, keys)))
    fit = least_squares(lambda x: np.log(predict(x) / meas), x0, bounds=bounds, loss=LOSS, f_scale=F_SCALE,
                        x_scale="jac", method="trf")
    values = {}
    for k, v in zip(keys, fit.x):  # a value at its bound to within 1e-9 of the range is the bound itself
        lo, hi = param_bounds(k)
        values[k] = float(lo if v - lo < 1e-9 * (hi - lo) else hi if hi - v < 1e-9 * (hi - lo) else v)
    after = predict(fit.x)
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    mach = doc["machine"]
    note = f"fitted by `accelsim calibrate` to {Path(source).name} (sha256 {sha256[:12]}), {len(train)} points, {now}"
    profile = with_params(base, values)
    defaults = {"d_half": 0.0, "overhead": 0.0, "decode_per_nnz": 0.0, "exponent": 1.0}
    sources = dict(profile.sources)
    for k, v in values.items():  # a parameter fitted to its default is not written, so it gets no entry
        if v != defaults.get(k.split(".")[2]):
            sources[k] = note
    fitted = {
        "method": f"scipy.optimize.least_squares (trf, loss={LOSS}, f_scale={F_SCALE}) on log(predicted/measured), "
                  "predictions from accelsim.hardware.kernel_time with the profile path forced",
        "measurements": str(source), "measurements_sha256": sha256,
        "machine": {k: mach.get(k) for k in ("cpu_model", "logical_cores", "isa_flags", "torch", "torch_mkl", "date")},
        "threads": threads or base.compute.count, "fitted_at": now, "base_profile": base.name,
        "split": f"sha256 of the case key mod {HOLDOUT_EVERY} == 0 -> held out",
        "n_points": len(train), "n_heldout": len(heldout),
        "points_per_path": dict(sorted(_count(train).items())), "skipped": skipped,
        "kernels": sorted({p.kernel for p in train}),
        "params": values, "initial": {k: float(v) for k, v in zip(keys, x0)},
        "train_mape": _mape(after, meas), "train_mape_initial": _mape(before, meas),
        "optimizer": {"status": int(fit.status), "nfev": int(fit.nfev), "cost": float(fit.cost)},
    }
    profile = dataclasses.replace(profile, sources=sources, fitted=fitted, name=f"{base.name}-fitted",
                                  paths=_describe_fit(profile, train),
                                  assumptions=_mark_refitted(profile.assumptions, values))
    return Calibration(profile, fitted, train, heldout)


def _describe_fit(profile: HardwareProfile, train: list[Point]) -> dict:
    """Path descriptions name the kernels each path was fitted to (e.g. the C kernel, not MKL BSR)."""
    kernels: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in train:
        kernels[p.hw_path][p.kernel] += 1
    paths = dict(profile.paths)
    for name, counts in kernels.items():
        used = ", ".join(f"{k} x{n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1]))
        old = paths[name].description
        paths[name] = dataclasses.replace(paths[name], description=f"{old}; fitted to the fastest measured: {used}")
    return paths


def _mark_refitted(assumptions: dict[str, str], values: dict[str, float]) -> dict[str, str]:
    """Assumptions covering a refitted parameter stay (other fields of the path still rest on them)
    but say that the efficiency parameters are now measured."""
    out = {}
    for key, reason in assumptions.items():
        if any(k == key or k.startswith(key + ".") for k in values):
            reason = (reason + "; " if reason else "") + \
                "efficiency parameters since refitted by `accelsim calibrate` (see sources and fitted:)"
        out[key] = reason
    return out


def _count(points: list[Point]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for p in points:
        out[p.hw_path] += 1
    return dict(out)


def calibrate(measurements: str | Path, hw: str | Path, out: str | Path, *, threads: int | None = None) -> Calibration:
    """Fit ``hw`` to a measurements file and write the fitted profile YAML to ``out``."""
    doc = load_measurements(measurements)
    cal = fit_profile(doc, hw, threads=threads, source=str(measurements), sha256=file_sha256(measurements))
    text = profile_to_yaml(cal.profile)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# Written by `accelsim calibrate {measurements} --hw {hw}`; see the fitted: block.\n" + text)
    load_profile(out)  # the written profile must load back (schema + provenance)
    return cal


# ---- validation -------------------------------------------------------------------------------

def validate(measurements: str | Path, hw: str | Path, out_dir: str | Path | None = None,
             *, threads: int | None = None) -> dict:
    """Predict the held-out measurements with profile ``hw``; per-kernel / per-pattern / overall MAPE."""
    doc = load_measurements(measurements)
    profile = load_profile(hw)
    fitted = profile.fitted or {}
    threads = threads or fitted.get("threads")
    points, skipped = measurement_points(doc, profile, threads)
    same_file = fitted.get("measurements_sha256") == file_sha256(measurements)
    chosen = [p for p in points if p.heldout] if same_file else points
    mode = "held-out points of the file the profile was fitted to" if same_file else \
        "all points (the profile was not fitted to this file)"
    expect(len(chosen) > 0, f"no measurement points to validate (skipped: {skipped or 'none'})", source=measurements)
    rows = []
    for p in chosen:
        pred = p.predict(profile)
        rows.append(dict(dataclasses.asdict(p), predicted_s=pred, ratio=pred / p.measured_s,
                         ape=abs(pred / p.measured_s - 1.0)))
    report = {"profile": profile.name, "profile_file": str(hw), "measurements": str(measurements), "mode": mode,
              "n_points": len(rows), "skipped": skipped, "overall_mape": _group_mape(rows, lambda r: "all")["all"],
              "mape_by_pattern": _group_mape(rows, lambda r: r["pattern"]),
              "mape_by_kernel": _group_mape(rows, lambda r: f"{r['kind']} {r['hw_path']} ({r['kernel']})"),
              "points": rows}
    if out_dir is not None:
        from kernels.plots import scatter_png, write_rows_csv
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "validation.json").write_text(json.dumps(report, indent=1))
        write_rows_csv(rows, out / "validation.csv")
        scatter_png(rows, out / "validation.png", title=f"{profile.name} vs {Path(measurements).name} ({mode})")
        report["files"] = [str(out / n) for n in ("validation.json", "validation.csv", "validation.png")]
    return report


def _group_mape(rows: list[dict], key) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    return {k: {"n": len(v), "mape": float(np.mean([r["ape"] for r in v])),
                "median_ratio": float(np.median([r["ratio"] for r in v]))} for k, v in sorted(groups.items())}

