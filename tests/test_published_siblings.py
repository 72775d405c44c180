"""Issue 16's published fit, IPU side: a per-call rearrangement paid only by rows whose dense operand reached the
op in the framework's layout (``dispatch = relayout``), and PopSparse paths without rows fitted to what their
fitted siblings predict (kernels/published_siblings.py)."""
import dataclasses
import math

import pytest

from accelsim.hardware import kernel_time, load_profile, with_params
from accelsim.kernels import published_siblings as siblings
from accelsim.kernels.published import Point
from accelsim.kernels.published_fit import extend, fit_path, free_params
from accelsim.kernels.published_validate import predict


def _ipu():
    return extend(load_profile("ipu-gc200"))


def _rows(truth, path, block, tokens, dispatch, densities=(1 / 8, 1 / 16, 1 / 32, 1 / 64), dtype="fp16"):
    out = []
    for d in densities:
        p = Point(id=f"{path}-{tokens}-{dispatch}-{d:g}-{dtype}", source=dispatch or "kernel", hardware="synthetic",
                  profile="ipu-gc200", library="x", path=path, op="kernel_fwd", dtype=dtype, tokens=tokens,
                  in_features=4096, out_features=4096, pattern="block" if block > 1 else "unstructured",
                  block=block if block > 1 else None, density=d, speedup=1.0, read="table", where="synthetic",
                  dispatch=dispatch)
        out.append(p.model_copy(update={"speedup": predict(truth, p).predicted}))
    return out


def test_relayout_is_added_to_sparse_products_only_when_asked():
    prof = with_params(_ipu(), {"paths.popsparse-static.relayout_overhead": 200e-6})
    args = (prof, "matmul", 2048, 4096, 4096, 1 / 16, "block16", "fp16")
    plain = kernel_time(*args, path="popsparse-static")
    assert kernel_time(*args, path="popsparse-static", relayout=True) == pytest.approx(plain + 200e-6)
    dense = kernel_time(prof, "matmul", 2048, 4096, 4096, 1.0, "unstructured", "fp16")
    assert kernel_time(prof, "matmul", 2048, 4096, 4096, 1.0, "unstructured", "fp16", relayout=True) == dense


def test_fit_tells_the_rearrangement_from_the_kernel_rate():
    truth = with_params(_ipu(), {"paths.popsparse-static.relayout_overhead": 200e-6,
                                 "paths.popsparse-static.peak_fraction.fp16": 0.3})
    kernel = _rows(truth, "popsparse-static", 16, 1024, "")
    relayout = _rows(truth, "popsparse-static", 16, 2048, "relayout")
    assert relayout[0].speedup < 0.5 * kernel[-1].speedup  # the rows differ by the rearrangement only
    _, pf = fit_path(_ipu(), "popsparse-static", kernel + relayout)
    assert pf.params["paths.popsparse-static.relayout_overhead"] == pytest.approx(200e-6, rel=0.15)
    assert pf.params["paths.popsparse-static.peak_fraction.fp16"] == pytest.approx(0.3, rel=0.15)
    # rows timed with the rearrangement alone leave the efficiency curve's shape to the profile: at one product
    # size a per-call cost and d_half are the same curve
    keys = free_params(_ipu(), "popsparse-static", relayout)
    assert "paths.popsparse-static.relayout_overhead" in keys
    assert not any(k.endswith((".d_half", ".exponent")) for k in keys)
    # and a kernel-only row set has no rearrangement to fit
    assert not any(k.endswith(".relayout_overhead") for k in free_params(_ipu(), "popsparse-static", kernel))


def _probe(path, block, tokens, features, d, dtype="fp16"):
    return siblings._point(path, block, dtype, tokens, features, d)


def _ends_fitted():
    # block 1 at 8 % of the fp16 peak, block 16 at 40 %: far from the hand-set blocks 4 and 8
    return with_params(_ipu(), {"paths.popsparse-static-element.peak_fraction.fp16": 0.08,
                                "paths.popsparse-static.peak_fraction.fp16": 0.4})


def test_a_block_size_between_two_fitted_ones_is_fitted_to_their_interpolation():
    start = _ends_fitted()
    filled = siblings.fill(start, {"popsparse-static-element", "popsparse-static"}, fit_path)
    for path, b in (("popsparse-static-b4", 4), ("popsparse-static-b8", 8)):
        w = math.log(b) / math.log(16)
        for tokens, d in ((1024, 1 / 8), (64, 1 / 32), (4096, 1 / 16)):
            lo = predict(start, _probe("popsparse-static-element", 1, tokens, 4096, d)).predicted
            hi = predict(start, _probe("popsparse-static", 16, tokens, 4096, d)).predicted
            got = predict(filled, _probe(path, b, tokens, 4096, d)).predicted
            assert got == pytest.approx(lo ** (1 - w) * hi ** w, rel=0.2), (path, tokens, d)
    # no extrapolation: block 1 below the fitted blocks 4 and 16 keeps its start
    kept = siblings.fill(start, {"popsparse-static-b4", "popsparse-static"}, fit_path)
    assert kept.paths["popsparse-static-element"] == start.paths["popsparse-static-element"]


def test_dynamic_block_takes_the_dynamic_over_static_ratio_of_block_1():
    start = with_params(_ends_fitted(), {"paths.popsparse-dynamic.peak_fraction.fp16": 0.03})
    fitted = {"popsparse-static-element", "popsparse-static", "popsparse-dynamic"}
    filled = siblings.fill(start, fitted, fit_path)
    assert filled.paths["popsparse-dynamic-block"] != start.paths["popsparse-dynamic-block"]
    for tokens, d in ((1024, 1 / 8), (4096, 1 / 32)):
        ratio = (predict(start, _probe("popsparse-dynamic", 1, tokens, 4096, d)).predicted
                 / predict(start, _probe("popsparse-static-element", 1, tokens, 4096, d)).predicted)
        static16 = predict(start, _probe("popsparse-static", 16, tokens, 4096, d)).predicted
        got = predict(filled, _probe("popsparse-dynamic-block", 16, tokens, 4096, d)).predicted
        assert got == pytest.approx(static16 * ratio, rel=0.2)
    # without a block size fitted in both modes there is no ratio to carry: the path keeps its start
    alone = siblings.fill(start, {"popsparse-static-element", "popsparse-static"}, fit_path)
    assert alone.paths["popsparse-dynamic-block"] == start.paths["popsparse-dynamic-block"]
