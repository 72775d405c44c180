"""Calibration and validation against measurements synthesised from a known profile (no timing)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from accelsim.app.cli import main
from accelsim.errors import UserError
from accelsim.hardware import kernel_time, load_profile, with_params
from accelsim.kernels.bench import SCHEMA, load_measurements
from accelsim.kernels.calibrate import calibrate, fit_profile, measurement_points, validate

TRUTH = {"paths.dense-gemm.peak_fraction": 0.55, "paths.csr-spmm.peak_fraction": 0.3,
         "paths.csr-spmm.d_half": 0.04, "paths.csr-spmm.overhead": 2e-4,
         "paths.bsr.peak_fraction": 0.7, "paths.bsr.d_half": 0.02, "paths.bsr.overhead": 5e-5}
SIMPLE = str(Path(__file__).parent / "data" / "cpu-simple.yaml")  # one profile path per kernel family


def _doc(records: list[dict]) -> dict:
    """A measurements document around hand-made records (kernels.records validates the whole file)."""
    return {"schema": SCHEMA, "machine": {"cpu_model": "synthetic"}, "records": records}
FAMILY_PATH = {"dense_torch": "dense-gemm", "csr_torch": "csr-spmm", "blocksparse_c": "bsr"}
FAMILIES = {"dense_torch": "dense", "csr_torch": "unstructured", "blocksparse_c": "block"}


def _record(truth, op, tokens, d_in, d_out, pattern, density, threads=2):
    kernels = ["dense_torch", "blocksparse_c" if pattern.startswith("block") else "csr_torch"]
    times = {k: kernel_time(truth, op, tokens, d_in, d_out, density if k != "dense_torch" else 1.0,
                            pattern, "fp32", path=FAMILY_PATH[k]) for k in kernels}
    best = min(times, key=times.get)
    return {"op": op, "tokens": tokens, "d_in": d_in, "d_out": d_out, "m": tokens, "k": d_in, "n": d_out,
            "pattern": pattern, "density": density, "density_actual": density, "dtype": "float32",
            "device": "cpu", "threads": threads, "path": best, "median_s": times[best],
            "dense_s": times["dense_torch"], "times": times, "families": {k: FAMILIES[k] for k in kernels}}


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    truth = with_params(load_profile(SIMPLE), TRUTH)
    recs = [_record(truth, op, t, h, 4 * h, pat, d)
            for op in ("matmul", "matmul_dx", "matmul_dw") for t in (128, 512) for h in (256, 768)
            for pat in ("unstructured", "block32") for d in (0.5, 0.2, 0.1, 0.05, 0.01)]
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "synthetic", "logical_cores": 2, "isa_flags": [],
                                         "torch": "x", "date": "2026-01-01T00:00:00+00:00"}, "records": recs}
    path = tmp_path_factory.mktemp("cal") / "m.json"
    path.write_text(json.dumps(doc))
    return path


def test_points_split_and_map_to_profile_paths(measured):
    doc = load_measurements(measured)
    points, skipped = measurement_points(doc, load_profile(SIMPLE))
    assert {p.hw_path for p in points} == {"dense-gemm", "csr-spmm", "bsr"}
    dense = [p for p in points if p.hw_path == "dense-gemm"]
    assert len(dense) == 3 * 2 * 2  # one per (op, shape): the median of the repeated dense baselines
    held = [p for p in points if p.heldout]
    assert 0.1 < len(held) / len(points) < 0.35  # ~1 in 5 cases, by hash
    again, _ = measurement_points(doc, load_profile(SIMPLE))
    assert [p.heldout for p in again] == [p.heldout for p in points]  # deterministic
    assert measurement_points(doc, load_profile(SIMPLE), threads=1)[1] == {"threads != 1": len(doc["records"])}


def test_sparse_times_are_paired_with_the_dense_baseline_beside_them():
    """A slow spell in round 2 doubles both kernels of that round: the paired time (median ratio to the dense
    baseline x the shape's dense median) cancels it, the plain median does not; both are kept."""
    def rec(density, dense, sparse):
        return {"op": "matmul", "tokens": 128, "d_in": 64, "d_out": 256, "dtype": "float32", "threads": 2,
                "pattern": "unstructured", "density": density, "density_actual": density, "path": "csr_torch",
                "times": {"dense_torch": float(np.median(dense)), "csr_torch": float(np.median(sparse))},
                "times_rounds": {"dense_torch": dense, "csr_torch": sparse},
                "families": {"dense_torch": "dense", "csr_torch": "unstructured"},
                "m": 128, "k": 64, "n": 256, "median_s": float(np.median(sparse)), "dense_s": float(np.median(dense))}

    doc = _doc([rec(0.5, [1.0, 2.0], [0.5, 1.0]), rec(0.2, [1.0, 1.0], [0.2, 0.2])])
    points, _ = measurement_points(doc, load_profile(SIMPLE))
    by_density = {p.density: p for p in points}
    dense_median = float(np.median([1.5, 1.0]))  # per shape, over the records' dense medians
    assert by_density[1.0].measured_s == dense_median
    assert by_density[0.5].measured_s == pytest.approx(0.5 * dense_median) and by_density[0.5].raw_s == 0.75
    assert by_density[0.2].measured_s == pytest.approx(0.2 * dense_median) and by_density[0.2].raw_s == 0.2
    plain, _ = measurement_points(doc, load_profile(SIMPLE), paired=False)
    assert {p.density: p.measured_s for p in plain}[0.5] == 0.75


def test_a_term_at_its_absent_end_is_written_absent_only_if_the_fit_allows():
    """d_half at the smallest value searched with the exponent at its floor: d_half^a ~ 1, so the term is
    still there. It is written as absent (0) only when that leaves the fit's cost unchanged."""
    from accelsim.kernels.calibrate import _Space, _written_values

    keys = ["paths.csr-spmm.d_half", "paths.csr-spmm.exponent"]
    space = _Space(keys, {k: 0.01 for k in keys})
    x = space.lo.copy()  # both at the low end of their range
    needs_term = lambda v: 0.0 if v[keys[0]] > 0 else 1.0  # noqa: E731  (the cost rises without the term)
    values, snapped = _written_values(space, x, 0.0, needs_term)
    assert not snapped and values[keys[0]] == pytest.approx(1e-5) and values[keys[1]] == pytest.approx(1e-3)
    values, snapped = _written_values(space, x, 0.0, lambda v: 0.0)
    assert snapped and values[keys[0]] == 0.0


def test_fit_recovers_the_generating_profile(measured, tmp_path):
    out = tmp_path / "fit.yaml"
    cal = calibrate(measured, SIMPLE, out)
    f = cal.fitted
    assert f["train_mape"] < 0.01 < f["train_mape_initial"]
    assert abs(f["params"]["paths.dense-gemm.peak_fraction"] - 0.55) < 0.01
    assert f["n_points"] == len(cal.train) and f["n_heldout"] == len(cal.heldout) > 0
    assert len(f["measurements_sha256"]) == 64 and f["machine"]["cpu_model"] == "synthetic"
    prof = load_profile(out)  # written YAML validates and round-trips
    assert prof.fitted["params"] == f["params"]
    assert "accelsim calibrate" in prof.sources["paths.bsr.peak_fraction"]
    assert "blocksparse_c" in prof.paths["bsr"].description

    report = validate(measured, out, tmp_path / "val")
    assert report["mode"].startswith("held-out") and report["n_points"] == len(cal.heldout)
    assert report["overall_mape"]["mape"] < 0.02
    assert set(report["mape_by_pattern"]) <= {"dense", "unstructured", "block32"}
    png = (tmp_path / "val" / "validation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((tmp_path / "val" / "validation.json").read_text())["points"]
    assert all(r["heldout"] for r in rows)


def test_validate_other_file_uses_all_points_and_sees_a_wrong_profile(measured, tmp_path):
    wrong = dataclasses.replace(with_params(load_profile(SIMPLE), {"paths.dense-gemm.peak_fraction": 0.11}))
    path = tmp_path / "wrong.yaml"
    from accelsim.hardware import profile_to_yaml
    path.write_text(profile_to_yaml(wrong))
    report = validate(measured, path)
    assert report["mode"].startswith("all points")
    assert report["mape_by_pattern"]["dense"]["median_ratio"] == pytest.approx(0.55 / 0.11, rel=0.05)


def test_speedup_check_scores_the_sparse_paths_against_the_dense_beside_them(measured, tmp_path):
    """validate's speedup section: sparse over dense of the same shape, measured vs predicted. The generating
    profile scores ~1x everywhere; halving one sparse path's rate halves only that family's predicted
    speedups, where absolute times would blame every kernel for a wrong dense path."""
    from accelsim.hardware import profile_to_yaml

    def scored(params):
        path = tmp_path / f"p{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(profile_to_yaml(with_params(load_profile(SIMPLE), {**TRUTH, **params})))
        return validate(measured, path)["speedup"]

    truth = scored({})
    assert truth["n"] > 50 and truth["median_abs_log_err"] < 1e-6 and truth["within_1.35x"] == 1.0
    slow_csr = scored({"paths.csr-spmm.peak_fraction": TRUTH["paths.csr-spmm.peak_fraction"] / 2})
    assert 0.5 <= slow_csr["by_path"]["csr-spmm"]["median_ratio"] < 0.7  # its FMAs halve; overheads do not
    assert slow_csr["by_path"]["bsr"]["median_ratio"] == pytest.approx(1.0, abs=1e-6)
    slow_dense = scored({"paths.dense-gemm.peak_fraction": 0.11})  # 5x slower dense: every speedup rises
    assert all(v["median_ratio"] > 2 for v in slow_dense["by_path"].values())


def test_errors(measured, tmp_path):
    doc = load_measurements(measured)
    with pytest.raises(UserError, match="training points"):
        fit_profile(doc, SIMPLE, threads=4)
    with pytest.raises(UserError, match="no such hardware profile"):
        calibrate(measured, "no-such-profile", tmp_path / "x.yaml")


def test_cli(measured, tmp_path, capsys):
    out = tmp_path / "cli.yaml"
    main(["calibrate", str(measured), "--hw", SIMPLE, "--out", str(out)])
    main(["validate", str(measured), "--hw", str(out), "--out", str(tmp_path / "v")])
    text = capsys.readouterr().out
    assert "fitted on" in text and "overall MAPE" in text and (tmp_path / "v" / "validation.csv").exists()
    with pytest.raises(SystemExit) as exc:
        main(["validate", str(tmp_path / "missing.json"), "--hw", str(out)])
    assert exc.value.code == 2


def test_fff_points_fit_the_conditional_path_and_validate_as_their_own_class(tmp_path):
    """FFF records (kernels.fff_bench) become dense-FF points on the dense path and CMM points on the
    conditional path; the fit recovers the cmm rate that generated them."""
    truth = with_params(load_profile(SIMPLE), {"paths.cmm.peak_fraction": 0.07, "paths.dense-gemm.peak_fraction": 0.5})
    recs = []
    for t in (128, 512, 2048, 4096):
        for h in (128, 256, 768):
            for K, D in ((1, 5), (1, 7), (1, 9), (4, 7)):
                n = K * (2 ** (D + 1) - 1)
                times = {"dense_torch": kernel_time(truth, "ff", t, h, n, path="dense-gemm"),
                         "fff_walk": kernel_time(truth, "fff", t, h, n, trees=K, depth=D, path="cmm")}
                best = min(times, key=times.get)
                dens = K * (D + 1) / n
                recs.append({"op": "fff", "tokens": t, "d_in": h, "d_out": n, "m": t, "k": h, "n": n, "trees": K,
                             "depth": D, "pattern": "conditional", "density": dens, "density_actual": dens,
                             "dtype": "float32", "device": "cpu", "threads": 2, "path": best,
                             "median_s": times[best], "dense_s": times["dense_torch"], "times": times,
                             "families": {"dense_torch": "dense", "fff_walk": "conditional"}})
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "synthetic", "logical_cores": 2, "isa_flags": [],
                                         "torch": "x", "date": "2026-01-01T00:00:00+00:00"}, "records": recs}
    path = tmp_path / "fff.json"
    path.write_text(json.dumps(doc))
    points, _ = measurement_points(load_measurements(path), load_profile(SIMPLE))
    assert {(p.hw_path, p.pattern) for p in points} == {("cmm", "conditional"), ("dense-gemm", "dense")}
    cal = calibrate(path, SIMPLE, tmp_path / "fit.yaml")
    assert cal.fitted["params"]["paths.cmm.peak_fraction"] == pytest.approx(0.07, rel=0.02)
    report = validate(path, tmp_path / "fit.yaml")
    assert report["mape_by_pattern"]["conditional"]["n"] > 0
    assert report["mape_by_pattern"]["conditional"]["mape"] < 0.02
    assert report["fastest"]["by_op"]["fff"]["n"] > 0  # the simulator's own choice of path is scored too


