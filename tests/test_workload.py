"""FLOP formulas of accelsim.workload, cross-checked against torch.utils.flop_counter."""
import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from accelsim.trace import LayerInfo, Manifest
from accelsim.workload import (ADAM_FLOPS_PER_PARAM, FORMAT_BUILD, GATHER, MASK_APPLY, SCATTER, StepKind,
                               phase_flops, sparse_execution_ops, step_ops)

ROLE_BY_SUFFIX = {"attention.self.query": "q", "attention.self.key": "k", "attention.self.value": "v",
                  "attention.output.dense": "attn_out", "intermediate.dense": "ffn_in", "output.dense": "ffn_out"}


def _tiny(B=3, S=32, H=64, L=2, heads=2, inter=256, V=500):
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=L, num_attention_heads=heads,
                                  intermediate_size=inter, max_position_embeddings=S)
    model = transformers.BertForMaskedLM._from_config(cfg, attn_implementation="sdpa")
    layers = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) and ".encoder." in f".{name}":
            role = next(r for suf, r in ROLE_BY_SUFFIX.items() if name.endswith(suf))
            layers.append(LayerInfo(name, role, list(mod.weight.shape), 0.25, True))
    man = Manifest(model=dict(layers=L, hidden=H, heads=heads, intermediate=inter, vocab=V, seq_len=S,
                              params=sum(p.numel() for p in model.parameters())),
                   batch_size=B, dtype="fp32", method={"name": "rigl"}, layers=layers)
    return model, man


def test_dense_forward_and_backward_match_flop_counter():
    model, man = _tiny()
    ids = torch.randint(0, 500, (man.batch_size, man.model["seq_len"]))
    with FlopCounterMode(display=False) as fwd:
        out = model(input_ids=ids, labels=ids)
    with FlopCounterMode(display=False) as bwd:
        out.loss.backward()
    pf = phase_flops(step_ops(man, {}, StepKind(sparse_compute=False)))
    assert pf["flops_fwd_dense"] == fwd.get_total_flops()
    assert pf["flops_fwd"] == pf["flops_fwd_dense"]
    assert pf["flops_bwd_input_dense"] + pf["flops_bwd_weight_dense"] == bwd.get_total_flops()


def test_sparse_step_scales_linear_flops_by_density():
    _, man = _tiny()
    dense = step_ops(man, {}, StepKind(sparse_compute=False))
    sparse = step_ops(man, {}, StepKind())  # target density 0.25 on every listed layer
    lin_d = sum(o.flops for o in dense if o.kind == "linear" and o.layer)
    lin_s = sum(o.flops for o in sparse if o.kind == "linear" and o.layer)
    assert lin_s == pytest.approx(0.25 * lin_d)
    # attention products and the MLM head stay dense
    other_d = sum(o.flops for o in dense if not o.layer and o.phase != "optimizer")
    other_s = sum(o.flops for o in sparse if not o.layer and o.phase != "optimizer")
    assert other_s == other_d


def test_dense_gradient_steps_cost_dense_weight_gradient():
    _, man = _tiny()
    normal = phase_flops(step_ops(man, {}, StepKind()))
    rigl_update = phase_flops(step_ops(man, {}, StepKind(dense_grad=True, mask_update=True)))
    assert rigl_update["flops_bwd_weight"] == rigl_update["flops_bwd_weight_dense"]
    assert normal["flops_bwd_weight"] < normal["flops_bwd_weight_dense"]
    assert rigl_update["flops_fwd"] == normal["flops_fwd"]
    assert rigl_update["flops_mask_update"] > 0 and normal["flops_mask_update"] == 0
    assert rigl_update["flops_mask_update_dense"] == 0


def test_optimizer_counts_only_nonzeros_when_sparse():
    _, man = _tiny()
    listed = sum(i.shape[0] * i.shape[1] for i in man.layers)
    pf = phase_flops(step_ops(man, {}, StepKind()))
    assert pf["flops_optimizer_dense"] == ADAM_FLOPS_PER_PARAM * man.model["params"]
    assert pf["flops_optimizer"] == ADAM_FLOPS_PER_PARAM * (man.model["params"] - 0.75 * listed)


def test_sparse_execution_adds_its_own_work_and_a_dense_optimizer():
    """A sparse-executed trace (trainer --execute sparse) is priced with what that execution does besides the
    products; a masked trace (the default) keeps the ideal sparse implementation (no such ops, nnz optimizer)."""
    import dataclasses

    _, masked = _tiny()
    sparse = dataclasses.replace(masked, execution="sparse")
    dens = {i.name: 0.25 for i in masked.layers}
    assert sparse_execution_ops(masked, dens, StepKind()) == []
    ops = sparse_execution_ops(sparse, dens, StepKind())
    n_layers = len(masked.layers)
    assert [o.role for o in ops].count(GATHER) == n_layers and [o.role for o in ops].count(SCATTER) == n_layers
    assert [o.role for o in ops].count(MASK_APPLY) == n_layers  # gradient and weight masked around the update
    w = masked.layers[0].shape[0] * masked.layers[0].shape[1]
    gather = next(o for o in ops if o.role == GATHER and o.layer == masked.layers[0].name)
    assert gather.elements == 2 * round(0.25 * w) and gather.phase == "fwd"
    # a dense-gradient step computes dW densely (no scatter); a mask update rebuilds every layer's formats
    upd = sparse_execution_ops(sparse, dens, StepKind(dense_grad=True, mask_update=True))
    assert SCATTER not in {o.role for o in upd} and [o.role for o in upd].count(FORMAT_BUILD) == n_layers
    assert all(o.flops == 0 for o in ops + upd)  # no FLOPs: the trace's FLOP columns are unchanged
    assert sparse_execution_ops(sparse, dens, StepKind(sparse_compute=False)) == []
    opt = {m.execution: next(o for o in step_ops(m, dens) if o.kind == "optimizer") for m in (masked, sparse)}
    assert opt["masked"].elements < opt["sparse"].elements == masked.model["params"]
    assert phase_flops(step_ops(masked, dens))["flops_fwd"] == phase_flops(step_ops(sparse, dens))["flops_fwd"]


