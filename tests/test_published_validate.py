"""accelsim validate --published: predictions forced onto the row's own path family."""
import json
import math

from typer.testing import CliRunner

from accelsim.app.cli import app
from accelsim.hardware import load_profile
from accelsim.kernels.published import Point, load_points
from accelsim.kernels.published_validate import MIN_CLUSTERS, cluster_interval, error_stats, predict


def _point(**kw):
    base = dict(id="t", source="s", hardware="A100", profile="gpu-a100", library="x", path="csr-spmm",
                op="kernel_fwd", dtype="fp32", tokens=1024, in_features=4096, out_features=4096,
                pattern="unstructured", density=0.25, speedup=0.4, read="table", where="w")
    base.update(kw)
    return Point(**base)


def test_family_forced_prediction_can_be_a_slowdown():
    # cuSPARSE CSR at 75 % sparsity is slower than dense fp32; the fastest-path rule would say 1.0x
    pred = predict("gpu-a100", _point())
    assert pred.predicted is not None and pred.predicted < 1.0 and not pred.no_path
    assert math.isclose(pred.log_err, math.log(pred.predicted / 0.4))


def test_missing_family_path_is_the_dense_fallback_and_flagged():
    pred = predict("gpu-a100", _point(path="no-such-path"))
    assert pred.no_path and pred.predicted == 1.0


def test_whole_model_rows_are_not_guessed():
    pred = predict("gpu-a100", _point(op="model_inference", tokens=None, in_features=None, out_features=None))
    assert pred.predicted is None and "whole-model" in pred.why


def test_best_over_tokens_and_stats():
    pred = predict("gpu-a100", _point(tokens="best"))
    assert 0 < pred.predicted < 1.0
    stats = error_stats([pred, predict("gpu-a100", _point(speedup=pred.predicted))])
    assert stats["n"] == 2 and 0 < stats["within_1.35x"] <= 1.0


def test_held_out_interval_resamples_whole_sources():
    """The interval treats a source's rows as one unit: twenty sources that each mispredict all their rows
    alike leave the share within 1.35x uncertain, however many rows each holds; too few sources, no interval."""
    from types import SimpleNamespace

    def rows(per_source):
        good = [0.05] * 10 + [0.6] * 10  # half the sources predicted well, half 1.8x off
        return [SimpleNamespace(source=f"s{i}", log_err=e, no_path=False)
                for i, e in enumerate(good) for _ in range(per_source)]

    few, many = (cluster_interval(rows(n), lambda x: x.source) for n in (1, 50))
    assert few["resampled"] == many["resampled"] == 20 and few["level"] == 0.9
    for ci in (few, many):
        lo, hi = ci["within_1.35x"]
        assert lo < 0.5 < hi and hi - lo > 0.25  # 50 rows per source do not narrow it: the sources vary
    assert many["within_1.35x"] == few["within_1.35x"]
    # one error everywhere: nothing varies between sources, so the interval closes on the figure
    flat = cluster_interval([SimpleNamespace(source=f"s{i}", log_err=0.1, no_path=False) for i in range(8)],
                            lambda x: x.source)
    assert flat["median_abs_log_err"] == [0.1, 0.1] and flat["within_1.35x"] == [1.0, 1.0]
    assert cluster_interval(rows(3)[: 3 * (MIN_CLUSTERS - 1)], lambda x: x.source) == {}


def test_cli_published_writes_report(tmp_path):
    res = CliRunner().invoke(app, ["validate", "--published", "--hw", "gpu-h100", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "published_validation.json").read_text())
    assert set(rep["profiles"]) == {"gpu-h100"} and rep["overall"]["n"] + rep["superseded"]["n"] >= 4
    assert (tmp_path / "published_validation.png").stat().st_size > 0


def test_hw_show_lists_the_rows_each_sparse_path_was_fitted_to():
    res = CliRunner().invoke(app, ["hw", "show", "gpu-a100"], env={"COLUMNS": "250"})
    assert res.exit_code == 0, res.output
    for needle in ("dataset rows each sparse path was fitted to", "bsr-fp32", "pop-gpu-bsr16_fp32-d16",
                   "2:4-sparse-tc", "tut-linear-3072x10240x3072", "csr-spmm", "held-out",
                   "held out by author group"):
        assert needle in res.output, needle
    # each path with its own held-out error, as the profile's fitted: record keeps it
    rec = load_profile("gpu-a100").fitted["paths"]["2:4-sparse-tc"]
    assert rec["held_out_n"] == sum(1 for p in load_points() if p.profile == "gpu-a100" and p.path == "2:4-sparse-tc"
                                    and p.software == "current" and (p.kernel or p.model))
    assert f"{rec['held_out_within_1.35x']:.0%} of {rec['held_out_n']} within 1.35x" in res.output