def test_fit_recovers_a_scatter_penalty_from_csr_on_random_and_block_masks(tmp_path):
    """The CSR kernel timed on random and 16x16-block masks of the same densities: the scatter penalty
    is what separates the two, and the fit of the unstructured path finds the one that generated them
    (block paths do not fit it: they only run filled tiles)."""
    truth = with_params(load_profile(SIMPLE), {"paths.csr-spmm.peak_fraction": 0.3, "paths.csr-spmm.d_half": 0.04,
                                               "paths.csr-spmm.scatter_penalty": 0.8})
    recs = []
    for op in ("matmul", "matmul_dx"):
        for t, h in ((128, 256), (512, 256), (512, 768)):
            for pat in ("unstructured", "block16"):
                for d in (0.5, 0.2, 0.1, 0.05, 0.02):
                    times = {"csr_torch": kernel_time(truth, op, t, h, 4 * h, d, pat, "fp32", path="csr-spmm")}
                    recs.append({"op": op, "tokens": t, "d_in": h, "d_out": 4 * h, "m": t, "k": h, "n": 4 * h,
                                 "pattern": pat, "density": d, "density_actual": d, "dtype": "float32",
                                 "device": "cpu", "threads": 2, "path": "csr_torch", "median_s": times["csr_torch"],
                                 "dense_s": times["csr_torch"] / d,  # not timed here: no dense point is made
                                 "times": times, "families": {"csr_torch": "unstructured"}})
    doc = {"schema": SCHEMA, "machine": {"cpu_model": "synthetic", "logical_cores": 2, "isa_flags": [],
                                         "torch": "x", "date": "2026-01-01T00:00:00+00:00"}, "records": recs}
    cal = fit_profile(doc, SIMPLE)
    assert cal.fitted["params"]["paths.csr-spmm.scatter_penalty"] == pytest.approx(0.8, rel=0.05)
    assert cal.fitted["heldout_mape"] < 0.01
    assert not any(k.startswith("paths.bsr.") and k.endswith("scatter_penalty") for k in cal.fitted["params"])


