"""UltraSparseBERT fast feedforward layers: spec parsing, the layer, BERT surgery, gradients, trace rows,
manifest and workload FLOPs."""
from __future__ import annotations

import json
import os

# The first `import triton` in a pytest process fixes interpreter mode for every test module; the trainer
# imports torch._dynamo, which imports triton, and the Triton test modules collected after this one
# (test_fff_kernels, test_kernels_triton) need the interpreter on CPU machines.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from accelsim import trace as tr  # noqa: E402
from accelsim.errors import UserError  # noqa: E402
from accelsim.trace_check import check_trace  # noqa: E402
from accelsim.workload import COND_MATMUL, StepKind, phase_flops, step_ops  # noqa: E402
from accelsim.trainer.data import DataConfig  # noqa: E402
from accelsim.trainer.fff import FFFLayer, FFFSpec, _FFFPath, apply_fff, layer_stats, parse_ffn  # noqa: E402
from accelsim.trainer.models import linear_layers, model_dims  # noqa: E402
from accelsim.trainer.sparsity import SparsityConfig  # noqa: E402
from accelsim.trainer.train import TrainConfig, train  # noqa: E402


def test_parse_ffn():
    assert parse_ffn("dense") is None
    spec = parse_ffn("fff:1x11")
    assert (spec.trees, spec.depth, spec.neurons, spec.path_neurons) == (1, 11, 4095, 12)
    assert spec.name == "UltraSparseBERT-1x11" and spec.train_mode() == "gather"
    assert parse_ffn("fff:3072x0").neurons == 3072 and parse_ffn("fff:3072x0").train_mode() == "masked"
    for bad in ("fff:0x3", "fff:abc", "fff:2", "fff:1x99", "sparse", ""):
        with pytest.raises(UserError, match="fff:KxD") as err:
            parse_ffn(bad)
        assert "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["fff:0x3", "fff:abc"])
