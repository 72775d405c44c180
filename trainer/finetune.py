"""Fine-tuning a pretrained (sparse) encoder on a classification task, tracing it like pretraining.

``finetune(FinetuneConfig(parent="runs/rigl90", out="runs/rigl90-ft"))`` puts a
``BertForSequenceClassification`` head on the parent run's encoder (its final checkpoint) and trains it.
The parent's masks are kept (``method="keep"``), or its method continues (``"continue"``), or a dense
parent is pruned to ``sparsity`` by gradual magnitude pruning (``"gmp"``), optionally distilled from a
dense fine-tuned teacher run (``teacher=...``, trainer.distill). The trace is the pretraining trace format
with ``phase: "finetune"``, a ``parent`` link, the task, and task metrics in the eval table; the
classifier head and the teacher's forward are in the manifest's ``model`` so the FLOP columns and the
simulator count them (accelsim.workload).

Batches are a function of (seed, step) as in pretraining; there is no --resume (runs are short).
"""
from __future__ import annotations

import dataclasses
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification

from accelsim import trace as tr
from accelsim.errors import UserError, expect
from accelsim.kernels.host_memory import retain_freed_memory
from accelsim.kernels.optim import adamw, implementation
from accelsim.trainer.corpus import resolve_corpus
from accelsim.trainer.data import DataConfig
from accelsim.trainer.distill import KDConfig, distill_loss
from accelsim.trainer.glue import TaskData, classification_metrics, load_task
from accelsim.trainer.models import build_model, linear_layers, model_dims
from accelsim.trainer.sparsity import SparsityConfig, build_method
from accelsim.trainer.tokenizer import default_cache_dir, get_tokenizer
from accelsim.trainer.tracer import InputZeroProbe, TraceWriter, host_info, library_versions
from accelsim.trainer.train import (CHECKPOINT, TrainConfig, TrainingDiverged, _lr_lambda, _masks, _progress,
                                    apply_update)

METHODS = ("keep", "continue", "dense", "gmp", "movement")
#: Model config of a finetune run, so a later run can load it as a teacher without its lineage.
MODEL_CONFIG = "model_config.json"


@dataclass
class FinetuneConfig:
    parent: str = ""  # pretraining run directory (its checkpoint.pt holds the encoder and masks)
    out: str = "runs/finetune"
    task: str = "corpus-pairs"  # offline default: adjacent-vs-random sentences of the parent's corpus
    data_dir: str | None = None  # GLUE TSV files (task dir or the glue_data root); None: the hub
    # keep: the parent's masks stay fixed; continue: the parent's sparsity method goes on updating them;
    # dense: all weights train (a sparse parent's zeros may grow back); gmp: prune to `sparsity` by magnitude;
    # movement: the same schedule, ranked by movement scores (Sanh et al. 2020)
    method: str = "keep"
    sparsity: float = 0.0  # gmp target over the parent's sparse roles
    update_every: int = 10  # gmp: steps between pruning steps; short runs need frequent small steps
    # gmp: prune from 10 % to 60 % of fine-tuning, then train the final mask (the recovery phase that
    # gradual pruning during fine-tuning relies on)
    gmp_start_fraction: float = 0.1
    gmp_end_fraction: float = 0.6
    teacher: str | None = None  # dense finetune run of the same task to distill from
    kd: KDConfig = field(default_factory=KDConfig)
    steps: int = 300
    batch_size: int = 32
    seq_len: int | None = None  # None: the parent's; shorter pads less on short sentence pairs
    # BERT fine-tuning uses 2e-5..5e-5 for bert-base; small BERTs want larger steps (Turc et al. use up
    # to 3e-4 for the miniatures)
    lr: float = 3e-4
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    dropout: float = 0.1
    seed: int = 0
    eval_every: int = 25
    max_train: int | None = None  # first N training examples (fast tests)
    save_masks: str = "auto"
    threads: int | None = None
    retain_freed_memory: bool = True  # as pretraining's (TrainConfig): no step page-faults its activations back in

    def validate(self) -> None:
        expect(self.method in METHODS, f"expected one of {METHODS}, got {self.method!r}", field="--method")
        expect(self.steps > 0 and self.batch_size > 0 and self.eval_every > 0, "expected positive counts",
               field="steps/batch_size/eval_every")
        expect(0.0 <= self.sparsity < 1.0, f"expected sparsity in [0, 1), got {self.sparsity}", field="--sparsity")
        expect(self.method not in ("gmp", "movement") or self.sparsity > 0, f"{self.method} needs a target "
           "--sparsity > 0", field="--sparsity")
        expect(self.lr > 0, "expected a positive learning rate", field="--lr")
        self.kd.validate()


