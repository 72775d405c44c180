"""Fine-tuning: GLUE files and metrics, distillation, FLOPs of the classifier and teacher, traces and lineage."""
import json

import numpy as np
import pytest
import torch
import transformers
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from accelsim import trace as tr
from accelsim.errors import UserError
from accelsim.sim.lineage import linked_runs, parse_target_metric, simulate_lineage
from accelsim.trace import LayerInfo, Manifest
from accelsim.trace_check import check_trace
from accelsim.trainer.data import DataConfig
from accelsim.trainer.distill import KDConfig, distill_loss
from accelsim.trainer.finetune import FinetuneConfig, finetune
import accelsim.trainer.finetune as ft_mod
from accelsim.trainer.glue import classification_metrics, load_task, task_scores
from accelsim.trainer.models import linear_layers
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, train
from accelsim.workload import StepKind, phase_flops, step_ops

PRED, GOLD = [1, 0, 1, 1], [1, 0, 0, 1]  # tp 2, tn 1, fp 1, fn 0


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def _glue_files(root):
    # the layouts GLUE distributes: SST-2 with a header, MRPC's quality/id/id/string/string, CoLA headerless
    _write(root / "SST-2" / "train.tsv", ["sentence\tlabel", "a fine film\t1", "dull and \"long\"\t0"])
    _write(root / "SST-2" / "dev.tsv", ["sentence\tlabel", "great\t1", "bad\t0", "ok\t1", "fine\t1"])
    mrpc = ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tHe left .\tHe went away .",
            "0\t3\t4\tIt rained .\tStocks fell ."]
    _write(root / "MRPC" / "train.tsv", mrpc)
    _write(root / "MRPC" / "dev.tsv", mrpc + ["1\t5\t6\tA b .\tA b ."])
    cola = ["gj04\t1\t\tOur friends won't buy this analysis.", "gj04\t0\t*\tThey drank the pub."]
    _write(root / "CoLA" / "train.tsv", cola)
    _write(root / "CoLA" / "dev.tsv", cola)


def test_glue_tsv_formats_load_and_score_with_the_task_metric(tmp_path):
    _glue_files(tmp_path)
    sst = load_task("SST-2", tmp_path)
    assert sst.train == [("a fine film", None, 1), ('dull and "long"', None, 0)]  # quotes are literal in GLUE
    assert len(sst.dev) == 4
    mrpc = load_task("mrpc", tmp_path / "MRPC")  # the task directory itself works too
    assert mrpc.train[0] == ("He left .", "He went away .", 1) and len(mrpc.dev) == 3
    cola = load_task("CoLA", tmp_path)
    assert cola.train[1] == ("They drank the pub.", None, 0)
    # GLUE's metric per task: accuracy for SST-2, F1 and accuracy for MRPC, Matthews correlation for CoLA
    assert task_scores(sst.spec, PRED, GOLD) == {"accuracy": 0.75}
    assert task_scores(mrpc.spec, PRED, GOLD) == pytest.approx({"f1": 0.8, "accuracy": 0.75})
    assert task_scores(cola.spec, PRED, GOLD) == pytest.approx({"mcc": 2 / np.sqrt(12)})


def test_metrics_edge_cases():
    assert classification_metrics([0, 0], [0, 0]) == {"accuracy": 1.0, "f1": 0.0, "mcc": 0.0}
    three = classification_metrics([0, 1, 2, 2], [0, 1, 2, 1])
    assert three["accuracy"] == 0.75 and np.isnan(three["f1"]) and 0 < three["mcc"] < 1


def test_bad_glue_files_and_no_source_are_one_line_errors(tmp_path, monkeypatch):
    _write(tmp_path / "train.tsv", ["sentence\tlabel", "only one column"])
    _write(tmp_path / "dev.tsv", ["sentence\tlabel"])
    with pytest.raises(UserError, match=r"train.tsv.*line 2.*1 columns"):
        load_task("sst2", tmp_path)
    _write(tmp_path / "train.tsv", ["sentence\tlabel", "x\tpositive"])
    with pytest.raises(UserError, match="integer label"):
        load_task("sst2", tmp_path)
    with pytest.raises(UserError, match="hub is not reachable.*--data") as err:  # conftest: HF_*_OFFLINE=1
        load_task("sst2")
    assert "\n" not in str(err.value)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")  # no network: refused at once, not after retries
    with pytest.raises(UserError, match=r"hub.invalid.*--data"):
        load_task("mrpc")
    with pytest.raises(UserError, match="unknown task"):
        load_task("stsb")


