"""Fitting a profile's sparse path to published-style rows: parameter recovery and source hold-out."""
import dataclasses

from accelsim.hardware import load_profile, with_params
from accelsim.kernels.published import Point
from accelsim.kernels.published_fit import extend, fit_path, fit_profile
from accelsim.kernels.published_validate import predict

TRUE = {"paths.csr-spmm.peak_fraction.fp32": 0.3, "paths.csr-spmm.d_half": 0.2, "paths.csr-spmm.exponent": 0.7}


def _rows(profile, source="syn"):
    rows = []
    for i, (d, t) in enumerate((d, t) for d in (0.5, 0.25, 0.1, 0.05, 0.02) for t in (256, 2048)):
        p = Point(id=f"{source}{i}", source=source if i % 2 else source + "b", hardware="synthetic",
                  profile="gpu-a100", library="x", path="csr-spmm", op="kernel_fwd", dtype="fp32", tokens=t,
                  in_features=1024, out_features=1024, pattern="unstructured", density=d, speedup=1.0,
                  read="table", where="synthetic")
        rows.append(p.model_copy(update={"speedup": predict(profile, p).predicted}))
    return rows


def test_fit_recovers_known_parameters():
    truth = with_params(load_profile("gpu-a100"), TRUE)
    rows = _rows(truth)
    _, pf = fit_path(load_profile("gpu-a100"), "csr-spmm", rows)
    assert pf.in_sample["median_abs_log_err"] < 0.01
    for key, want in TRUE.items():
        assert abs(pf.params[key] / want - 1) < 0.1, (key, pf.params[key], want)


def test_leave_one_source_out_predicts_held_rows_only_from_the_others():
    truth = with_params(load_profile("gpu-a100"), TRUE)
    fit = fit_profile("gpu-a100", points=_rows(truth))
    assert sorted(fit.sources) == ["syn", "synb"]
    assert len(fit.held_out) == 10 and fit.held_out_stats()["median_abs_log_err"] < 0.05


def test_extend_adds_the_paths_the_data_shows():
    ipu = extend(load_profile("ipu-gc200"))
    assert {"popsparse-static-element", "popsparse-dynamic-block", "popsparse-static-b4"} <= set(ipu.paths)
    assert ipu.paths["popsparse-static"].block_sizes == (16,)
    assert dataclasses.asdict(extend(load_profile("gpu-a100")).paths["bsr-fp32"])["dtypes"] == ("fp32",)