@dataclass
class _Parent:
    """What fine-tuning needs from the pretraining run."""

    path: Path
    manifest: tr.Manifest
    train_cfg: TrainConfig
    state: dict


def _load_parent(path: Path) -> _Parent:
    manifest = tr.read_manifest(path)
    expect(manifest.phase == "pretrain", f"expected a pretraining run, got phase {manifest.phase!r}",
           source=tr.manifest_path(path), field="phase")
    saved = manifest.extra.get("train_config")
    expect(isinstance(saved, dict), "no trainer config (was it written by accelsim train?)",
           source=tr.manifest_path(path), field="extra.train_config")
    cfg = TrainConfig.from_dict(saved)
    expect(cfg.ffn == "dense", "fine-tuning FFF models is not supported", source=tr.manifest_path(path), field="ffn")
    ckpt = path / CHECKPOINT
    expect(ckpt.is_file(), "no checkpoint.pt (the parent's final weights)", source=path)
    state = torch.load(ckpt, weights_only=True)
    expect(int(state["step"]) + 1 >= manifest.steps, f"checkpoint is at step {int(state['step']) + 1} of "
           f"{manifest.steps}; finish the parent run first (accelsim train --resume)", source=ckpt)
    return _Parent(path, manifest, cfg, state)


def _tokenizer_and_corpus(data: DataConfig):
    source = resolve_corpus(data)
    tok = get_tokenizer(lambda: source.texts, source.key, data.vocab_size, data.tokenizer, default_cache_dir())
    return tok, (lambda: source.texts)


def _student(parent: _Parent, labels: int, seq_len: int, dropout: float, seed: int) -> BertForSequenceClassification:
    positions = parent.state["model"].get("bert.embeddings.position_embeddings.weight")
    limit = int(positions.shape[0]) if positions is not None else seq_len
    expect(seq_len <= limit, f"the pretrained encoder has {limit} positions, fewer than --seq-len {seq_len}",
           field="--seq-len")
    # the parent's own configuration (same sizes as its checkpoint); only the head is new
    mlm = build_model(parent.train_cfg.model, vocab_size=parent.manifest.model["vocab"],
                      seq_len=parent.train_cfg.data.seq_len, dropout=dropout, seed=seed)
    config = mlm.config
    config.num_labels = labels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the new pooler and classifier are a function of the seed alone
        model = BertForSequenceClassification(config)
    encoder = {k: v for k, v in parent.state["model"].items() if k.startswith("bert.")}
    result = model.load_state_dict(encoder, strict=False)
    fresh = [k for k in result.missing_keys if not k.startswith(("bert.pooler.", "classifier."))]
    expect(not fresh and not result.unexpected_keys, f"parent checkpoint does not match the encoder (missing "
           f"{fresh[:2]}, unexpected {result.unexpected_keys[:2]})", source=parent.path / CHECKPOINT)
    return model


def load_teacher(run: Path, task: str) -> tuple[BertForSequenceClassification, tr.Manifest]:
    """A finetune run's final model, frozen in eval mode."""
    man = tr.read_manifest(run)
    expect(man.phase == "finetune", f"expected a finetune run, got phase {man.phase!r}", source=tr.manifest_path(run),
           field="phase")
    expect(man.task.get("name") == task, f"teacher was fine-tuned on {man.task.get('name')!r}, not {task!r}",
           source=tr.manifest_path(run), field="task.name")
    expect((run / MODEL_CONFIG).is_file() and (run / CHECKPOINT).is_file(), "missing model config or checkpoint",
           source=run, field="--teacher")
    model = BertForSequenceClassification(BertConfig.from_json_file(run / MODEL_CONFIG))
    model.load_state_dict(torch.load(run / CHECKPOINT, weights_only=True)["model"])
    model.eval().requires_grad_(False)
    return model, man