def _tiny_classifier(seed, hidden=32, layers=1):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=16, num_labels=2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return transformers.BertForSequenceClassification._from_config(cfg, attn_implementation="sdpa")


@pytest.mark.parametrize("mode", ["logits", "hidden"])
def test_kd_loss_goes_down_on_a_toy_batch(mode):
    student, teacher = _tiny_classifier(0), _tiny_classifier(1).eval()
    ids = torch.randint(0, 50, (8, 12), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (8,), generator=torch.Generator().manual_seed(1))
    cfg = KDConfig(mode=mode, alpha=1.0)  # distillation terms only: what must fall is the KD loss
    opt = torch.optim.Adam(student.parameters(), lr=3e-3)
    with torch.no_grad():
        t_out = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    losses = []
    for _ in range(30):
        out = student(input_ids=ids, attention_mask=mask, labels=labels, output_hidden_states=True)
        loss = distill_loss(out.loss, out, t_out, mask, cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_classifier_head_and_teacher_forward_match_flop_counter():
    B, S = 3, 16
    student, teacher = _tiny_classifier(0), _tiny_classifier(1, hidden=64, layers=2).eval()
    layers = [LayerInfo(n, r, list(m.weight.shape), 0.5, True) for n, m, r in linear_layers(student)]
    c = student.config
    model = dict(layers=1, hidden=32, heads=2, intermediate=64, vocab=50, seq_len=S,
                 params=student.num_parameters(), head={"type": "classifier", "labels": 2})
    man = Manifest(model=model, batch_size=B, dtype="fp32", method={"name": "gmp"}, layers=layers)
    ids = torch.randint(0, 50, (B, S))
    # the math backend: the counter does not see inside CPU's fused attention kernel (used without dropout)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fwd:
        out = student(input_ids=ids, labels=torch.zeros(B, dtype=torch.long))
    with FlopCounterMode(display=False) as bwd:
        out.loss.backward()
    pf = phase_flops(step_ops(man, {}, StepKind(sparse_compute=False)))
    assert pf["flops_fwd_dense"] == fwd.get_total_flops()
    assert pf["flops_bwd_input_dense"] + pf["flops_bwd_weight_dense"] == bwd.get_total_flops()
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as tfwd, torch.no_grad():
        teacher(input_ids=ids)
    tc = teacher.config
    kd = Manifest(model={**model, "teacher": {"layers": tc.num_hidden_layers, "hidden": tc.hidden_size,
                                              "heads": tc.num_attention_heads, "intermediate": tc.intermediate_size}},
                  batch_size=B, dtype="fp32", method={"name": "gmp"}, layers=layers)
    assert c.hidden_size != tc.hidden_size  # a differently sized teacher (logit KD)
    for kind in (StepKind(sparse_compute=False), StepKind()):
        with_t, without = phase_flops(step_ops(kd, {}, kind)), phase_flops(step_ops(man, {}, kind))
        assert with_t["flops_fwd"] - without["flops_fwd"] == tfwd.get_total_flops()
        assert with_t["flops_bwd_weight"] == without["flops_bwd_weight"]  # the teacher is not trained


def _pretrain(out, method, sparsity):
    return train(TrainConfig(model="bert-tiny", out=str(out), steps=6, batch_size=4, seed=1, eval_every=3,
                             eval_batches=1, checkpoint_every=3, threads=1,
                             data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
                             sparsity=SparsityConfig(method=method, sparsity=sparsity, update_every=2)),
                 progress=False)


def _ft(parent, out, **kw):
    cfg = dict(parent=str(parent), out=str(out), steps=6, batch_size=4, eval_every=3, max_train=64, threads=1,
               seq_len=32)
    cfg.update(kw)
    return finetune(FinetuneConfig(**cfg), progress=False)


def test_finetune_traces_check_link_to_parents_and_sum_in_the_lineage(tmp_path, monkeypatch):
    rigl = _pretrain(tmp_path / "rigl", "rigl", 0.75)
    retained = []
    monkeypatch.setattr(ft_mod, "retain_freed_memory", lambda: retained.append(True))
    kept = _ft(rigl, tmp_path / "rigl-ft")
    assert retained == [True]  # the allocator policy of pretraining (and of every calibration)
    assert tr.read_manifest(kept).host["optimizer"] == "fused"
    s = check_trace(kept)
    assert s.steps == 6 and s.method == "static" and s.final_density == pytest.approx(0.25, abs=0.01)
    man = tr.read_manifest(kept)
    assert man.phase == "finetune" and (kept / man.parent).resolve() == rigl.resolve()
    parent_masks = torch.load(rigl / "checkpoint.pt", weights_only=True)["method"]["masks"]
    child_masks = torch.load(kept / "checkpoint.pt", weights_only=True)["method"]["masks"]
    assert all(torch.equal(parent_masks[n], child_masks[n]) for n in parent_masks)  # the masks were kept
    ev = tr.load_trace(kept).eval
    assert ev.num_rows == 3 and np.all(np.isfinite(ev["eval_f1"].to_numpy()))

    dense = _pretrain(tmp_path / "dense", "dense", 0.0)
    teacher = _ft(dense, tmp_path / "teacher")
    student = _ft(dense, tmp_path / "gmp-kd", method="gmp", sparsity=0.5, update_every=1, teacher=str(teacher),
                  kd=KDConfig(mode="hidden"))
    s = check_trace(student)
    assert s.method == "gmp" and s.mask_changes >= 2 and s.final_density == pytest.approx(0.5, abs=0.01)
    assert linked_runs(student) == [dense.resolve(), teacher.resolve(), student.resolve()]
    # the teacher's forward is billed: a dense step of the student costs more forward FLOPs than the teacher's own
    fwd = {r: tr.load_trace(r).steps["flops_fwd_dense"][0].as_py() for r in (teacher, student)}
    assert fwd[student] > 1.9 * fwd[teacher]
    (res,) = simulate_lineage(student, ["ideal"], target=parse_target_metric("accuracy=0"))
    assert [r.run for r in res.runs] == [str(dense.resolve()), str(teacher.resolve()), str(student.resolve())]
    assert res.time_s == pytest.approx(sum(r.time_s for r in res.runs))
    first_eval = res.runs[0].time_s + res.runs[1].time_s  # accuracy >= 0 holds at the first evaluation (step 0)
    assert first_eval < res.time_to_target_s < res.time_s and res.step_at_target == 0
    # the report sums the simulations stored in each run of the lineage
    from accelsim.report.data import load_run
    from accelsim.report.lineage import lineage_rows
    from accelsim.sim.api import simulate_many

    for r in (dense, teacher, student):
        simulate_many(r, ["ideal"])[0].save(r)
    head, body = lineage_rows([load_run(student), load_run(dense)], ["ideal"])
    assert len(body) == 1 and body[0][2] == "dense + teacher + gmp-kd"  # the pretraining run has no row
    assert float(body[0][-1].split()[0]) == pytest.approx(res.time_s, rel=1e-3)
    with pytest.raises(UserError, match="--target-metric"):
        parse_target_metric("loss=3")
    with pytest.raises(UserError, match="already holds a trace"):
        _ft(dense, student)
    with pytest.raises(UserError, match="expected a pretraining run"):
        _ft(teacher, tmp_path / "x")
    assert json.loads((student / "manifest.json").read_text())["model"]["teacher"]["kd"] == "hidden"


def test_movement_pruning_keeps_weights_moving_away_from_zero_that_gmp_drops():
    from accelsim.trainer.sparsity import build_method

    def run(method):
        layer = torch.nn.Linear(4, 2, bias=False)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[0.1, 0.2, 3.0, 4.0], [0.1, 0.2, 3.0, 4.0]]))
        cfg = SparsityConfig(method=method, sparsity=0.5, distribution="uniform", update_every=5,
                             gmp_start_fraction=0.1, gmp_end_fraction=0.6)
        m = build_method(cfg, [("fc", layer)], 10)
        for step in range(6):
            # the loss pushes the small weights away from zero (grad opposite to the weight), the large ones in
            layer.weight.grad = torch.tensor([[-1.0, -1.0, 1.0, 1.0]] * 2)
            m.before_optimizer_step(step)
            m.after_optimizer_step(step)
        return m.masks["fc"][0].tolist()
    assert run("gmp") == [False, False, True, True]
    assert run("movement") == [True, True, False, False]
