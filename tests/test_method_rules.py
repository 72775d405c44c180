"""Each sparsity method declares its simulator rule; the trainer writes it into the manifest
(method.sim_rule) and the simulator reads it from there, falling back to the legacy table only for
traces written before the rule was recorded."""
from __future__ import annotations

import pytest
from torch import nn

from accelsim.errors import UserError
from accelsim.sim.methods import LEGACY_RULES, MethodRule, method_rule
from accelsim.sim.schedule import plan_epochs
from accelsim.synth import synth_trace
from accelsim.trace import load_trace
from accelsim.trainer.sparsity import SparsityConfig, available_methods, build_method

STEPS = 40


def _built(name: str):
    layers = [("a", nn.Linear(32, 32, bias=False)), ("b", nn.Linear(32, 32, bias=False))]
    kw = dict(sparsity=0.5, update_every=4, end_fraction=0.75, distribution="uniform", block_size=16)
    if name == "dense":
        kw["sparsity"] = 0.0
    if name == "nm":
        kw.update(nm_update_every=4)
    if name == "gmp":
        kw.update(gmp_start_fraction=0.1, gmp_end_fraction=0.75)
    return build_method(SparsityConfig(method=name, **kw), layers, STEPS)


@pytest.mark.parametrize("name", available_methods())
def test_declared_rule_matches_what_the_method_does(name):
    method = _built(name)
    rule = method.sim_rule()
    assert method.hyperparameters()["sim_rule"] == rule.to_manifest()  # what build_manifest writes
    kinds = [method.step_kind(s) for s in range(STEPS)]
    updates = [s for s, k in enumerate(kinds) if k.mask_update]
    assert all(k.sparse_compute == rule.sparse_compute for k in kinds)
    expected_grad = {"never": lambda k: False, "always": lambda k: True,
                     "on_update": lambda k: k.mask_update}[rule.dense_grad]
    assert [k.dense_grad for k in kinds] == [expected_grad(k) for k in kinds]
    if rule.schedule == "none":
        assert updates == []
    elif rule.schedule == "recompute":  # all through training, past end_fraction
        assert updates and updates[-1] >= 0.75 * STEPS
    else:
        assert updates and updates[-1] < 0.75 * STEPS
    if rule.structure == "block":
        assert method.unit_size() == 16
    assert (rule.structure == "nm") == (name == "nm")


@pytest.mark.parametrize("name", [m for m in available_methods() if m.removeprefix("block-") in LEGACY_RULES])
def test_legacy_table_agrees_with_the_methods(name):
    # traces written before method.sim_rule simulate with the table: it must say what the method declares
    # (a method added since needs no entry: its traces carry their rule)
    assert method_rule(name) == _built(name).sim_rule()


def test_every_module_in_the_methods_folder_registers_a_method():
    """Methods are discovered (trainer/sparsity/methods/__init__.py): a new method is one file there."""
    import pkgutil

    import accelsim.trainer.sparsity.methods as pkg
    from accelsim.trainer.sparsity.base import _REGISTRY

    modules = {m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_")}
    assert modules == {cls.__module__.rsplit(".", 1)[1] for cls in _REGISTRY.values()
                       if cls.__module__.startswith(pkg.__name__ + ".")}


def _plan(trace):
    plan = plan_epochs(trace)
    return [(e.kind, e.count, e.densities) for e in plan.epochs], plan.epoch_of_step.tolist()


def test_rule_in_the_manifest_is_used_and_old_traces_simulate_the_same(tmp_path):
    trace = load_trace(synth_trace(model="bert-tiny", method="rigl", sparsity=0.9, steps=40, update_every=10,
                                   batch_size=2, seq_len=16, out=tmp_path / "rigl"))
    assert trace.manifest.method["sim_rule"] == LEGACY_RULES["rigl"].to_manifest()
    with_rule = _plan(trace)
    assert any(k.dense_grad for k in [e.kind for e in plan_epochs(trace).epochs])
    # an old trace: no sim_rule, the name's legacy rule
    trace.manifest.method = {k: v for k, v in trace.manifest.method.items() if k != "sim_rule"}
    assert _plan(trace) == with_rule
    # a method the simulator has never heard of is costed from its recorded rule alone
    trace.manifest.method = {"name": "brand-new", "sim_rule": LEGACY_RULES["rigl"].to_manifest()}
    assert _plan(trace) == with_rule
    trace.manifest.method = {"name": "brand-new", "sim_rule": MethodRule(dense_grad="always").to_manifest()}
    assert all(e.kind.dense_grad for e in plan_epochs(trace).epochs)
    trace.manifest.method = {"name": "rigl", "sim_rule": dict(LEGACY_RULES["rigl"].to_manifest(), schedule="x")}
    with pytest.raises(UserError, match="method.sim_rule.schedule"):
        plan_epochs(trace)


@pytest.mark.parametrize("bad, field", [
    ("on_update", "method.sim_rule"),
    ({"dense_grad": "sometimes", "sparse_compute": True, "structure": "random", "schedule": "none"},
     "method.sim_rule.dense_grad"),
    ({"dense_grad": "never", "sparse_compute": 1, "structure": "random", "schedule": "none"},
     "method.sim_rule.sparse_compute"),
    ({"dense_grad": "never", "sparse_compute": True, "structure": "random", "schedule": "none", "x": 1},
     "method.sim_rule"),
])
def test_bad_rules_are_one_line_errors(bad, field):
    with pytest.raises(UserError, match=field.replace(".", r"\.")):
        method_rule({"name": "m", "sim_rule": bad})


def test_a_block_variant_keeps_its_base_gradient_rule():
    assert method_rule("block-rigl") == MethodRule(dense_grad="on_update", structure="block")
    assert _built("block-rigl").sim_rule() == method_rule("block-rigl")


def test_a_trained_trace_records_the_rule(tmp_path):
    from accelsim.trainer.data import DataConfig
    from accelsim.trainer.train import TrainConfig, train

    cfg = TrainConfig(model="bert-tiny", out=str(tmp_path / "r"), steps=4, batch_size=2, seed=3, eval_every=4,
                      eval_batches=1, checkpoint_every=4, threads=1,
                      data=DataConfig(vocab_size=400, seq_len=16, max_texts=100),
                      sparsity=SparsityConfig(method="block-rigl", sparsity=0.5, update_every=2, block_size=16))
    man = load_trace(train(cfg, progress=False)).manifest
    assert man.method["sim_rule"] == MethodRule(dense_grad="on_update", structure="block").to_manifest()