def _method(cfg: FinetuneConfig, parent: _Parent, sparse_layers, steps: int):
    """The sparsity method of the fine-tuning run and, for keep/continue, the parent's masks installed."""
    pmethod = parent.train_cfg.sparsity
    masks = parent.state.get("method", {}).get("masks") or {}
    if cfg.method in ("gmp", "movement"):
        sc = SparsityConfig(method=cfg.method, sparsity=cfg.sparsity, distribution=pmethod.distribution,
                            update_every=cfg.update_every, gmp_start_fraction=cfg.gmp_start_fraction,
                            gmp_end_fraction=cfg.gmp_end_fraction, seed=cfg.seed)
    elif cfg.method == "dense" or pmethod.method == "dense":
        sc = SparsityConfig(method="dense")
    elif cfg.method == "keep":
        sc = dataclasses.replace(pmethod, method="static")
    else:
        sc = dataclasses.replace(pmethod)  # continue: same method and hyperparameters, over the fine-tuning steps
    # build_method applies the method's own initial masks to the weights: keep the pretrained values so
    # that installing the parent's masks afterwards loses nothing
    with torch.no_grad():
        pretrained = {n: m.weight.detach().clone() for n, m in sparse_layers}
    method = build_method(sc, sparse_layers, steps)
    if sc.method not in ("dense", "gmp", "movement"):
        expect(set(masks) == {n for n, _ in sparse_layers}, "parent checkpoint holds no masks for the sparse layers",
               source=parent.path / CHECKPOINT, field="method.masks")
        with torch.no_grad():
            for n, m in sparse_layers:
                m.weight.copy_(pretrained[n])
        method.load_state_dict({"method": method.name, "masks": masks, "rng": method.generator.get_state()})
    return sc, method


