"""Effects the published fit models beyond one efficiency curve per path (issue 16): the host time of an
eagerly dispatched call, and fp16/fp32 fractions shared through the device's dtype ratio."""
import dataclasses

import pytest

from accelsim.errors import UserError
from accelsim.hardware import kernel_time, load_profile, with_params
from accelsim.kernels.published import COLUMNS, Point, load_points
from accelsim.kernels.published_fit import extend, fit_path, fit_profile, share_dtype_ratios
from accelsim.kernels.published_validate import predict


def _a100_with_dispatch(seconds: float):
    prof = load_profile("gpu-a100")
    spec = dataclasses.replace(prof.paths["2:4-sparse-tc"], dispatch_overhead_s=seconds)
    return dataclasses.replace(prof, paths={**prof.paths, "2:4-sparse-tc": spec})


def test_eager_call_takes_at_least_the_host_time_and_only_when_eager():
    prof = _a100_with_dispatch(150e-6)
    args = (prof, "matmul", 1, 4096, 4096, 0.5, "2:4", "fp16")
    direct = kernel_time(*args, path="2:4-sparse-tc")
    assert direct < 150e-6  # a one-token product is far shorter than the host's dispatch
    assert kernel_time(*args, path="2:4-sparse-tc", eager=True) == pytest.approx(150e-6)
    big = (prof, "matmul", 8192, 8192, 8192, 0.5, "2:4", "fp16")
    assert kernel_time(*big, path="2:4-sparse-tc", eager=True) == kernel_time(*big, path="2:4-sparse-tc")


def test_dispatch_column_is_optional_and_checked(tmp_path):
    row = "a,src,A100,gpu-a100,lib,current,2:4-sparse-tc,kernel_fwd,fp16,64,128,256,,,,2:4,,0.5,2e-3,1e-3,2.0,table,x,"
    f = tmp_path / "points.csv"
    # a row written before the column existed (one field short) loads as "not stated"
    f.write_text(",".join(COLUMNS) + "\n" + row + "\n" + row.replace("a,", "b,", 1) + ",eager\n")
    a, b = load_points(f)
    assert (a.dispatch, b.dispatch) == ("", "eager")
    f.write_text(",".join(COLUMNS) + "\n" + row + ",jit\n")
    with pytest.raises(UserError, match="field 'dispatch'"):
        load_points(f)
    assert {p.dispatch for p in load_points()} <= {"", "eager", "compiled", "relayout", "fastest"}


def _row(i, tokens, dispatch, truth, source="syn"):
    p = Point(id=f"{source}{i}", source=source, hardware="synthetic", profile="gpu-a100", library="x",
              path="2:4-sparse-tc", op="kernel_fwd", dtype="fp16", tokens=tokens, in_features=4096,
              out_features=4096, pattern="2:4", density=0.5, speedup=1.0, read="table", where="synthetic",
              dispatch=dispatch)
    return p.model_copy(update={"speedup": predict(truth, p).predicted})


def test_fit_recovers_the_dispatch_overhead_from_eager_rows_only():
    truth = with_params(_a100_with_dispatch(80e-6), {"paths.2:4-sparse-tc.peak_fraction.fp16": 0.4})
    rows = [_row(i, t, d, truth) for i, (t, d) in enumerate(
        (t, d) for t in (1, 64, 512, 4096) for d in ("", "eager"))]
    _, pf = fit_path(load_profile("gpu-a100"), "2:4-sparse-tc", rows)
    assert pf.params["paths.2:4-sparse-tc.dispatch_overhead"] == pytest.approx(80e-6, rel=0.1)
    assert pf.params["paths.2:4-sparse-tc.peak_fraction.fp16"] == pytest.approx(0.4, rel=0.1)
    # rows whose kernels all outlast the host time say nothing about it: it is not reported as fitted
    _, pf = fit_path(load_profile("gpu-a100"), "2:4-sparse-tc", [r for r in rows if r.tokens == 4096])
    assert "paths.2:4-sparse-tc.dispatch_overhead" not in pf.params


def _ipu_rows(truth, path, dtypes, block, source):
    rows = []
    for dt in dtypes:
        for i, d in enumerate((1 / 4, 1 / 8, 1 / 16, 1 / 32)):
            p = Point(id=f"{source}-{path}-{dt}-{i}", source=source, hardware="synthetic", profile="ipu-gc200",
                      library="x", path=path, op="kernel_fwd", dtype=dt, tokens=1024, in_features=4096,
                      out_features=4096, pattern="block" if block else "unstructured", block=block, density=d,
                      speedup=1.0, read="table", where="synthetic")
            rows.append(p.model_copy(update={"speedup": predict(truth, p).predicted}))
    return rows


def test_a_path_seen_in_one_dtype_gets_the_others_through_the_device_ratio():
    # truth: every PopSparse path reaches 2x its fp32 fraction in fp16; the block-8 path is only seen in fp16
    start = extend(load_profile("ipu-gc200"))
    truth = with_params(start, {
        "paths.popsparse-static-element.peak_fraction.fp16": 0.16, "paths.popsparse-static-element.peak_fraction.fp32": 0.08,
        "paths.popsparse-dynamic.peak_fraction.fp16": 0.04, "paths.popsparse-dynamic.peak_fraction.fp32": 0.02,
        "paths.popsparse-static-b8.peak_fraction.fp16": 0.36, "paths.popsparse-static-b8.peak_fraction.fp32": 0.18})
    rows = (_ipu_rows(truth, "popsparse-static-element", ("fp16", "fp32"), None, "a")
            + _ipu_rows(truth, "popsparse-dynamic", ("fp16", "fp32"), None, "a")
            + _ipu_rows(truth, "popsparse-static-b8", ("fp16",), 8, "b"))
    fitted = start
    fits = []
    for path in ("popsparse-static-element", "popsparse-dynamic", "popsparse-static-b8"):
        fitted, pf = fit_path(fitted, path, [r for r in rows if r.path == path])
        fits.append(pf)
    shared = share_dtype_ratios(fitted, fits, rows)
    assert shared.paths["popsparse-static-b8"].peak_fraction["fp32"] == pytest.approx(0.18, rel=0.1)
    assert "paths.popsparse-static-b8.peak_fraction.fp32" in fits[-1].derived
    # an fp32 block-8 row nobody fitted is now predicted from the fp16 rows and the device ratio
    (probe,) = _ipu_rows(truth, "popsparse-static-b8", ("fp32",), 8, "c")[:1]
    assert abs(predict(shared, probe).log_err) < 0.1
    # and the whole-profile fit does the same inside every leave-one-source-out fold
    fit = fit_profile("ipu-gc200", points=rows + [probe], base=load_profile("ipu-gc200"))
    assert max(abs(h.log_err) for h in fit.held_out if h.source == "c") < 0.1
