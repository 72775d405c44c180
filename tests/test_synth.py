"""Synthetic traces: valid run directories whose FLOPs, schedules and patterns follow the methods."""
import numpy as np
import pytest

from accelsim.errors import UserError
from accelsim.synth import (BERT_PRESETS, MaskSource, bert_linears, bert_params, erk_densities, synth_sweep,
                            synth_trace)
from accelsim.trace import load_trace
from accelsim.trace_check import check_trace
from accelsim.workload import StepKind, phase_flops, step_ops

TINY = dict(model="bert-tiny", batch_size=2, seq_len=16)


def _rows_at(table, step):
    return [r for r in table.to_pylist() if r["step"] == step]


def _run(tmp_path, method="rigl", sparsity=0.9, steps=40, update_every=10, **kw):
    return load_trace(synth_trace(method=method, sparsity=sparsity, steps=steps, update_every=update_every,
                                  out=tmp_path / method, **{**TINY, **kw}))


def test_rigl_trace_is_a_valid_run(tmp_path):
    t = _run(tmp_path)
    assert t.manifest.synthetic is True and t.manifest.steps == 40
    assert t.steps.num_rows == 40 and t.steps["step"].to_pylist() == list(range(40))
    # trainer convention: a change after step s when (s+1) % 10 == 0 and s+1 < 0.75 * 40 -> s = 9, 19
    changed = np.nonzero(t.steps["mask_changed"].to_numpy(zero_copy_only=False))[0].tolist()
    assert changed == [9, 19]
    sparse = [i for i in t.manifest.layers if i.sparse]
    assert len(sparse) == 12  # 2 blocks x 6 linears
    assert t.patterns.num_rows == 12 * (1 + len(changed))
    assert sorted(set(t.patterns["step"].to_pylist())) == [0, 9, 19]
    summary = check_trace(t.path)  # the lead's validator accepts it
    assert summary.synthetic and summary.mask_changes == 2


def test_schedule_matches_the_trainer(tmp_path):
    from accelsim.trainer.sparsity.schedules import DropGrowSchedule, cosine_drop_fraction

    t = _run(tmp_path, steps=1000, update_every=100)
    sched = DropGrowSchedule(100, 0.3, 0.75 * 1000)
    expected = [s for s in range(1000) if sched.is_update(s)]
    changed = np.nonzero(t.steps["mask_changed"].to_numpy(zero_copy_only=False))[0].tolist()
    assert changed == expected
    rows = _rows_at(t.patterns, expected[2])
    for r in rows:
        assert r["pruned"] == r["grown"] == round(cosine_drop_fraction(expected[2] + 1, 0.3, 750) * r["nnz"])


def test_flop_columns_come_from_the_workload(tmp_path):
    t = _run(tmp_path)
    man = t.manifest
    rows = t.steps.to_pylist()
    dens = {r["layer"]: r["density"] for r in _rows_at(t.patterns, 0)}
    for step, kind in ((3, StepKind()), (9, StepKind(dense_grad=True, mask_update=True))):
        expected = phase_flops(step_ops(man, dens, kind))
        for col, val in expected.items():
            assert rows[step][col] == pytest.approx(val, rel=1e-12), (step, col)
    # RigL computes the dense weight gradient on update steps only
    assert rows[9]["flops_bwd_weight"] == pytest.approx(rows[9]["flops_bwd_weight_dense"])
    assert rows[3]["flops_bwd_weight"] < rows[9]["flops_bwd_weight"]
    assert rows[9]["flops_mask_update"] > 0 and rows[3]["flops_mask_update"] == 0


def test_erk_keeps_the_budget_and_favours_small_layers():
    shapes = {n: s for n, _, s in bert_linears(BERT_PRESETS["bert-base"])}
    d = erk_densities(shapes, 0.9)
    numel = {n: s[0] * s[1] for n, s in shapes.items()}
    assert sum(d[n] * numel[n] for n in shapes) == pytest.approx(0.1 * sum(numel.values()))
    q, ffn = d["bert.encoder.layer.0.attention.self.query"], d["bert.encoder.layer.0.intermediate.dense"]
    assert q / ffn == pytest.approx((2 / 768) / ((768 + 3072) / (768 * 3072)))


def test_erk_makes_overfull_layers_dense_and_resolves():
    shapes = {"small": [4, 4], "big": [256, 256], "bigger": [512, 256]}
    d = erk_densities(shapes, 0.5)
    assert d["small"] == 1.0 and all(0 < d[n] < 1 for n in ("big", "bigger"))
    numel = {n: s[0] * s[1] for n, s in shapes.items()}
    assert sum(d[n] * numel[n] for n in shapes) == pytest.approx(0.5 * sum(numel.values()))


def test_erk_agrees_with_the_trainer():
    from accelsim.trainer.sparsity.distribution import erk

    shapes = {n: s for n, _, s in bert_linears(BERT_PRESETS["bert-mini"])}
    shapes["tiny"] = [8, 4]
    ours = erk_densities(shapes, 0.8)
    theirs = erk({n: tuple(s) for n, s in shapes.items()}, 0.2)
    for n in shapes:
        assert ours[n] == pytest.approx(theirs[n], rel=1e-12)