class _Batches:
    """Tokenised examples and (seed, step)-determined batches, as trainer.data does for pretraining."""

    def __init__(self, tokenizer, examples, seq_len: int, seed: int):
        a = [e[0] for e in examples]
        b = [e[1] for e in examples] if examples[0][1] is not None else None
        enc = tokenizer(a, b, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt")
        self.tensors = {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
        self.labels = torch.tensor([e[2] for e in examples], dtype=torch.long)
        self.n, self.seed = len(examples), seed
        self._perms: dict[int, np.ndarray] = {}

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """The epoch's seeded order, drawn once per epoch (not once per step) as trainer.data does."""
        if epoch not in self._perms:
            if len(self._perms) >= 2:  # a batch spans at most two epochs; older ones are done
                self._perms.pop(min(self._perms))
            self._perms[epoch] = np.random.default_rng([self.seed, epoch, 2]).permutation(self.n)
        return self._perms[epoch]

    def train_batch(self, step: int, batch_size: int) -> dict[str, torch.Tensor]:
        flat = np.arange(step * batch_size, (step + 1) * batch_size)
        epochs, pos = np.divmod(flat, self.n)
        idx = np.empty(batch_size, dtype=np.int64)
        for e in np.unique(epochs):  # a batch spans at most two epochs; each has its own seeded order
            sel = epochs == e
            idx[sel] = self._epoch_order(int(e))[pos[sel]]
        idx = torch.from_numpy(idx)
        return {**{k: v[idx] for k, v in self.tensors.items()}, "labels": self.labels[idx]}

    def in_order(self, batch_size: int):
        for s in range(0, self.n, batch_size):
            yield {**{k: v[s:s + batch_size] for k, v in self.tensors.items()}, "labels": self.labels[s:s + batch_size]}


@torch.no_grad()
def evaluate(model, dev: _Batches, batch_size: int) -> dict[str, float]:
    was = model.training
    model.eval()
    loss_sum, preds = 0.0, []
    for batch in dev.in_order(batch_size):
        out = model(**batch)
        loss_sum += float(out.loss) * len(batch["labels"])
        preds.append(out.logits.argmax(-1))
    model.train(was)
    metrics = classification_metrics(torch.cat(preds).numpy(), dev.labels.numpy())
    return {"loss": loss_sum / dev.n, **metrics}


def _manifest(cfg: FinetuneConfig, parent: _Parent, model, layers, method, sc: SparsityConfig, sparse_names,
              data: TaskData, seq_len: int, teacher: tuple | None) -> tr.Manifest:
    dens = method.target_densities()
    sparse = sc.method != "dense"
    infos = [tr.LayerInfo(name=n, role=r, shape=list(m.weight.shape),
                          target_density=float(dens.get(n, 1.0)) if sparse and n in sparse_names else 1.0,
                          sparse=sparse and n in sparse_names) for n, m, r in layers]
    dims = model_dims(model, seq_len)
    dims["head"] = {"type": "classifier", "labels": data.spec.labels}
    extra = {"finetune_config": dataclasses.asdict(cfg), "model_name": parent.train_cfg.model,
             "parent_method": parent.manifest.method.get("name")}
    if teacher is not None:
        tmodel, tman = teacher
        tc = tmodel.config
        dims["teacher"] = {"layers": tc.num_hidden_layers, "hidden": tc.hidden_size, "heads": tc.num_attention_heads,
                           "intermediate": tc.intermediate_size, "kd": cfg.kd.mode}
        extra["teacher"] = os.path.relpath(Path(cfg.teacher).resolve(), Path(cfg.out).resolve())
    task = {"name": data.spec.name, "labels": data.spec.labels, "metrics": list(data.spec.metrics),
            "train_examples": len(data.train), "dev_examples": len(data.dev), **data.info}
    return tr.Manifest(model=dims, batch_size=cfg.batch_size, dtype="fp32",
                       method={"name": sc.method, **method.hyperparameters()}, layers=infos, seed=cfg.seed,
                       steps=cfg.steps, versions=library_versions(), host=host_info(), extra=extra,
                       phase="finetune", parent=os.path.relpath(Path(cfg.parent).resolve(), Path(cfg.out).resolve()),
                       task=task)


def finetune(cfg: FinetuneConfig, *, progress: bool = True) -> Path:
    """Fine-tune and trace; returns the run directory."""
    cfg.validate()
    out, parent_dir = Path(cfg.out), Path(cfg.parent)
    expect(not tr.manifest_path(out).exists(), "already holds a trace; choose another --out", source=out)
    parent = _load_parent(parent_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.retain_freed_memory:
        retain_freed_memory()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    seq_len = cfg.seq_len or parent.train_cfg.data.seq_len
    tokenizer, texts = _tokenizer_and_corpus(parent.train_cfg.data)
    data = load_task(cfg.task, cfg.data_dir, corpus_texts=texts, seed=cfg.seed, max_train=cfg.max_train)
    expect(len(data.train) >= cfg.batch_size, f"{len(data.train)} training examples, fewer than one batch of "
           f"{cfg.batch_size}", field="--batch-size")
    train_b, dev_b = _Batches(tokenizer, data.train, seq_len, cfg.seed), _Batches(tokenizer, data.dev, seq_len, 0)
    model = _student(parent, data.spec.labels, seq_len, cfg.dropout, cfg.seed)
    model.train()
    teacher = load_teacher(Path(cfg.teacher), data.spec.name) if cfg.teacher else None
    layers = linear_layers(model)
    sparse_layers = [(n, m) for n, m, role in layers if role in parent.train_cfg.sparse_roles]
    optimizer = adamw(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(cfg))
    sc, method = _method(cfg, parent, sparse_layers, cfg.steps)
    method.attach(optimizer)
    manifest = _manifest(cfg, parent, model, layers, method, sc, {n for n, _ in sparse_layers}, data, seq_len,
                         teacher)
    manifest.host["optimizer"] = implementation(optimizer)
    writer = TraceWriter(out, manifest, cfg.save_masks)
    writer.start()
    model.config.to_json_file(out / MODEL_CONFIG)
    probe = InputZeroProbe(sparse_layers)
    hidden = cfg.kd.mode == "hidden" and teacher is not None
    bar = _progress(progress, cfg.steps, 0)
    try:
        with bar as prog:
            task = prog.add_task("train", total=cfg.steps, completed=0, loss=float("nan"), density=1.0,
                                 tps=0.0) if prog else None
            for step in range(cfg.steps):
                kind = method.step_kind(step)
                probe.armed = kind.mask_update or step == 0
                batch = train_b.train_batch(step, cfg.batch_size)
                t0 = time.perf_counter()
                student = model(**batch, output_hidden_states=hidden)
                loss = student.loss
                if teacher is not None:
                    with torch.no_grad():
                        t_out = teacher[0](**{k: v for k, v in batch.items() if k != "labels"},
                                           output_hidden_states=hidden)
                    loss = distill_loss(loss, student, t_out, batch["attention_mask"], cfg.kd)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise TrainingDiverged(f"fine-tuning diverged at step {step}: loss is {value}; lower --lr",
                                           source=out)
                if step == 0:
                    writer.patterns(0, _masks(method, sparse_layers), input_zero=dict(probe.values))
                loss.backward()
                lr, change = apply_update(step, model, method, optimizer, scheduler, cfg.grad_clip)
                wall = time.perf_counter() - t0
                densities = method.densities()
                writer.step(step, value, lr, cfg.batch_size * seq_len, wall, kind, densities, change is not None)
                if change is not None:
                    writer.patterns(step, _masks(method, sparse_layers), change.pruned, change.grown,
                                    dict(probe.values))
                probe.armed = False
                if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps or step == 0:
                    m = evaluate(model, dev_b, 2 * cfg.batch_size)
                    writer.eval(step, m["loss"], m["accuracy"], m["f1"], m["mcc"])
                if task is not None:
                    prog.update(task, completed=step + 1, loss=value, density=writer.overall_density(densities),
                                tps=cfg.batch_size * seq_len / wall)
    except (KeyboardInterrupt, UserError):
        writer.flush()  # the rows of finished steps stay a valid (shorter) trace
        raise
    finally:
        probe.remove()
    writer.flush()
    torch.save({"step": cfg.steps - 1, "model": model.state_dict(), "method": method.state_dict()}, out / CHECKPOINT)
    return out
