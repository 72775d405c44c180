"""The trainer's optimizer (kernels.optim), its N:M mask selection (kernels.cpu.nm) and the vector-op rows that price them."""
from pathlib import Path

import pytest
import torch

from accelsim.kernels import vector_ops
from accelsim.kernels.optim import adamw, fused_available, implementation
from accelsim.workload import MASK_APPLY, OPTIMIZER


def _params(seed=0):
    torch.manual_seed(seed)
    params = [torch.nn.Parameter(torch.randn(64, 32)), torch.nn.Parameter(torch.randn(32))]
    keep = (torch.rand(64, 32) < 0.1).float()
    params[0].data.mul_(keep)  # pruned weights: exact-zero gradients and moments, as in a sparse run
    return params, keep


def test_adamw_is_fused_on_cpu_and_updates_as_torchs_default():
    a, keep = _params()
    b, _ = _params()
    fused, plain = adamw(a, 1e-2, 0.01), torch.optim.AdamW(b, lr=1e-2, weight_decay=0.01)
    assert fused_available(a) and implementation(fused) == "fused"
    assert implementation(plain) == "loop"
    for step in range(5):
        torch.manual_seed(100 + step)
        grads = [torch.randn_like(p) for p in a]
        grads[0].mul_(keep)
        for params, opt in ((a, fused), (b, plain)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert torch.all(a[0][keep == 0] == 0)  # a pruned weight stays exactly zero


def test_adamw_falls_back_where_torch_cannot_fuse(monkeypatch):
    params, _ = _params()
    monkeypatch.setattr("torch.utils._foreach_utils._get_fused_kernels_supported_devices", lambda: ["cuda"])
    assert not fused_available(params)
    assert implementation(adamw(params, 1e-3, 0.0)) == "loop"
    assert not fused_available([torch.zeros(3, dtype=torch.int32)])  # integer tensors never fuse


def test_optimizer_and_mask_apply_rows_stream_past_the_cache(monkeypatch):
    monkeypatch.setattr("accelsim.kernels.probe.l3_size", lambda: 8 << 20)
    assert vector_ops.past_the_cache(4 << 20) == 4
    assert vector_ops.past_the_cache(64 << 20) == 1
    row = vector_ops.mask_apply_row(repeats=1)
    rows, cols = vector_ops.EXECUTION_SHAPE
    count = vector_ops.past_the_cache(12 * rows * cols)
    assert row["role"] == MASK_APPLY and row["elements"] == 2 * count * rows * cols and row["fwd_s"] > 0
    # the optimizer rows: whole BERT updates, a size table; a model whose state (x 16 B) the cache would hold is
    # left out (bert-tiny's 1.5 M parameters under twice a 16 MiB cache, bert-mini's 5.5 M past it)
    monkeypatch.setattr("accelsim.kernels.probe.l3_size", lambda: 16 << 20)
    monkeypatch.setattr(vector_ops, "OPTIMIZER_MODELS", ("bert-tiny", "bert-mini"))
    opt = vector_ops.optimizer_rows(repeats=1)
    assert set(opt) == {"optimizer bert-mini"}
    (row,) = opt.values()
    assert row["role"] == OPTIMIZER and row["fwd_s"] > 0 and row["sized"] and row["elements"] == 5_462_784
    assert vector_ops.element_time(opt)[OPTIMIZER]["fwd"] == pytest.approx(row["fwd_s"] / row["elements"])


def test_a_checkpoint_of_the_loop_resumes_fused_with_its_state():
    from accelsim.kernels.optim import load_state

    a, keep = _params()
    loop = torch.optim.AdamW(a, lr=1e-2, weight_decay=0.01)
    for p in a:
        p.grad = torch.ones_like(p)
    loop.step()
    saved = loop.state_dict()
    b, _ = _params()
    for x, y in zip(b, a):
        x.data.copy_(y.data)
    resumed = adamw(b, 1e-2, 0.01)
    load_state(resumed, saved)
    assert implementation(resumed) == "fused"
    assert float(resumed.state[b[0]]["step"]) == 1.0  # the loop's step count and moments came along
    torch.testing.assert_close(resumed.state[b[0]]["exp_avg_sq"], loop.state[a[0]]["exp_avg_sq"])
    for params, opt in ((a, loop), (b, resumed)):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4), (3, 4), (4, 8), (1, 2), (4, 16)])
def test_nm_selector_keeps_the_n_largest_of_every_group(n, m):
    from accelsim.kernels.cpu.nm import NMSelector

    torch.manual_seed(n * 100 + m)
    w = torch.randn(24, 4 * m)
    w[0, :m] = 0.5  # a group of ties: still exactly n kept
    w[1, :m] = -w[1, :m].abs()  # magnitudes, not signs
    sel = NMSelector(w, n, m)
    mask = sel(w)
    groups = w.abs().view(24, -1, m)
    kept = mask.view(24, -1, m)
    assert bool((kept.sum(-1) == n).all())
    # every kept magnitude is at least every dropped one of its group
    low_kept = groups.masked_fill(~kept, float("inf")).amin(-1)
    high_dropped = groups.masked_fill(kept, float("-inf")).amax(-1)
    assert bool((low_kept >= high_dropped).all())
    if m <= 8:  # ranked by comparisons: a tie goes to the lower position
        assert kept[0, 0].tolist() == [True] * n + [False] * (m - n)
    assert sel(w.neg()) is mask and torch.equal(sel(w), mask)  # one buffer, the same answer again


def test_measured_element_times_are_written_into_a_profile_with_their_source(tmp_path):
    from accelsim.hardware import load_profile
    from accelsim.kernels.profile_edit import write_element_times

    import accelsim.hwconfigs

    path = tmp_path / "mine.yaml"
    path.write_text("# calibrated here\n" + (Path(accelsim.hwconfigs.__file__).parent / "cpu-zen3.yaml").read_text())
    write_element_times(path, {OPTIMIZER: {"fwd": 6e-10}, MASK_APPLY: {"fwd": 1.3e-10}}, "optimizer.json: measured")
    prof = load_profile(str(path))
    assert prof.paths["vector"].element_time_s[OPTIMIZER]["fwd"] == pytest.approx(6e-10)
    assert prof.paths["vector"].element_time_s[MASK_APPLY]["fwd"] == pytest.approx(1.3e-10)
    assert prof.sources[f"paths.vector.element_time.{MASK_APPLY}"] == "optimizer.json: measured"
    assert path.read_text().startswith("# calibrated here\n")