def test_bert_inference_rows_are_costed_as_a_forward_pass():
    from accelsim.kernels.published_models import bert_forward_ops

    ops = bert_forward_ops("bert-base", 4, 384, density=0.5)
    assert sum(op.kind == "linear" and op.sparse for op in ops) == 12 * 6  # the encoder's nn.Linear layers

    def row(batch, speedup, dispatch="eager"):
        return _point(op="model_inference", tokens=batch * 384, in_features=None, out_features=None,
                      model="bert-base", batch=batch, seq_len=384, pattern="2:4", density=0.5, dtype="fp16",
                      path="2:4-sparse-tc", speedup=speedup, dispatch=dispatch)

    # the tutorial's eager BERT-base: 2:4 slower than dense at batch 4 (0.71x), faster at 256 (1.16x);
    # the fitted A100 profile reproduces both directions
    assert predict("gpu-a100", row(4, 0.71)).predicted < 1.0 < predict("gpu-a100", row(256, 1.16)).predicted
    # compiled, the same batch-4 pass has no per-call host time and is no slowdown (published 1.02x)
    assert predict("gpu-a100", row(4, 1.02, "compiled")).predicted > 0.9


def test_vit_inference_rows_are_torchvision_vits_with_sparse_mlps():
    import pytest

    from accelsim.errors import UserError
    from accelsim.kernels.published_models import vit_forward_ops

    # torchvision's model docs: vit_b_16 17.56 and vit_h_14 167.29 GFLOPS (multiply-adds) per 224 px image
    for model, seq, gmacs in (("vit-b-16", 197, 17.56), ("vit-h-14", 257, 167.29)):
        ops = vit_forward_ops(model, 1, seq)
        macs = sum(op.flops_dense for op in ops if op.kind in ("linear", "attn_matmul")) / 2e9
        assert abs(macs / gmacs - 1) < 0.01, (model, macs)
    sparse = [op for op in vit_forward_ops("vit-b-16", 2, 197, density=0.1) if op.sparse]
    assert len(sparse) == 12 * 2 and all(op.name.split(".")[1] in ("mlp0", "mlp3") for op in sparse)
    with pytest.raises(UserError, match="197 tokens"):
        vit_forward_ops("vit-b-16", 2, 196)

    # a block-64 ViT row (SuperBlock) is costed on the fitted block-64 path: a speedup, as published (1.44x)
    row = _point(op="model_inference", tokens=256 * 197, in_features=None, out_features=None, model="vit-b-16",
                 batch=256, seq_len=197, pattern="block", block=64, density=0.1, dtype="bf16", path="bsr-b64",
                 speedup=1.44, dispatch="compiled")
    pred = predict("gpu-a100", row)
    assert pred.predicted is not None and not pred.no_path and pred.predicted > 1.0


def test_encoder_rows_are_the_encoder_stack_alone():
    # FasterTransformer's BERT op: hidden states in and out, no embeddings, no QA head
    from accelsim.kernels.published_models import bert_forward_ops

    full, enc = bert_forward_ops("bert-base", 8, 128), bert_forward_ops("bert-base-encoder", 8, 128)
    names = {op.name for op in full} - {op.name for op in enc}
    assert names == {"embeddings", "embeddings.layernorm", "qa_head"}
    assert len(full) == len(enc) + 3


def test_fastest_dispatch_runs_each_product_on_the_faster_of_sparse_and_dense():
    # a library that timed both GEMMs per shape (FasterTransformer's gemm test) never runs a slower sparse one
    # at the kernel level, so a forced 2:4 slowdown (a 32-token product, 0.93x-like) is capped at 1.0x
    def row(dispatch, op="kernel_fwd", **kw):
        base = dict(tokens=32, in_features=768, out_features=768, pattern="2:4", density=0.5, dtype="fp16",
                    path="2:4-sparse-tc", speedup=1.0, dispatch=dispatch, op=op)
        base.update(kw)
        return _point(**base)

    forced, fastest = predict("gpu-a100", row("")), predict("gpu-a100", row("fastest"))
    assert forced.predicted < 1.0 and math.isclose(fastest.predicted, 1.0)
    big = dict(tokens=16384, in_features=4096, out_features=4096)
    assert math.isclose(predict("gpu-a100", row("", **big)).predicted,
                        predict("gpu-a100", row("fastest", **big)).predicted)  # sparse wins: same as forced
    model = dict(op="model_inference", tokens=32, in_features=None, out_features=None, model="bert-base-encoder",
                 batch=1, seq_len=32)
    assert predict("gpu-a100", row("", **model)).predicted < predict("gpu-a100", row("fastest", **model)).predicted
    assert math.isclose(predict("gpu-a100", row("fastest", **model)).predicted, 1.0, rel_tol=0.02)


