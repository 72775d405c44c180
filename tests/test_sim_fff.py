"""Simulating FFF (UltraSparseBERT) traces: every profile, the dense-FFN baseline, routing statistics reaching
the cost model, memoisation, and the fff-table checks of `accelsim trace check`."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from accelsim import trace as tr
from accelsim.errors import UserError
from accelsim.hardware import list_profiles, load_profile, op_cost
from accelsim.sim.api import simulate, simulate_device, simulate_many
from accelsim.sim.device import DeviceSpec
from accelsim.sim.schedule import fff_key, plan_epochs
from accelsim.trace_check import check_trace
from accelsim.workload import COND_MATMUL, StepKind, fff_neurons, phase_flops, step_ops
from accelsim.trainer.data import DataConfig
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, train

PHASES = tr.PHASES


def _cfg(out, ffn, steps=5):
    # tests/test_train.py's tiny_cfg data and model, dense method, FFF feedforward
    return TrainConfig(model="bert-tiny", ffn=ffn, out=str(out), steps=steps, batch_size=4, lr=1e-3, seed=3,
                       eval_every=5, eval_batches=1, checkpoint_every=5, threads=1,
                       data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                       sparsity=SparsityConfig(method="dense", sparsity=0.0))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """fff:1x4 trains path-only ("gather"); fff:1x3 visits 4 of 15 neurons, above the trainer's gather
    threshold, so it computes every neuron and masks ("masked"): the same FLOPs as the dense FF."""
    root = tmp_path_factory.mktemp("fff")
    return {spec: train(_cfg(root / spec.replace(":", "_"), spec), progress=False) for spec in ("fff:1x4", "fff:1x3")}


def _flop_ratio(run):
    s = tr.load_trace(run).steps
    return sum(s[f"flops_{p}_dense"].to_numpy().sum() for p in PHASES) / \
        sum(s[f"flops_{p}"].to_numpy().sum() for p in PHASES)


def test_fff_traces_simulate_on_every_bundled_profile(runs):
    for spec, run in runs.items():
        for r in simulate_many(run, list_profiles()):
            assert np.isfinite(r.time_s) and r.time_s > 0 and np.isfinite(r.speedup) and r.speedup > 0, r.hardware
            assert r.by_kind["cond_matmul"]["time_s"] > 0
            cond_paths = {p for name, ps in r.paths.items() if ".fff_" in name for p in ps}
            profile = load_profile(r.hardware)
            assert cond_paths and cond_paths <= {n for n, s in profile.paths.items()
                                                 if s.pattern in ("dense", "conditional")}
            if spec == "fff:1x3":  # masked training computes every neuron: only the dense path can run it
                assert {profile.paths[p].pattern for p in cond_paths} == {"dense"}


def test_ideal_speedup_is_exactly_the_flop_ratio_against_the_dense_ffn(runs):
    gather = simulate(runs["fff:1x4"], "ideal")
    ratio = _flop_ratio(runs["fff:1x4"])
    assert ratio > 1 and gather.speedup > 1
    assert gather.speedup == pytest.approx(ratio, rel=1e-12)
    masked = simulate(runs["fff:1x3"], "ideal")  # all neurons computed: no saving, exactly
    assert _flop_ratio(runs["fff:1x3"]) == pytest.approx(1.0, rel=1e-12)
    assert masked.speedup == pytest.approx(1.0, rel=1e-12)


def test_dense_baseline_is_the_dense_ffn_of_equal_width(runs):
    t = tr.load_trace(runs["fff:1x4"])
    man = t.manifest
    W, T, H = fff_neurons(man.model["ffn"]), man.batch_size * man.model["seq_len"], man.model["hidden"]
    run_ops = step_ops(man, {}, StepKind(sparse_compute=False))  # what the FFF run itself does
    dense_ops = step_ops(man, {}, StepKind(sparse_compute=False, conditional=False))
    assert not any(o.kind == COND_MATMUL for o in dense_ops)
    ffn = [o for o in dense_ops if o.role in ("ffn_in", "ffn_out")]
    assert len(ffn) == 3 * 2 * man.model["layers"]
    assert {(o.m, o.k, o.n) for o in ffn if o.phase == "fwd"} == {(T, H, W), (T, W, H)}
    assert all(o.kind == "linear" and not o.sparse and o.flops == 2 * T * H * W for o in ffn)
    gelu = {o.phase: o.elements for o in dense_ops if o.role == "gelu" and o.block == 0}
    assert gelu["fwd"] == T * W  # the activation of every neuron
    # the dense FFN does exactly the FLOPs the trace lists as the dense equivalent of the FFF run's
    pd, pr = phase_flops(dense_ops), phase_flops(run_ops)
    for ph in PHASES:
        assert pd[f"flops_{ph}"] == pytest.approx(pr[f"flops_{ph}_dense"], rel=1e-12)
        assert pr[f"flops_{ph}_dense"] == pytest.approx(float(t.steps[f"flops_{ph}_dense"][0].as_py()), rel=1e-12)


def _spy_simulate(run, profile="wafer-wse2", memoize=True):
    seen = []
    prof = load_profile(profile)

    def cost(op, pattern):
        seen.append((op, pattern))
        return op_cost(prof, op, pattern)
    return simulate_device(tr.load_trace(run), DeviceSpec.from_profile(prof), cost, memoize=memoize), seen


def test_routing_statistics_reach_the_cost_model(runs):
    t = tr.load_trace(runs["fff:1x4"])
    _, seen = _spy_simulate(runs["fff:1x4"])
    cond = [(op, p) for op, p in seen if op.kind == COND_MATMUL and op.sparse]
    assert cond and all(p is not None and p["layer"] == fff_key(op.block) for op, p in cond)
    assert all(p is None for op, p in seen if op.kind != COND_MATMUL)  # dense layers: no pattern
    # each step sees the latest row at or before it, normalised and rounded
    plan = plan_epochs(t)
    rows = t.fff.to_pylist()
    step = int(plan.steps[np.nonzero(plan.epoch_of_step == plan.epoch_of_step[-1])[0][0]])
    for blk in range(t.manifest.model["layers"]):
        row = [r for r in rows if r["step"] <= step and f"layer.{blk}." in r["layer"]][-1]
        got = plan.epochs[plan.epoch_of_step[-1]].patterns[fff_key(blk)]
        L = row["depth"] + 1
        assert got["level_used_frac"] == pytest.approx([row["level_nodes_used"][lv] / 2 ** lv for lv in range(L)],
                                                       abs=0.005 + 1e-9)
        ratio = [max(row["level_max_visits"][lv] * 2 ** lv / row["tokens"], 1.0) for lv in range(L)]
        assert got["level_max_ratio"] == pytest.approx(ratio, rel=0.05)


def test_memoised_plan_equals_every_step_simulated(runs):
    fast, _ = _spy_simulate(runs["fff:1x4"], "fpga-u280")  # node-partitioned, 32 units: quick
    slow, _ = _spy_simulate(runs["fff:1x4"], "fpga-u280", memoize=False)
    assert fast.time_s == pytest.approx(slow.time_s, rel=1e-12)
    assert fast.energy_j == pytest.approx(slow.energy_j, rel=1e-12)
    assert fast.epochs <= slow.epochs


def test_without_fff_rows_visits_are_balanced(runs, tmp_path):
    run = tmp_path / "no-fff"
    shutil.copytree(runs["fff:1x4"], run)
    shutil.rmtree(tr.table_dir(run, "fff"))
    assert "no fff rows" in " ".join(check_trace(run).warnings)
    r, seen = _spy_simulate(run)
    assert r.epochs == 1 and all(p is None for op, p in seen if op.kind == COND_MATMUL)


def test_routing_imbalance_slows_a_node_partitioned_device(runs):
    """The real (skewed) routing of a trained layer costs at least the balanced estimate on a device that
    owns tree nodes (wafer: weight-stationary), and the same on one that splits tokens (CPU)."""
    t = tr.load_trace(runs["fff:1x4"])
    rows = t.fff.to_pylist()
    man = t.manifest
    op = next(o for o in step_ops(man, {}, StepKind(sparse_compute=False)) if o.name == "block0.fff_out.fwd")
    skewed = max(rows, key=lambda r: max(r["level_max_visits"][lv] * 2 ** lv for lv in range(len(r["level_cv"]))))
    wafer, cpu = load_profile("wafer-wse2"), load_profile("cpu-xeon-8380")
    assert op_cost(wafer, op, skewed, path="cmm").compute_s > op_cost(wafer, op, None, path="cmm").compute_s
    assert op_cost(cpu, op, skewed, path="cmm").compute_s == pytest.approx(op_cost(cpu, op, None, path="cmm").compute_s)


def _rewrite_fff(run, change):
    rows = tr.load_trace(run).fff.to_pylist()
    change(rows)
    shutil.rmtree(tr.table_dir(run, "fff"))
    tr.append_rows(run, "fff", rows)


@pytest.mark.parametrize("field, change", [
    ("layer", lambda rows: rows[0].update(layer="bert.encoder.layer.7.intermediate")),
    ("step", lambda rows: rows[-1].update(step=10**6)),
    ("neurons_per_token", lambda rows: rows[0].update(neurons_per_token=4.0)),
    ("depth", lambda rows: rows[0].update(depth=3)),
    ("level_nodes_used", lambda rows: rows[0]["level_nodes_used"].__setitem__(1, -1)),
    ("level_nodes_used", lambda rows: rows[0]["level_nodes_used"].__setitem__(1, 3)),  # level 1 has 2 nodes
    ("level_max_visits", lambda rows: rows[0].update(level_max_visits=rows[0]["level_max_visits"][:-1])),
    ("level_max_visits", lambda rows: rows[0]["level_max_visits"].__setitem__(0, 10**9)),
])
def test_trace_check_validates_the_fff_table(runs, tmp_path, field, change):
    run = tmp_path / "bad"
    shutil.copytree(runs["fff:1x4"], run)
    check_trace(run)  # valid before the change
    _rewrite_fff(run, change)
    with pytest.raises(UserError, match=field) as err:
        check_trace(run)
    assert "fff" in str(err.value)


def test_cli_simulates_an_fff_run_on_all_profiles(runs, capsys):
    from accelsim.app.cli import main

    main(["simulate", str(runs["fff:1x4"]), "--hw", "all", "--no-save"])
    out = capsys.readouterr().out
    assert all(name in out for name in list_profiles()) and "speedup" in out