def test_quick_sweep_calibrate_validate_end_to_end_on_real_timings(tmp_path, capsys):
    """The issue's CI pipeline on this machine's own kernel timings: `kernels bench --quick`, `calibrate`,
    `validate`. Asserts the plumbing and the error arithmetic, not a (noise-sensitive) error level."""

    from accelsim.kernels.calibrate import predict_time

    meas, fit, vdir = tmp_path / "quick.json", tmp_path / "cpu-quick.yaml", tmp_path / "val"
    main(["kernels", "bench", "--quick", "--out", str(meas), "--densities", "0.5,0.2,0.05",
          "--patterns", "unstructured,block16", "--repeats", "2", "--fff", "1x5,2x4", "--threads", "1"])
    main(["calibrate", str(meas), "--hw", "cpu-local", "--out", str(fit), "--threads", "1"])
    main(["validate", str(meas), "--hw", str(fit), "--out", str(vdir)])
    out = capsys.readouterr().out
    assert "fitted on" in out and "overall MAPE" in out
    prof = load_profile(fit)
    f = prof.fitted
    assert prof.name == "cpu-quick" and f["threads"] == 1 and f["base_profile"] == "cpu-zen3"
    assert f["measurements_sha256"] == __import__("hashlib").sha256(meas.read_bytes()).hexdigest()
    assert f["train_mape"] <= f["train_mape_initial"] + 1e-9  # the fit never makes the training error worse
    report = json.loads((vdir / "validation.json").read_text())
    assert report["mode"].startswith("held-out") and report["threads"] == 1
    rows = report["points"]
    assert rows and all(r["heldout"] for r in rows) and len(rows) == f["n_heldout"]
    for r in rows:  # every reported prediction is the simulator's cost model for that point
        pred = predict_time(prof, r["kind"], r["tokens"], r["d_in"], r["d_out"], r["density"], r["pattern"],
                            r["dtype"], path=r["hw_path"], trees=r["trees"], depth=r["depth"])
        assert pred == pytest.approx(r["predicted_s"], rel=1e-9)
        assert r["ape"] == pytest.approx(abs(r["predicted_s"] / r["measured_s"] - 1))
    assert report["overall_mape"]["mape"] == pytest.approx(np.mean([r["ape"] for r in rows]))
    for pattern, g in report["mape_by_pattern"].items():
        sel = [r["ape"] for r in rows if r["pattern"] == pattern]
        assert g["n"] == len(sel) and g["mape"] == pytest.approx(np.mean(sel))
    # the same predictions against the plain medians (measured_s is paired with the dense baseline)
    assert report["raw"]["overall"]["mape"] == pytest.approx(np.mean([abs(r["predicted_s"] / r["raw_s"] - 1)
                                                                      for r in rows]))
    assert {r["kind"] for r in report["fastest_points"]} <= {"matmul", "matmul_dx", "matmul_dw", "fff"}
    assert (vdir / "validation.png").read_bytes()[:4] == b"\x89PNG"


