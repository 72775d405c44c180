"""End-to-end training: trace validity, exact densities, resume, divergence, errors, HF callback."""
import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from accelsim import trace as tr
from accelsim.errors import UserError
from accelsim.trace_check import check_trace
from accelsim.trainer import train as train_mod
from accelsim.trainer.data import DataConfig
from accelsim.trainer.sparsity import SparsityConfig
from accelsim.trainer.train import TrainConfig, TrainingDiverged, train


def tiny_cfg(out, method="rigl", sparsity=0.5, steps=12, **sp):
    return TrainConfig(
        model="bert-tiny", out=str(out), steps=steps, batch_size=4, lr=1e-3, seed=3, eval_every=6,
        eval_batches=1, checkpoint_every=4, threads=1,
        data=DataConfig(vocab_size=400, seq_len=32, max_texts=400),
        sparsity=SparsityConfig(method=method, sparsity=sparsity, update_every=3, end_fraction=0.75, **sp))


def test_rigl_run_writes_a_valid_trace_with_exact_densities(tmp_path):
    run = train(tiny_cfg(tmp_path / "r"), progress=False)
    s = check_trace(run)
    assert s.steps == 12 and s.mask_changes >= 2
    assert s.flops_actual < s.flops_dense
    t = tr.load_trace(run)
    targets = {i.name: round(i.target_density * i.shape[0] * i.shape[1]) for i in t.manifest.layers}
    for row in t.patterns.to_pylist():
        assert abs(row["nnz"] - targets[row["layer"]]) <= 1
    # RigL needs the dense weight gradient exactly on mask-update steps
    steps = t.steps.to_pylist()
    for r in steps:
        dense_grad = r["flops_bwd_weight"] == r["flops_bwd_weight_dense"]
        assert dense_grad == r["mask_changed"], r["step"]
    assert (run / "masks").is_dir() and len(list((run / "masks").glob("*.npz"))) == s.mask_changes + 1
    assert t.manifest.host["optimizer"] == "fused"  # kernels.optim.adamw on torch's CPU
    zero = t.patterns.filter(pc.equal(t.patterns["step"], 0))["input_zero_frac"].to_numpy()
    assert np.all((zero >= 0) & (zero <= 1))


def _capture_model(monkeypatch):
    holder = {}
    real = train_mod.build_model

    def build(*a, **k):
        holder["model"] = real(*a, **k)
        return holder["model"]
    monkeypatch.setattr(train_mod, "build_model", build)
    return holder


def test_resume_after_interrupt_is_identical_to_uninterrupted(tmp_path):
    full = train(tiny_cfg(tmp_path / "full"), progress=False)

    def stop(step, metrics):
        if step == 6:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path / "cut"), progress=False, on_step=stop)
    cut = tmp_path / "cut"
    assert tr.read_table(cut, "steps")["step"].to_pylist() == list(range(7))  # valid up to the last step
    train(tiny_cfg(cut), resume=True, progress=False)
    a, b = tr.load_trace(full), tr.load_trace(cut)
    assert b.steps["step"].to_pylist() == list(range(12))
    assert a.steps["loss"].to_pylist() == b.steps["loss"].to_pylist()
    assert a.patterns["nnz"].to_pylist() == b.patterns["nnz"].to_pylist()
    assert a.patterns["row_nnz_std"].to_pylist() == b.patterns["row_nnz_std"].to_pylist()
    assert a.eval["eval_loss"].to_pylist() == b.eval["eval_loss"].to_pylist()


def test_nan_loss_stops_cleanly_and_keeps_the_trace(tmp_path, monkeypatch):
    holder = _capture_model(monkeypatch)

    def poison(step, metrics):
        if step == 5:
            with torch.no_grad():
                holder["model"].bert.embeddings.word_embeddings.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="diverged at step 6.*checkpoint \\(step 3\\)"):
        train(tiny_cfg(tmp_path / "nan"), progress=False, on_step=poison)
    assert tr.read_table(tmp_path / "nan", "steps")["step"].to_pylist() == list(range(6))
    assert torch.load(tmp_path / "nan" / "checkpoint.pt", weights_only=True)["step"] == 3


@pytest.mark.parametrize("change, match", [
    (dict(sparsity=1.0), "sparsity"),
    (dict(method="nonsense"), "nonsense"),
])
def test_bad_arguments_are_user_errors(tmp_path, change, match):
    cfg = tiny_cfg(tmp_path / "bad", **{})
    for k, v in change.items():
        setattr(cfg.sparsity, k, v)
    with pytest.raises(UserError, match=match):
        train(cfg, progress=False)


def test_existing_trace_is_never_overwritten(tmp_path):
    run = train(tiny_cfg(tmp_path / "r", method="dense", sparsity=0.0, steps=2), progress=False)
    before = tr.read_table(run, "steps")
    with pytest.raises(UserError, match="--resume"):
        train(tiny_cfg(run, method="dense", sparsity=0.0, steps=2), progress=False)
    assert tr.read_table(run, "steps").equals(before)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from accelsim.app.cli import main
    with pytest.raises(SystemExit) as exc:
        main(["train", "--sparsity", "1.5", "--out", str(tmp_path / "x"), "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelsim: error:") and "sparsity" in err and "\n" not in err


def test_hf_trainer_callback_writes_the_same_trace(tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from accelsim.trainer.callback import AccelsimCallback
    from accelsim.trainer.data import build_data
    from accelsim.trainer.models import build_model

    data = build_data(DataConfig(vocab_size=400, seq_len=32, max_texts=400), seed=0)
    model = build_model("bert-tiny", vocab_size=len(data.tokenizer), seq_len=32)
    examples = [{k: v[i] for k, v in data.train_batch(0, 8).items()} for i in range(8)]

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(examples)

        def __getitem__(self, i):
            return examples[i]
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=6, per_device_train_batch_size=4,
                                          report_to=[], save_strategy="no", logging_steps=100, use_cpu=True,
                                          learning_rate=1e-3)
    cb = AccelsimCallback(tmp_path / "trace", SparsityConfig(method="set", sparsity=0.5, update_every=2))
    transformers.Trainer(model=model, args=args, train_dataset=DS(), callbacks=[cb]).train()
    s = check_trace(tmp_path / "trace")
    assert s.steps == 6 and s.mask_changes >= 1 and s.flops_actual < s.flops_dense


def test_input_zero_probe_counts_exact_zeros_only_when_armed():
    from accelsim.trainer.tracer import InputZeroProbe
    layer = torch.nn.Linear(8, 4)
    probe = InputZeroProbe([("fc", layer)])
    x = torch.ones(5, 8)
    x[:, :2] = 0.0           # 10 of 40 inputs are exact zeros
    x[0, 2] = 1e-30          # tiny is not zero
    layer(x)
    assert probe.values == {}  # disarmed: ordinary steps pay nothing
    probe.armed = True
    layer(x)
    assert probe.values["fc"] == pytest.approx(0.25)
    layer(torch.zeros(0, 8))
    assert probe.values["fc"] == 0.0
    probe.remove()
    probe.values.clear()
    layer(x)
    assert probe.values == {}