def test_param_count_matches_transformers():
    from transformers import BertConfig, BertForMaskedLM

    d = BERT_PRESETS["bert-tiny"]
    cfg = BertConfig(vocab_size=d.vocab, hidden_size=d.hidden, num_hidden_layers=d.layers,
                     num_attention_heads=d.heads, intermediate_size=d.intermediate)
    assert bert_params(d) == BertForMaskedLM(cfg).num_parameters()


def test_mask_structures():
    nm = MaskSource("nm", [8, 16], 0, n=2, m=4).mask(64)
    assert (nm.reshape(8, 4, 4).sum(axis=2) == 2).all()
    blk = MaskSource("block", [64, 64], 0, block=16).mask(64 * 64 // 4)
    tiles = blk.reshape(4, 16, 4, 16).any(axis=(1, 3))
    assert tiles.sum() == 4 and blk.sum() == 4 * 256
    src = MaskSource("random", [32, 32], 0)
    big, small = src.mask(500), src.mask(200)
    assert big.sum() == 500 and small.sum() == 200 and not (small & ~big).any()  # nested, as pruning


def test_nm_and_block_traces(tmp_path):
    t = _run(tmp_path, "nm", 0.5)
    assert set(t.patterns["nm_2_4_frac"].to_pylist()) == {1.0}
    assert t.manifest.method["n"] == 2 and t.manifest.method["m"] == 4
    assert all(r["density"] == 0.5 for r in t.patterns.to_pylist())
    # straight-through N:M training needs the dense gradient every step (as the trainer's nm method)
    s = t.steps.to_pylist()
    assert s[3]["flops_bwd_weight"] == pytest.approx(s[3]["flops_bwd_weight_dense"])
    with pytest.raises(UserError, match="sparsity 0.5 for 2:4"):
        _run(tmp_path / "bad", "nm", 0.9)
    b = _run(tmp_path, "block-rigl", 0.75)
    row = b.patterns.to_pylist()[0]
    assert row["block16_frac"] == pytest.approx(row["density"])


def test_gmp_prunes_from_dense(tmp_path):
    t = _run(tmp_path, "gmp", 0.8, steps=2000, update_every=10)
    dens = t.steps["density"].to_numpy()
    assert dens[0] == 1.0 and dens[-1] == pytest.approx(0.2, abs=1e-3)
    assert (np.diff(dens) <= 1e-12).all()
    later = [r for r in t.patterns.to_pylist() if r["step"] > 0]
    assert all(r["grown"] == 0 for r in later) and sum(r["pruned"] for r in later) > 0
    changed = np.nonzero(t.steps["mask_changed"].to_numpy(zero_copy_only=False))[0]
    assert changed.min() >= 200 and changed.max() < 1500  # pruning window 10 % .. 75 %


def test_dense_trace(tmp_path):
    t = _run(tmp_path, "dense", 0.0)
    assert t.patterns.num_rows == 0 and not any(i.sparse for i in t.manifest.layers)
    s = t.steps.to_pylist()[5]
    assert s["flops_fwd"] == s["flops_fwd_dense"] and s["density"] == 1.0


def test_loss_is_marked_synthetic_and_decreases(tmp_path):
    t = _run(tmp_path, steps=3000, update_every=100)
    loss = t.steps["loss"].to_numpy()
    assert loss[:100].mean() > loss[-100:].mean() + 1.0
    assert np.isnan(t.steps["wall_s"].to_numpy()).all()
    assert "synthetic" in t.manifest.extra["loss"]


def test_overwrite_guard_and_sweep(tmp_path):
    _run(tmp_path)
    with pytest.raises(UserError, match="not empty"):
        _run(tmp_path)
    _run(tmp_path, overwrite=True)
    runs = synth_sweep("bert-tiny", [0.5, 0.9], out=tmp_path / "sweep", steps=20, update_every=10,
                       batch_size=2, seq_len=16)
    assert [load_trace(r).manifest.method["sparsity"] for r in runs] == [0.5, 0.9]


def test_bad_arguments(tmp_path):
    with pytest.raises(UserError, match="unknown model"):
        synth_trace("bert-huge", out=tmp_path / "x")
    with pytest.raises(UserError, match="unknown method"):
        synth_trace("bert-tiny", "magic", out=tmp_path / "y")


def test_cli_synth(tmp_path, capsys):
    from accelsim.app.cli import main

    out = tmp_path / "cli"
    main(["trace", "synth", "--model", "bert-tiny", "--method", "set", "--sparsity", "0.8", "--steps", "30",
          "--update-every", "10", "--batch-size", "2", "--seq-len", "16", "--out", str(out)])
    assert "wrote synthetic trace" in capsys.readouterr().out
    assert load_trace(out).manifest.method["name"] == "set"