def test_mlp_fwd_is_the_two_forward_products():
    # an inference FFN in -> out -> in (pytorch/ao#2012 rows): dense and sparse time are the two products' sums
    from accelsim.hardware import kernel_time, load_profile

    prof = load_profile("gpu-h100")
    p = _point(profile="gpu-h100", op="mlp_fwd", dtype="fp8", tokens=512, in_features=1024, out_features=4096,
               pattern="2:4", density=0.5, path="2:4-sparse-tc", speedup=1.3)
    shapes = ((512, 1024, 4096), (512, 4096, 1024))
    dense = sum(kernel_time(prof, "matmul", *s, 1.0, "unstructured", "fp8") for s in shapes)
    sparse = sum(kernel_time(prof, "matmul", *s, 0.5, "2:4", "fp8", path="2:4-sparse-tc") for s in shapes)
    pred = predict(prof, p)
    assert not pred.no_path and math.isclose(pred.predicted, dense / sparse, rel_tol=1e-9)


def test_int8_rows_are_recorded_but_not_predicted():
    # no bundled profile has an int8 peak: an int8 kernel row is listed as not predicted, never guessed
    pred = predict("cpu-xeon-8380", _point(profile="cpu-xeon-8380", dtype="int8", path="", pattern="block",
                                           block=16, density=0.15, speedup=1.6))
    assert pred.predicted is None and "int8" in pred.why


def test_bundled_profile_without_rows_is_reported_unvalidated(tmp_path):
    from accelsim.errors import UserError
    from accelsim.kernels.published import COLUMNS
    from accelsim.kernels.published_validate import validate_published

    f = tmp_path / "points.csv"
    f.write_text(",".join(COLUMNS) + "\n" + "a,src,H100,gpu-h100,lib,current,2:4-sparse-tc,kernel_fwd,fp16,4096,"
                 "4096,4096,,,,2:4,,0.5,,,1.2,table,x,\n")
    rep = validate_published(["fpga-u280", "gpu-h100"], points_path=f)
    assert rep["unvalidated"] == ["fpga-u280"] and rep["profiles"]["fpga-u280"]["n"] == 0
    assert rep["profiles"]["gpu-h100"]["n"] == 1
    try:
        validate_published(["no-such-profile"], points_path=f)
    except UserError as err:
        assert "no-such-profile" in str(err)
    else:
        raise AssertionError("an unknown profile name must be refused")


def test_block64_path_runs_on_block64_patterns_a_trace_cannot_carry():
    # Triton BSR / SuperBlock's block 64 is a kernel block size, not a trace one: the fitted bsr-b64 path runs a
    # synthetic block-64 pattern, and never a trace pattern row (which has no block64_frac)
    from accelsim.hardware import kernel_time, load_profile, op_cost, synthetic_pattern
    from accelsim.workload import Op

    prof = load_profile("gpu-a100")
    assert prof.paths["bsr-b64"].block_sizes == (64,) and prof.paths["bsr"].block_sizes == (32,)
    pat = synthetic_pattern(3072, 768, 0.1, "block64")
    assert abs(pat["block64_frac"] - 0.1) < 1e-9 and abs(pat["block32_frac"] - 0.1) < 1e-9
    flops = 2.0 * 50432 * 768 * 3072
    op = Op("mlp0", "linear", "fwd", m=50432, k=768, n=3072, density=0.1, sparse=True, flops_dense=flops,
            flops=0.1 * flops)
    assert op_cost(prof, op, pat, dtype="bf16").path == "bsr-b64"
    row = {k: v for k, v in pat.items() if k != "block64_frac"}
    assert op_cost(prof, op, row, dtype="bf16").path != "bsr-b64"
    dense = kernel_time(prof, "matmul", 50432, 768, 3072, 1.0, "unstructured", "bf16")
    assert kernel_time(prof, "matmul", 50432, 768, 3072, 0.1, "block64", "bf16", path="bsr-b64") < dense