def test_round_noise_compares_the_two_halves_of_each_cases_rounds():
    from accelsim.kernels.validation import round_noise

    def rec(op, **timing):
        base = {"op": op, "tokens": 8, "d_in": 16, "d_out": 64, "m": 8, "k": 16, "n": 64, "pattern": "unstructured",
                "density": 0.5, "density_actual": 0.5, "dtype": "float32", "threads": 1, "path": "csr_torch",
                "median_s": 1.0, "dense_s": 2.0, "times": {"csr_torch": 1.0}}
        return dict(base, **timing)

    doc = _doc([
        rec("matmul", times_rounds={"csr_torch": [1.0, 1.0, 1.2, 1.2], "dense_torch": [2.0, 2.0]}),
        rec("matmul", times_rounds={"csr_torch": [1.0, 3.0, 2.0, 2.0]}),  # medians 2 and 2: no spread
        rec("matmul_dx", times_rounds={"csr_torch": [1.0]}),  # one round: nothing to compare
        rec("matmul_dx"),  # an unmerged file has no rounds
    ])
    out = round_noise(doc)
    assert out["matmul csr_torch"]["n"] == 2
    assert out["matmul csr_torch"]["mean"] == pytest.approx(abs(1 / 1.2 - 1) / 2)
    assert out["matmul dense_torch"] == {"n": 1, "mean": 0.0, "median": 0.0}
    assert "matmul_dx csr_torch" not in out and out["all"]["n"] == 3
