"""The block-size law of one block-sparse kernel (kernels/published_blocks.py, issue 16): the cost term, its
synthetic recovery by the published fit, and its transfer to a block size only a held-out source measured."""
import dataclasses

import pytest

from accelsim.hardware import kernel_time, load_profile, with_params
from accelsim.kernels.published import Point
from accelsim.kernels.published_blocks import free_fractions, share_siblings, start
from accelsim.kernels.published_fit import extend, fit_profile
from accelsim.kernels.published_validate import predict

BLOCK_PATH = {16: "bsr-b16", 32: "bsr", 64: "bsr-b64"}


def _row(block, dtype, density, source="syn", tokens=4096):
    return Point(id=f"{source}-b{block}-{dtype}-{density}", source=source, hardware="synthetic", profile="gpu-a100",
                 library="x", path=BLOCK_PATH[block], op="kernel_fwd", dtype=dtype, tokens=tokens, in_features=4096,
                 out_features=4096, pattern="block", block=block, density=density, speedup=1.0, read="table",
                 where="synthetic")


def _drawn(truth, rows):
    return [p.model_copy(update={"speedup": predict(truth, p).predicted}) for p in rows]


def test_rereads_bind_by_block_size_and_bytes():
    prof = extend(load_profile("gpu-a100"))
    prof = with_params(prof, {f"paths.{p}.block_reread_bandwidth": 1e12 for p in BLOCK_PATH.values()})
    t = {b: kernel_time(prof, "matmul", 4096, 4096, 4096, 0.1, f"block{b}", "fp16", path=BLOCK_PATH[b])
         for b in (16, 64)}
    # fp16 at 2 bytes: 2b / 2 FLOPs per byte re-read, so block 16 streams 4x the bytes of block 64 per FLOP
    flops = 2.0 * 4096 ** 3 * 0.1
    # (plus the weights, X and Y streamed once and the per-call overheads: a few %)
    assert t[16] == pytest.approx(flops * 2 / 32 / 1e12, rel=0.1)
    assert 3.0 < t[16] / t[64] <= 4.0  # block 64's own X, Y and weights weigh more beside its fewer re-reads
    # fp32 (1/16 the peak, twice the bytes): block 64 is bound by its FMAs at the dense path's rate instead
    fp32 = kernel_time(prof, "matmul", 4096, 4096, 4096, 0.1, "block64", "fp32", path="bsr-b64")
    assert fp32 > flops * 4 / 128 / 1e12 * 1.5
    # the term is the path's own: without it the time does not depend on the block's bytes
    plain = dataclasses.replace(prof.paths["bsr-b16"], block_reread_bandwidth_Bps=0.0)
    bare = dataclasses.replace(prof, paths={**prof.paths, "bsr-b16": plain})
    assert kernel_time(bare, "matmul", 4096, 4096, 4096, 0.1, "block16", "fp16", path="bsr-b16") < t[16] / 2


def test_start_is_the_dense_rate_and_fractions_are_fitted_only_beside_a_denser_dtype():
    prof = extend(load_profile("gpu-a100"))
    dense = prof.paths["dense-gemm"]
    for name in BLOCK_PATH.values():
        assert prof.paths[name].peak_fraction["fp16"] == dense.fraction("fp16")
        assert prof.paths[name].block_reread_bandwidth_Bps == prof.level("main").bandwidth_Bps
    assert prof.paths["bsr-fp32"].block_reread_bandwidth_Bps == 0  # cuSPARSE's is another kernel
    assert free_fractions(prof, {"fp16", "fp32"}) == {"fp32"}
    assert free_fractions(prof, {"bf16"}) == set() and free_fractions(prof, {"fp32"}) == set()


def test_fit_recovers_a_bandwidth_per_block_size_and_the_fp32_compute_limit():
    base = extend(load_profile("gpu-a100"))
    true = {"paths.bsr-b16.block_reread_bandwidth": 0.6e12, "paths.bsr.block_reread_bandwidth": 1.2e12,
            "paths.bsr-b64.block_reread_bandwidth": 1.8e12, "paths.bsr-b64.peak_fraction.fp32": 0.6}
    truth = with_params(base, true)
    rows = _drawn(truth, [_row(b, dt, d) for b in (16, 32, 64) for dt in ("fp16", "fp32") for d in (0.4, 0.2, 0.05)])
    fit = fit_profile("gpu-a100", points=rows, base=load_profile("gpu-a100"))
    got = {k: v for pf in fit.paths for k, v in pf.params.items()}
    for key, want in true.items():
        assert got[key] == pytest.approx(want, rel=0.1), key
    assert all(pf.in_sample["median_abs_log_err"] < 0.02 for pf in fit.paths)


def test_a_block_size_only_the_held_out_source_measured_is_predicted_from_the_others():
    # one source timed block 64 in bf16 only (SuperBlock-like), another block 16 and 32 in fp16 (Quansight-like);
    # the kernel streams at one bandwidth: with either held out, its rows come from the other's fitted law
    base = extend(load_profile("gpu-a100"))
    truth = with_params(base, {f"paths.{p}.block_reread_bandwidth": 1.5e12 for p in BLOCK_PATH.values()})
    rows = _drawn(truth, [_row(64, "bf16", d, "a") for d in (0.3, 0.2, 0.1)]
                  + [_row(b, "fp16", d, "b") for b in (16, 32) for d in (0.3, 0.2, 0.1)])
    fit = fit_profile("gpu-a100", points=rows, base=load_profile("gpu-a100"))
    assert fit.held_out_stats()["n"] == 9 and fit.held_out_stats()["median_abs_log_err"] < 0.05
    # which fitted sibling a block path without rows takes its values from: the nearest block size
    prof, took = share_siblings(start(extend(load_profile("gpu-a100"))), {"bsr-b64"})
    assert took == {"bsr-b16": "bsr-b64", "bsr": "bsr-b64"}