def test_step_breakdown_categories_cover_the_profiler_and_the_workload():
    """benchmarks/bench_step_breakdown.py compares measured and predicted time per category: the profiler's op
    names and the workload's ops must land in the same categories (the loss is the vocabulary log-softmax)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_step_breakdown", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step_breakdown.py")
    bsb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bsb)
    expected = {"aten::addmm": "linear", "aten::mm": "linear", "aten::_log_softmax": "loss",
                "aten::_log_softmax_backward_data": "loss", "aten::nll_loss_forward": "loss",
                "aten::_foreach_mul_": "optimizer", "aten::bmm": "attention", "aten::_softmax": "attention",
                "aten::_scaled_dot_product_flash_attention_for_cpu": "attention", "aten::gelu": "elementwise",
                "aten::bernoulli_": "elementwise", "aten::embedding_dense_backward": "embedding",
                "autograd::engine::evaluate_function: AddmmBackward0": "framework"}
    assert {name: bsb.op_category(name) for name in expected} == expected
    _, man = _tiny()
    cats = {op.name: bsb.workload_category(op) for op in step_ops(man, {})}
    assert set(cats.values()) <= {c for c, _ in bsb.CATEGORIES}
    assert cats["mlm_loss.fwd"] == "loss" and cats["mlm_decoder.fwd"] == "linear"
    assert cats["block0.softmax.fwd"] == "attention" and cats["block0.gelu.fwd"] == "elementwise"
    assert {"linear", "attention", "loss", "optimizer", "embedding", "elementwise"} <= set(cats.values())


def test_embedding_gradient_is_one_pass_over_the_vocabulary_or_two_when_tied():
    # torch's embedding backward zero-fills a vocab x hidden gradient; the MLM decoder tied to it adds its own
    _, man = _tiny(V=500, H=64)
    tied = [op for op in step_ops(man, {}) if op.name == "embeddings.grad"]
    assert len(tied) == 1 and tied[0].elements == 2 * 500 * 64 and tied[0].phase == "bwd_weight"
    man.model["head"] = {"type": "classifier", "labels": 2}
    (alone,) = [op for op in step_ops(man, {}) if op.name == "embeddings.grad"]
    assert alone.elements == 500 * 64


def test_mask_update_selects_over_the_methods_units_and_a_block_method_also_scores_every_weight():
    from accelsim.workload import MASK_SCORE, MASK_SELECT

    _, man = _tiny()
    kind = StepKind(dense_grad=True, mask_update=True)
    unstructured = [op for op in step_ops(man, {}, kind) if op.kind == "mask_update"]
    assert {op.role for op in unstructured} == {MASK_SELECT} and len(unstructured) == len(man.layers)
    assert sum(op.elements for op in unstructured) == sum(i.shape[0] * i.shape[1] for i in man.layers)
    man.method = {"name": "block-rigl", "block_size": 16}
    block = [op for op in step_ops(man, {}, kind) if op.kind == "mask_update"]
    select = [op for op in block if op.role == MASK_SELECT]
    assert [op.elements for op in select] == [i.shape[0] * i.shape[1] // 256 for i in man.layers]
    assert sum(op.elements for op in block if op.role == MASK_SCORE) == sum(i.shape[0] * i.shape[1] for i in man.layers)
    # the FLOPs (the trace's flops_mask_update column) do not depend on the grid
    assert phase_flops(block)["flops_mask_update"] == phase_flops(unstructured)["flops_mask_update"]


def test_an_nm_method_selects_inside_groups_per_weight_not_by_a_top_k():
    # SR-STE recomputes its 2:4 masks every step: a ranking inside each group of 4 (MASK_GROUP_SELECT), priced apart
    # from RigL's top-k over the layer
    from accelsim.sim.methods import method_rule
    from accelsim.sim.schedule import step_kind_ids
    from accelsim.workload import MASK_GROUP_SELECT

    _, man = _tiny()
    man.method = {"name": "nm", "n": 2, "m": 4}
    kinds, _ = step_kind_ids(method_rule(man.method), [True])
    assert {k.mask_select for k in kinds} == {"group"}
    ops = [op for op in step_ops(man, {}, kinds[-1]) if op.kind == "mask_update"]
    assert {op.role for op in ops} == {MASK_GROUP_SELECT}
    assert [op.elements for op in ops] == [i.shape[0] * i.shape[1] for i in man.layers]
    topk = [op for op in step_ops(man, {}, StepKind(dense_grad=True, mask_update=True)) if op.kind == "mask_update"]
    assert phase_flops(ops)["flops_mask_update"] == phase_flops(topk)["flops_mask_update"]  # the trace's count
    rigl, _ = step_kind_ids(method_rule("rigl"), [True])
    assert {k.mask_select for k in rigl} == {"topk"}
