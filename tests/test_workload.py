"""FLOP formulas of accelsim.workload, cross-checked against torch.utils.flop_counter."""
import pytest
import torch
import transformers
from torch.utils.flop_counter import FlopCounterMode

from accelsim.trace import LayerInfo, Manifest
from accelsim.workload import ADAM_FLOPS_PER_PARAM, StepKind, phase_flops, step_ops

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