def test_cli_ffn_errors_are_one_line(tmp_path, capsys, spec):
    from accelsim.app.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["train", "--ffn", spec, "--out", str(tmp_path / "x"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelsim: error:") and "ffn" in err and spec in err and "\n" not in err
    assert not (tmp_path / "x").exists()


def test_path_gradients_equal_the_masked_dense_gradients():
    """The path-only autograd function is the paper's masked training formulation, gradients included."""
    torch.manual_seed(0)
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    w_in = (torch.randn(14, 5, dtype=torch.float64) / 2).requires_grad_()
    b_in = torch.randn(14, dtype=torch.float64).requires_grad_()
    w_out = torch.randn(14, 5, dtype=torch.float64).requires_grad_()
    assert float(F.linear(x, w_in, b_in).detach().abs().min()) > 1e-3  # finite differences must not flip a route
    torch.autograd.gradcheck(lambda *a: _FFFPath.apply(*a, 2, 2)[0], (x, w_in, b_in, w_out))

    for mode in ("gather", "masked"):
        torch.manual_seed(1)
        layer = FFFLayer(16, FFFSpec(2, 4), mode=mode)
        h = torch.randn(2, 9, 16, requires_grad=True)
        (layer(h) * torch.linspace(-1, 1, 16)).sum().backward()
        grads = [h.grad] + [p.grad for p in layer.parameters()]
        if mode == "gather":
            ref = grads
    for got, want in zip(grads, ref):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the routing has no gradient: rows no token visited get none
    visited = torch.zeros(layer.spec.neurons, dtype=torch.bool)
    visited[layer.last_nodes.reshape(-1)] = True
    assert float(layer.weight_in.grad[~visited].abs().max()) == 0.0 and bool(layer.weight_in.grad[visited].any())


def _tiny_bert(H=32, layers=2, inter=64, V=120, S=16):
    cfg = transformers.BertConfig(vocab_size=V, hidden_size=H, num_hidden_layers=layers, num_attention_heads=2,
                                  intermediate_size=inter, max_position_embeddings=S)
    torch.manual_seed(0)
    return transformers.BertForMaskedLM._from_config(cfg, attn_implementation="sdpa")


@pytest.mark.parametrize("spec", ["fff:1x5", "fff:2x2"])  # path-only and masked training
def test_apply_fff_keeps_bert_trainable(spec):
    model = _tiny_bert()
    norms = [blk.output.LayerNorm for blk in model.bert.encoder.layer]
    layers = apply_fff(model, spec, seed=0)
    assert [n for n, _ in layers] == [f"bert.encoder.layer.{i}.intermediate" for i in range(2)]
    assert [blk.output.LayerNorm for blk in model.bert.encoder.layer] == norms  # residual + LayerNorm kept
    assert {r for _, _, r in linear_layers(model)} == {"q", "k", "v", "attn_out"}
    assert model.config.intermediate_size == parse_ffn(spec).neurons
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 120, (8, 16), generator=g)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(20):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses
    assert all(layer.weight_in.grad is None for _, layer in layers)  # zero_grad(set_to_none) ran


def test_apply_fff_dense_changes_nothing():
    model = _tiny_bert()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert apply_fff(model, "dense") == []
    assert model.state_dict().keys() == before.keys()


def test_layer_stats_measure_routing_and_load():
    spec = FFFSpec(2, 2)  # 7 nodes per tree
    # 4 tokens; tree 0: all go 0 -> 1 -> 3; tree 1 (rows 7..13): split evenly over its 4 leaves
    nodes = torch.tensor([[[0, 1, 3], [7, 8, 10]], [[0, 1, 3], [7, 8, 11]],
                          [[0, 1, 3], [7, 9, 12]], [[0, 1, 3], [7, 9, 13]]])
    s = layer_stats(nodes, spec, hidden=10)
    assert s["neurons_per_token"] == 6.0 and s["neurons"] == 14 and s["tokens"] == 4
    assert s["nodes_used"] == 3 + 7
    assert s["level_nodes_used"] == [2, 3, 5]
    assert s["level_max_visits"] == [4, 4, 4]
    assert s["level_cv"][0] == 0.0 and s["level_cv"][1] == pytest.approx(0.5 ** 0.5)
    assert s["flops_cond"] == 4 * 4 * 10 * 6 and s["flops_dense_equiv"] == 4 * 4 * 10 * 14


def _manifest(model, S, B, mode_spec):
    dims = model_dims(model, S)
    dims["ffn"] = parse_ffn(mode_spec).manifest_entry()
    layers = [tr.LayerInfo(n, r, list(m.weight.shape), 1.0, False) for n, m, r in linear_layers(model)]
    return tr.Manifest(model=dims, batch_size=B, dtype="fp32", method={"name": "dense"}, layers=layers)


def test_workload_counts_what_the_trainer_computes():
    S, B = 16, 3
    model = _tiny_bert(S=S)  # training mode with attention dropout: SDPA takes the path the counter counts
    apply_fff(model, "fff:2x2")  # masked: all neurons computed, as torch's flop counter sees
    man = _manifest(model, S, B, "fff:2x2")
    assert man.model["ffn"]["train_mode"] == "masked"
    ids = torch.randint(0, 120, (B, S))
    with FlopCounterMode(display=False) as fwd:
        model(input_ids=ids, labels=ids)
    pf = phase_flops(step_ops(man, {}, StepKind(sparse_compute=False)))
    assert pf["flops_fwd"] == pf["flops_fwd_dense"] == fwd.get_total_flops()

    # path-only training: each FFF product costs the path fraction of the dense one, in every phase
    ffn = {"type": "fff", "trees": 2, "depth": 2, "train_mode": "gather"}
    man.model["ffn"] = ffn
    ops = step_ops(man, {}, StepKind(sparse_compute=False))
    cond = [o for o in ops if o.kind == COND_MATMUL]
    assert len(cond) == 2 * 2 * 3 and {o.role for o in cond} == {"ffn_in", "ffn_out"}
    T, H = B * S, 32
    for o in cond:
        assert o.flops == pytest.approx(2 * T * H * 2 * 3) and o.flops_dense == 2 * T * H * 14
        assert o.sparse and o.trees == 2 and o.levels == 3
    gathered = phase_flops(ops)
    for ph in ("fwd", "bwd_input", "bwd_weight"):
        saved = 2 * 2 * 2 * T * H * (14 - 6)  # 2 blocks x 2 products x 2*T*H*(unvisited rows)
        assert gathered[f"flops_{ph}"] == pytest.approx(gathered[f"flops_{ph}_dense"] - saved)
    assert not any(o.kind == "linear" and o.role in ("ffn_in", "ffn_out") for o in ops)


def test_manifest_ffn_is_validated(tmp_path):
    man = _manifest(_tiny_bert(), 16, 2, "fff:1x5")
    data = json.loads(man.to_json())
    assert tr.Manifest.from_dict(data).model["ffn"]["depth"] == 5
    for bad, field in (({"type": "moe"}, "model.ffn"), ({"type": "fff", "trees": 0, "depth": 3}, "model.ffn.trees"),
                       ({"type": "fff", "trees": 1, "depth": "3"}, "model.ffn.depth"),
                       ({"type": "fff", "trees": 1, "depth": 3, "train_mode": "soft"}, "model.ffn.train_mode")):
        data["model"]["ffn"] = bad
        with pytest.raises(UserError, match=field.replace(".", r"\.")):
            tr.Manifest.from_dict(data)
    del data["model"]["ffn"]  # traces written before FFF support
    assert "ffn" not in tr.Manifest.from_dict(data).model


def _fff_cfg(out, steps=6):
    return TrainConfig(model="bert-tiny", ffn="fff:1x5", out=str(out), steps=steps, batch_size=4, lr=2e-3,
                       seed=3, eval_every=3, eval_batches=1, checkpoint_every=4, threads=1,
                       data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                       sparsity=SparsityConfig(method="dense", sparsity=0.0))


def test_train_with_fff_writes_fff_rows(tmp_path):
    run = train(_fff_cfg(tmp_path / "r"), progress=False)
    summary = check_trace(run)
    t = tr.load_trace(run)
    assert t.manifest.model["ffn"] == {"type": "fff", "trees": 1, "depth": 5, "train_mode": "gather"}
    assert t.manifest.model["intermediate"] == 63
    rows = t.fff.to_pylist()
    assert [(r["step"], r["layer"]) for r in rows] == [
        (s, f"bert.encoder.layer.{i}.intermediate") for s in range(6) for i in range(2)]
    for r in rows:
        assert r["tokens"] == 4 * 32 and r["neurons_per_token"] == 6.0
        assert len(r["level_cv"]) == len(r["level_nodes_used"]) == len(r["level_max_visits"]) == 6
        assert r["level_nodes_used"][0] == 1 and r["level_max_visits"][0] == 128
        assert 6 <= r["nodes_used"] <= 63 and r["flops_cond"] * 63 == r["flops_dense_equiv"] * 6
    assert summary.flops_actual < summary.flops_dense
    extra = dict(summary.extra_rows)
    assert extra["FFN"] == "UltraSparseBERT-1x5: 6 of 63 neurons per token"
    first, last = (float(x.rstrip("%")) / 100 for x in extra["FFF neurons visited"].split(" -> "))
    used = [r["nodes_used"] / 63 for r in rows]
    assert first == pytest.approx(sum(used[:2]) / 2, abs=0.006) and last == pytest.approx(sum(used[-2:]) / 2, abs=0.006)
    hot = float(extra["FFF busiest leaf / mean"].split(" -> ")[0].rstrip("x"))
    assert hot == pytest.approx(sum(r["level_max_visits"][-1] / (128 / 32) for r in rows[:2]) / 2, abs=0.051)
    steps = t.steps.to_pylist()
    assert all(s["flops_fwd"] < s["flops_fwd_dense"] for s in steps)


def test_fff_resume_repeats_the_uninterrupted_run(tmp_path):
    full = train(_fff_cfg(tmp_path / "full"), progress=False)

    def stop(step, metrics):
        if step == 4:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(_fff_cfg(tmp_path / "cut"), progress=False, on_step=stop)
    cut = tmp_path / "cut"
    assert sorted(set(tr.read_table(cut, "fff")["step"].to_pylist())) == list(range(5))
    train(_fff_cfg(cut), resume=True, progress=False)
    a, b = tr.load_trace(full), tr.load_trace(cut)
    assert a.steps["loss"].to_pylist() == b.steps["loss"].to_pylist()
    assert a.fff.to_pylist() == b.fff.to_pylist()  # same routing, no duplicated or missing rows
